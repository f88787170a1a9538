"""The printable due list (issue 6.1) and the TUI's print action (issue 6.5).

A4 or Letter, portrait.  Every page has the clinic's name, the as-of date and the
range at the top and "page x of y" at the foot.  Items come overdue first, then by
date, grouped by week (Monday to Sunday) or by day; each row gives the patient, MRN,
device (model, serial), what is due, the due date and the latest safe date, and why.
The list ends with how many elective items were suppressed and why, and the
forecast's notes; an empty range says so instead of leaving a blank page.

Text is set in the shipped DejaVu Sans (``devicelog.reports.fonts``) so "µ", "Ω",
"≥" and "—" print; nothing is downloaded at run time.  fpdf2 is imported inside the
functions.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import subprocess
from pathlib import Path
from typing import Iterable, Literal, Sequence

from devicelog.store.due import DueEntry, DueList

Group = Literal["week", "day"]
PageSize = Literal["A4", "Letter"]

#: Column titles and widths as fractions of the printable width.
COLUMNS: tuple[tuple[str, float], ...] = (
    ("Due", 0.12),
    ("Latest safe", 0.10),
    ("Patient", 0.15),
    ("Device", 0.17),
    ("What", 0.17),
    ("Why", 0.29),
)


def group_title(entry: DueEntry, group: Group) -> str:
    """The heading an item falls under: "Overdue", "Week of Mon 23 Nov 2026" or the day."""
    if entry.status == "overdue":
        return "Overdue"
    on = entry.item.due_on
    if group == "day":
        return f"{on:%a} {on.day} {on:%b %Y}"
    monday = on - dt.timedelta(days=on.weekday())
    sunday = monday + dt.timedelta(days=6)
    return f"Week of {monday:%a} {monday.day} {monday:%b %Y} to {sunday:%a} {sunday.day} {sunday:%b %Y}"


def groups(entries: Iterable[DueEntry], group: Group) -> list[tuple[str, list[DueEntry]]]:
    """Consecutive entries under the same heading (the list is already in order)."""
    out: list[tuple[str, list[DueEntry]]] = []
    for e in entries:
        heading = group_title(e, group)
        if out and out[-1][0] == heading:
            out[-1][1].append(e)
        else:
            out.append((heading, [e]))
    return out


def render_pdf(dl: DueList, *, page_size: PageSize = "A4", group: Group = "week") -> bytes:
    """The due list as PDF bytes."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    from devicelog.reports import fonts
    from devicelog.reports.due import foot_lines, subtitle, title, when_text

    heading_text = title(dl)
    sub_text = subtitle(dl)

    class DuePDF(FPDF):
        def header(self) -> None:
            self.set_font(family, "B", 12)
            self.cell(0, 6, heading_text, new_x="LMARGIN", new_y="NEXT")
            self.set_font(family, "", 8.5)
            self.multi_cell(0, 4.5, sub_text, new_x="LMARGIN", new_y="NEXT")
            self.ln(2)

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font(family, "", 8)
            left = f"Printed from devicelog · as of {dl.as_of.isoformat()}"
            if dl.redacted:
                left += " · REDACTED"
            self.cell(self.epw / 2, 5, left, align="L")
            self.cell(self.epw / 2, 5, f"page {self.page_no()} of {{nb}}", align="R")

    pdf = DuePDF(orientation="portrait", unit="mm", format=page_size.lower())
    family = fonts.register(pdf)
    pdf.set_title(heading_text)
    pdf.set_author(dl.clinic_name or "devicelog")
    pdf.set_creator("devicelog")
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.set_margins(12, 12, 12)
    pdf.add_page()
    widths = tuple(w * pdf.epw for _, w in COLUMNS)

    if not dl.entries:
        pdf.set_font(family, "B", 12)
        pdf.ln(6)
        pdf.multi_cell(0, 7, dl.empty_text(), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)

    bold = FontFace(emphasis="BOLD")
    overdue_face = FontFace(emphasis="BOLD", color=(170, 0, 0))
    for heading, entries in groups(dl.entries, group):
        pdf.set_font(family, "B", 10)
        if pdf.will_page_break(40):
            pdf.add_page()
        pdf.cell(0, 7, f"{heading} ({len(entries)})", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, "", 8)
        with pdf.table(
            col_widths=widths,
            width=pdf.epw,
            text_align="LEFT",
            v_align="TOP",
            line_height=3.8,
            padding=1,
            headings_style=FontFace(emphasis="BOLD", fill_color=(225, 225, 225)),
            repeat_headings=1,
        ) as table:
            head = table.row()
            for name, _ in COLUMNS:
                head.cell(name)
            for e in entries:
                i = e.item
                row = table.row()
                row.cell(
                    f"{i.due_on.isoformat()}\n{when_text(e, dl.as_of)}",
                    style=overdue_face if e.status == "overdue" else None,
                )
                row.cell(i.latest_safe_on.isoformat() if i.latest_safe_on else "—")
                row.cell(f"{i.patient_name}\n{i.patient_mrn}")
                row.cell(f"{i.device_model}\nSN {i.device_serial}")
                row.cell(i.what, style=bold)
                row.cell(i.why)
        pdf.ln(3)

    pdf.set_font(family, "", 9)
    for line in foot_lines(dl):
        pdf.multi_cell(0, 5, line, align="L", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def write_pdf(dl: DueList, path: str | os.PathLike, *, page_size: PageSize = "A4", group: Group = "week") -> Path:
    path = Path(path)
    path.write_bytes(render_pdf(dl, page_size=page_size, group=group))
    return path


def send_to_printer(path: Path, print_command: str) -> str:
    """Run ``print_command`` (e.g. "lp" or "lp -d clinic") with the file; a message either way."""
    argv = [*shlex.split(print_command), str(path)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"not printed: {print_command!r} could not run ({exc})"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        return f"not printed: {print_command!r} failed: {detail}"
    reply = done.stdout.strip()
    return f"sent to the printer with {print_command!r}" + (f" ({reply})" if reply else "")


def pdf_file_name(as_of: dt.date, within_days: int | None, redact: bool = False) -> str:
    span = "all" if within_days is None else f"{within_days}d"
    return f"due-{as_of.isoformat()}-{span}{'-redacted' if redact else ''}.pdf"


def print_due_pdf(
    engine,
    settings,
    as_of: dt.date,
    within_days: int | None,
    kinds: Sequence = (),
    dest_dir: str | os.PathLike | None = None,
    *,
    redact: bool = False,
    group: Group = "week",
    page_size: PageSize | None = None,
) -> tuple[Path, str]:
    """Write the due list PDF into ``dest_dir`` (default: the current directory) and, when
    ``settings.print_command`` is set, send it to the printer.

    Returns the file's path and a message for the person saying where the file went
    (and whether it was printed).  For the TUI's due view.
    """
    from devicelog.store.due import load_due_list

    dl = load_due_list(engine, as_of=as_of, settings=settings, within_days=within_days, kinds=kinds)
    if redact:
        dl = redact_with_catalogue(engine, dl)
    folder = Path(dest_dir) if dest_dir is not None else Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    path = write_pdf(
        dl, folder / pdf_file_name(as_of, within_days, redact), page_size=page_size or settings.page_size, group=group
    )
    message = f"Due list saved to {path}"
    if settings.print_command.strip():
        message += "; " + send_to_printer(path, settings.print_command)
    return path, message


def redact_with_catalogue(engine, dl: DueList) -> DueList:
    """``dl`` redacted with the database's drug catalogue."""
    from devicelog.reports.redact import redact_due_list
    from devicelog.store import queries
    from devicelog.store.db import read_session

    with read_session(engine) as session:
        drugs = queries.catalogue(session).drugs
    return redact_due_list(dl, drugs)
