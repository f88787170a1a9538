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

"page x of y" is fpdf2's page-count alias (``alias_nb_pages``).  A list longer than the clinic's
``due_pdf_max_pages`` setting is refused (:class:`PageLimitExceeded`) as soon as the
layout reaches that page: fpdf2 holds every page until the file is output, and no
clinic prints a whole 100,000-patient list (csv or html are the formats for that).

Speed: the rows are laid out here, not by fpdf2's ``pdf.table()``.  Its
line breaker re-measures the whole line for every character it adds (quadratic in the
line's length) and the table lays each cell out twice, about 12 ms a row: 72 s for
5,700 items at 10,000 patients, ~12 min for the 57,000 of a 100,000-patient clinic.
:class:`RowLayout` wraps each cell once with the font's own character widths (the
sum fpdf2 computes, made once per text) and draws the lines with ``pdf.text()``, the
grid with ``pdf.line()``: the same table (grey bold headings repeated on each page,
padding 1 mm, 3.8 mm lines, overdue dates bold red, "What" bold), linear in the text.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

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


def wrap_text(text: str, cw, room: float) -> list[str]:
    """Greedy word wrap of ``text`` into lines at most ``room`` wide, widths from the
    font's advance widths ``cw`` (by code point, in the same unit as ``room``); its own
    line breaks are kept and a word wider than ``room`` is cut.  One pass over the text."""
    space = cw[32]
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line: list[str] = []
        used = 0.0
        for word in paragraph.split(" "):
            w = sum(cw[ord(c)] for c in word)
            if line and used + space + w <= room:
                line.append(word)
                used += space + w
                continue
            if line:
                lines.append(" ".join(line))
            while w > room and len(word) > 1:  # cut a word wider than the line
                cut, taken = 1, cw[ord(word[0])]
                while cut < len(word) and taken + cw[ord(word[cut])] <= room:
                    taken += cw[ord(word[cut])]
                    cut += 1
                lines.append(word[:cut])
                word = word[cut:]
                w -= taken
            line, used = [word], w
        lines.append(" ".join(line))
    return lines


def write_lines(pdf, family: str, text: str, *, size: float, line_height: float, style: str = "") -> None:
    """``multi_cell(0, line_height, text)`` at the left margin, wrapped by :func:`wrap_text`
    (fpdf2's own wrapping is quadratic in the line's length), breaking pages as needed."""
    pdf.set_font(family, style, size)
    room = (pdf.epw - 2 * pdf.c_margin) * pdf.k * 1000 / size  # multi_cell keeps c_margin each side
    for line in wrap_text(text, pdf.current_font.cw, room):
        if pdf.y + line_height > pdf.page_break_trigger:
            pdf.add_page()
            pdf.set_font(family, style, size)
        if line:
            pdf.text(pdf.l_margin + pdf.c_margin, pdf.y + line_height / 2 + 0.3 * pdf.font_size, line)
        pdf.set_y(pdf.y + line_height)


class RowLayout:
    """Lays out and draws table rows on an ``FPDF``: columns of ``widths`` mm, text of
    ``size`` pt wrapped at spaces (a word wider than its column is cut), ``padding`` mm
    inside each cell, lines ``line_height`` mm apart, at the ``v_align`` of the row
    (top or middle); ``rules`` "grid" draws every
    cell's border, "between" only the lines between rows (fpdf2's HORIZONTAL_LINES)."""

    def __init__(
        self, pdf, family: str, widths: Sequence[float], *, size: float = 8, line_height: float = 3.8, padding: float = 1,
        rules: Literal["grid", "between"] = "grid", v_align: Literal["top", "middle"] = "top",
    ):
        self.pdf, self.family, self.widths = pdf, family, tuple(widths)
        self.size, self.line_height, self.padding, self.rules = size, line_height, padding, rules
        self.v_align = v_align
        self._widths: dict[str, Any] = {}

    def _char_widths(self, style: str):
        """The font's advance widths (thousandths of the font size), by code point."""
        if style not in self._widths:
            self.pdf.set_font(self.family, style, self.size)
            self._widths[style] = self.pdf.current_font.cw
        return self._widths[style]

    def wrap(self, text: str, width_mm: float, style: str = "") -> list[str]:
        """``text``'s lines in a column ``width_mm`` wide (its own line breaks kept)."""
        room = (width_mm - 2 * self.padding) * 1000 / self.size * self.pdf.k  # in font units
        return wrap_text(text, self._char_widths(style), room)

    def height(self, cells: Sequence[Sequence[str]]) -> float:
        return max(len(lines) for lines in cells) * self.line_height + 2 * self.padding

    def draw(
        self, cells: Sequence[Sequence[str]], styles: Sequence[tuple[str, tuple[int, int, int] | None]], fill=None,
        *, top: bool = True, bottom: bool = True,
    ) -> None:
        """One row at the current y: each cell's lines (already wrapped), top aligned.
        ``top``/``bottom``: with ``rules="between"``, whether to rule above/below it."""
        pdf = self.pdf
        x0, y0 = pdf.l_margin, pdf.y
        h = self.height(cells)
        total = sum(self.widths)
        if fill is not None:
            pdf.set_fill_color(*fill)
            pdf.rect(x0, y0, total, h, style="F")
            # Back to the text colour: while they differ, fpdf2 wraps every text() in
            # "q 0 g … Q", ~8% of a long list's page content (held until output).
            pdf.set_fill_color(0, 0, 0)
        x = x0
        for lines, width, (style, colour) in zip(cells, self.widths, styles):
            pdf.set_font(self.family, style, self.size)
            if colour is not None:
                pdf.set_text_color(*colour)
            baseline = y0 + self.padding + self.line_height / 2 + 0.3 * pdf.font_size
            if self.v_align == "middle":
                baseline += (h - 2 * self.padding - len(lines) * self.line_height) / 2
            for n, line in enumerate(lines):
                if line:
                    pdf.text(x + self.padding, baseline + n * self.line_height, line)
            if colour is not None:
                pdf.set_text_color(0, 0, 0)
            x += width
        if self.rules == "grid":  # the row's outline in one operator, then the inner columns
            pdf.rect(x0, y0, total, h)
            x = x0
            for width in self.widths[:-1]:
                x += width
                pdf.line(x, y0, x, y0 + h)
        else:
            if top:
                pdf.line(x0, y0, x0 + total, y0)
            if bottom:
                pdf.line(x0, y0 + h, x0 + total, y0 + h)
        pdf.set_y(y0 + h)


class PageLimitExceeded(ValueError):
    """The PDF would have more pages than the clinic's ``due_pdf_max_pages``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"the due list would take more than {limit:,} PDF pages (the due_pdf_max_pages setting); "
            "give a shorter --within or --kind, or write it as csv or html"
        )


def render_pdf(
    dl: DueList, *, page_size: PageSize = "A4", group: Group = "week", max_pages: int | None = None
) -> bytes:
    """The due list as PDF bytes.  With ``max_pages``, :class:`PageLimitExceeded` as soon
    as the layout starts page ``max_pages + 1`` (nothing is output)."""
    return _layout(dl, page_size=page_size, group=group, max_pages=max_pages).output()


def write_pdf(
    dl: DueList, path: str | os.PathLike, *, page_size: PageSize = "A4", group: Group = "week", max_pages: int | None = None
) -> Path:
    """:func:`render_pdf` into the file ``path``: 0600, replaced only when whole
    (``devicelog.output``), not created when the list is refused."""
    from devicelog.output import private_file

    data = render_pdf(dl, page_size=page_size, group=group, max_pages=max_pages)
    path = Path(path)
    with private_file(path, binary=True) as fh:
        fh.write(data)
    return path


def _layout(dl: DueList, *, page_size: PageSize, group: Group, max_pages: int | None):
    """The due list laid out on a :func:`_due_pdf_class` document."""
    from devicelog.reports import fonts
    from devicelog.reports.due import foot_lines, subtitle, title, when_text, why_text

    as_of = dl.as_of
    heading_text = title(dl)
    left = f"Printed from devicelog · as of {dl.as_of.isoformat()}"
    if dl.redacted:
        left += " · REDACTED"
    pdf = _due_pdf_class()(
        heading_text, subtitle(dl), left, max_pages, orientation="portrait", unit="mm", format=page_size.lower()
    )
    family = pdf.family = fonts.register(pdf)
    pdf.set_title(heading_text)
    pdf.set_author(dl.clinic_name or "devicelog")
    pdf.set_creator("devicelog")
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.set_margins(12, 12, 12)
    pdf.add_page()
    pdf.set_line_width(0.2)
    widths = tuple(w * pdf.epw for _, w in COLUMNS)
    layout = RowLayout(pdf, family, widths)
    head_cells = [layout.wrap(name, w, "B") for (name, _), w in zip(COLUMNS, widths)]
    head_styles = [("B", None)] * len(COLUMNS)
    overdue_style, plain, bold = ("B", (170, 0, 0)), ("", None), ("B", None)

    if not dl.entries:
        pdf.set_font(family, "B", 12)
        pdf.ln(6)
        pdf.multi_cell(0, 7, dl.empty_text(), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)

    for heading, rows in groups(dl.entries, group):
        pdf.set_font(family, "B", 10)
        if pdf.will_page_break(40):
            pdf.add_page()
        pdf.cell(0, 7, f"{heading} ({len(rows)})", new_x="LMARGIN", new_y="NEXT")
        layout.draw(head_cells, head_styles, fill=(225, 225, 225))
        for e in rows:
            i = e.item
            cells = [
                layout.wrap(f"{i.due_on.isoformat()}\n{when_text(e, as_of)}", widths[0], "B" if e.status == "overdue" else ""),
                layout.wrap(i.latest_safe_on.isoformat() if i.latest_safe_on else "—", widths[1]),
                layout.wrap(f"{i.patient_name}\n{i.patient_mrn}", widths[2]),
                layout.wrap(f"{i.device_model}\nSN {i.device_serial}", widths[3]),
                layout.wrap(i.what, widths[4], "B"),
                layout.wrap(why_text(e), widths[5]),
            ]
            if pdf.y + layout.height(cells) > pdf.page_break_trigger:
                pdf.add_page()
                pdf.set_line_width(0.2)
                layout.draw(head_cells, head_styles, fill=(225, 225, 225))
            layout.draw(cells, [overdue_style if e.status == "overdue" else plain, plain, plain, plain, bold, plain])
        pdf.ln(3)

    for line in foot_lines(dl):
        write_lines(pdf, family, line, size=9, line_height=5)
    return pdf


_DUE_PDF_CLASS = None
#: Replaced by the page count when the file is output (fpdf2's ``alias_nb_pages``).
PAGE_COUNT_ALIAS = "{page-count}"


def _due_pdf_class():
    """``DuePDF``, an ``FPDF`` with the list's heading on every page and "page x of y"
    (fpdf2's page-count alias) at every foot (made on first use: fpdf2 is imported only
    when printing)."""
    global _DUE_PDF_CLASS
    if _DUE_PDF_CLASS is not None:
        return _DUE_PDF_CLASS
    from fpdf import FPDF

    class DuePDF(FPDF):
        def __init__(self, heading_text: str, sub_text: str, foot_left: str, max_pages: int | None, **kwargs) -> None:
            super().__init__(**kwargs)
            self.heading_text, self.sub_text, self.foot_left = heading_text, sub_text, foot_left
            self.max_pages = max_pages
            self.family = ""
            # The alias's own width is the room kept for the count: "{nb}" is narrower
            # than "20764" (fpdf2 warns); this one is wider than 6 digits.
            self.alias_nb_pages(PAGE_COUNT_ALIAS)

        def header(self) -> None:
            if self.max_pages is not None and self.page_no() > self.max_pages:
                raise PageLimitExceeded(self.max_pages)
            self.set_font(self.family, "B", 12)
            self.cell(0, 6, self.heading_text, new_x="LMARGIN", new_y="NEXT")
            write_lines(self, self.family, self.sub_text, size=8.5, line_height=4.5)
            self.ln(2)

        def footer(self) -> None:
            self.set_y(-12)
            self.set_font(self.family, "", 8)
            self.cell(self.epw / 2, 5, self.foot_left, align="L")
            self.cell(self.epw / 2, 5, f"page {self.page_no()} of {PAGE_COUNT_ALIAS}", align="R")

    _DUE_PDF_CLASS = DuePDF
    return DuePDF


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
    (and whether it was printed).  For the TUI's due view.  A list longer than
    ``settings.due_pdf_max_pages`` raises :class:`PageLimitExceeded` (no file written).
    """
    from devicelog.store.due import load_due_list

    dl = load_due_list(engine, as_of=as_of, settings=settings, within_days=within_days, kinds=kinds)
    if redact:
        dl = redact_with_catalogue(engine, dl)
    folder = Path(dest_dir) if dest_dir is not None else Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    path = write_pdf(
        dl,
        folder / pdf_file_name(as_of, within_days, redact),
        page_size=page_size or settings.page_size,
        group=group,
        max_pages=settings.due_pdf_max_pages,
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
