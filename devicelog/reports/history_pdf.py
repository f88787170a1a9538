"""The device history as a PDF fit to print for the chart (issue 5.5).

Drawn with fpdf2 and the shipped DejaVu Sans (``reports.fonts``) so that µs, Ω, °C,
"—" and "≥" print as they are.  A4 or Letter (``settings.page_size`` or the caller's
choice); every page carries the patient, the scope, the date and "page x of y".

Order, most decisive first: devices, refill ledgers (flags in bold), trends (small
line charts with their numbers), programming history, then the full timeline with
amendments beside what they amend.  fpdf is imported inside ``render_pdf``.

Tables are laid out by ``due_pdf.RowLayout`` (one-pass wrapping with the font's own
widths), not fpdf2's ``pdf.table()``, which took 8 s for a pump with 785 events.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable, Sequence

from devicelog.clinic.mme import REFERENCE_ONLY
from devicelog.clinic.trends import Series
from devicelog.reports.history import LEDGER_HEADERS, HistoryReport, ledger_table_rows

PAGE_SIZES = ("A4", "Letter")
MARGIN_MM = 12
BODY_PT = 8
GREY = (110, 110, 110)
LINE = (40, 70, 140)


def render_pdf(report: HistoryReport, page_size: str = "A4", kinds: Iterable[str] | None = None) -> bytes:
    """The report as PDF bytes; ``kinds`` filters the timeline as on screen."""
    from fpdf import FPDF

    from devicelog.reports.due_pdf import RowLayout
    from devicelog.reports.fonts import register

    if page_size not in PAGE_SIZES:
        raise ValueError(f"page size {page_size!r} is not one of {', '.join(PAGE_SIZES)}")

    class HistoryPDF(FPDF):
        def header(self):
            self.set_font(family, "B", 9)
            self.cell(0, 5, f"Device history — {report.patient_name} (MRN {report.patient_mrn})", new_x="LMARGIN", new_y="NEXT")
            self.set_font(family, "", 7)
            self.set_text_color(*GREY)
            self.cell(
                0,
                4,
                f"{report.clinic_name} · {report.scope} · born {report.patient_birth_date} · as of {report.as_of}",
                new_x="LMARGIN",
                new_y="NEXT",
            )
            self.set_text_color(0, 0, 0)
            self.set_draw_color(*GREY)
            self.line(self.l_margin, self.get_y() + 1, self.w - self.r_margin, self.get_y() + 1)
            self.ln(3)

        def footer(self):
            self.set_y(-10)
            self.set_font(family, "", 7)
            self.set_text_color(*GREY)
            self.cell(0, 5, f"{report.patient_name} · MRN {report.patient_mrn} · printed from devicelog", align="L")
            self.set_x(self.l_margin)
            self.cell(0, 5, f"page {self.page_no()} of {{nb}}", align="R")
            self.set_text_color(0, 0, 0)

    pdf = HistoryPDF(orientation="portrait", unit="mm", format=page_size)
    pdf.set_title(f"Device history {report.patient_mrn} {report.scope}")
    pdf.set_author(report.clinic_name)
    pdf.set_creator("devicelog")
    # No clock in the file: the same report prints the same bytes.
    pdf.set_creation_date(dt.datetime.combine(report.as_of, dt.time(), tzinfo=dt.timezone.utc))
    family = register(pdf)
    pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
    pdf.set_auto_page_break(True, margin=14)
    pdf.alias_nb_pages()
    pdf.add_page()
    width = pdf.w - 2 * MARGIN_MM

    def heading(text: str) -> None:
        if pdf.get_y() > pdf.h - 40:
            pdf.add_page()
        pdf.ln(2)
        pdf.set_font(family, "B", 11)
        pdf.cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, "", BODY_PT)

    def para(text: str, style: str = "", size: float = BODY_PT) -> None:
        pdf.set_font(family, style, size)
        pdf.multi_cell(0, 4, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, "", BODY_PT)

    def table(headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float], bold_rows: set[int] = frozenset(), align: str = "LEFT") -> None:
        """What ``pdf.table(borders_layout="HORIZONTAL_LINES", padding=0.8, line_height=4)``
        drew (bold headings repeated on each page, a rule between rows), laid out by
        ``due_pdf.RowLayout``: fpdf2's table wraps each cell twice with a line breaker
        quadratic in the line's length (8 s for a pump with 785 events)."""
        scale = width / sum(widths)
        layout = RowLayout(pdf, family, [w * scale for w in widths], size=BODY_PT, line_height=4, padding=0.8, rules="between", v_align="middle")
        head = [layout.wrap(h, w, "B") for h, w in zip(headers, layout.widths)]
        head_styles = [("B", None)] * len(headers)
        plain, strong = [("", None)] * len(headers), [("B", None)] * len(headers)
        pdf.set_x(pdf.l_margin)
        layout.draw(head, head_styles, top=False, bottom=bool(rows))
        for i, r in enumerate(rows):
            style = "B" if i in bold_rows else ""
            cells = [layout.wrap(str(text), w, style) for text, w in zip(r, layout.widths)]
            if pdf.get_y() + layout.height(cells) > pdf.page_break_trigger:
                pdf.add_page()
                layout.draw(head, head_styles, top=False, bottom=True)
            layout.draw(cells, strong if style else plain, top=True, bottom=i < len(rows) - 1)
        pdf.set_font(family, "", BODY_PT)

    # -------------------------------------------------------------- patient and devices
    pdf.set_font(family, "B", 14)
    pdf.cell(0, 8, f"{report.patient_name}", new_x="LMARGIN", new_y="NEXT")
    para(
        f"MRN {report.patient_mrn} · born {report.patient_birth_date} · {report.patient_status} · goals of care: {report.goals_of_care}"
    )
    heading("Devices")
    table(
        ("serial", "model", "kind", "implanted", "status", "links", "UDI"),
        [
            (
                d.serial,
                d.model + (f" ({d.reservoir_ml:g} mL)" if d.reservoir_ml else ""),
                d.kind,
                f"{d.implanted_on} ({d.implant_type})",
                d.status,
                "; ".join(
                    x for x in (f"replaces {d.replaces_serial}" if d.replaces_serial else "", f"replaced by {d.replaced_by_serial}" if d.replaced_by_serial else "") if x
                ),
                d.udi or "—",
            )
            for d in report.devices
        ],
        (14, 30, 9, 20, 12, 22, 30),
    )

    # -------------------------------------------------------------- refill ledgers
    for ledger in report.ledgers:
        heading(f"Refill ledger — {ledger.device_serial}")
        para(
            f"{ledger.reservoir_ml:g} mL reservoir; discrepancy = withdrawn − expected residual, flagged above "
            f"{ledger.limit_ml:g} mL. Negative: less than expected (over-delivery, leak or diversion).",
            size=7,
        )
        rows = ledger_table_rows(ledger)
        flagged = {i for i, r in enumerate(ledger.rows) if r.flagged or r.pocket_fill_flagged}
        table(LEDGER_HEADERS, rows, (17, 15, 16, 18, 36, 12, 30, 10, 30), bold_rows=flagged)
        para(f"Trend: {ledger.trend.text}", style="B" if ledger.trend.flagged else "")

    # -------------------------------------------------------------- trends
    charts: list[tuple[str, Series]] = [(t.device_serial, s) for t in report.device_trends for s in t.series]
    charts += [("patient", s) for s in report.patient_series]
    outlooks = [(t.device_serial, line) for t in report.device_trends for line in t.battery_outlook]
    if charts or outlooks:
        heading("Trends")
        chart_w, chart_h, gap = (width - 6) / 2, 37, 6
        for i, (owner, series) in enumerate(charts):
            column = i % 2
            if column == 0:
                if pdf.get_y() + chart_h + 14 > pdf.h - 16:
                    pdf.add_page()
                top = pdf.get_y()
            x = MARGIN_MM + column * (chart_w + gap)
            draw_chart(pdf, family, series, owner, x, top, chart_w, chart_h)
            if column == 1 or i == len(charts) - 1:
                pdf.set_xy(MARGIN_MM, top + chart_h + 13)
        if any(s.label == REFERENCE_ONLY for _, s in charts):
            para(
                f"IT morphine shown as oral equivalent at {report.oral_to_it_ratio:g}:1 is {REFERENCE_ONLY}: "
                "observed ratios vary from 10:1 to 300:1.",
                style="B",
                size=7,
            )
        for owner, series in charts:
            for note in series.notes:
                para(f"{owner} {series.title}: {note}", size=7)
        for owner, line in outlooks:
            para(f"Battery outlook, {owner}: {line}", size=7)

    # -------------------------------------------------------------- programming
    heading("Programming history")
    several = len(report.devices) > 1
    rows, bolds = [], set()
    for c in report.programming:
        head = f"{c.source}{' (initial)' if c.initial else ''}" + (f"; reason: {c.reason}" if c.reason else "")
        changes = c.changes or []
        if not changes:
            rows.append((str(c.occurred_on), c.device_serial, c.author, c.target, head, "no change to the settings", ""))
        for k, f in enumerate(changes):
            rows.append(
                (
                    str(c.occurred_on) if k == 0 else "",
                    c.device_serial if k == 0 else "",
                    c.author if k == 0 else "",
                    c.target if k == 0 else "",
                    f.field,
                    f.before,
                    f.after,
                )
            )
    if rows:
        table(("date", "device", "by", "what", "setting", "before", "after"), rows, (16, 13, 12, 15, 24, 30, 30))
        reasons = [f"{c.occurred_on} {c.device_serial if several else ''} {c.target}: {c.reason}" for c in report.programming if c.reason]
        if reasons:
            para("Reasons: " + "; ".join(dict.fromkeys(r.replace("  ", " ") for r in reasons)), size=7)
    else:
        para("No programs logged.")

    # -------------------------------------------------------------- timeline
    entries = report.timeline_of(kinds)
    heading(f"Timeline ({len(entries)} events{', kinds: ' + ', '.join(sorted(kinds)) if kinds else ''})")
    rows = []
    for e in entries:
        kind = e.kind_label + (f" [{e.status.upper()}]" if e.status else "")
        text = e.summary + "".join(f"\n· {v.line}" for v in e.versions)
        rows.append((str(e.occurred_on), e.device_serial, kind, e.author, text))
    table(("date", "device", "event", "by", "details"), rows, (18, 14, 22, 12, 90))
    return bytes(pdf.output())


def draw_chart(pdf, family: str, series: Series, owner: str, x: float, y: float, w: float, h: float) -> None:
    """A small line chart: title with unit, y range, first and last date, the points;
    a step line for a programmed dose (it holds until the next change)."""
    title = f"{owner}: {series.title} ({series.unit})"
    pdf.set_font(family, "B", 7)
    while pdf.get_string_width(title) > w and len(title) > 10:
        title = title[:-2] + "…"
    pdf.set_xy(x, y)
    pdf.cell(w, 4, title)
    if series.label:
        pdf.set_xy(x, y + 3.5)
        pdf.cell(w, 3.5, series.label.upper())
    top, left = y + 8, x + 10  # two title lines, the second for a label
    plot_w, plot_h = w - 12, h - 9
    values = series.values
    lo, hi = min(values), max(values)
    if series.unit == "%" or series.key == "pain_nrs":
        lo, hi = 0.0, 100.0 if series.unit == "%" else 10.0
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    first, last = series.points[0].on, series.points[-1].on
    span = max(1, (last - first).days)
    pdf.set_draw_color(*GREY)
    pdf.set_line_width(0.2)
    pdf.rect(left, top, plot_w, plot_h)
    pdf.set_font(family, "", 6)
    pdf.set_text_color(*GREY)
    for value, ty in ((hi, top), (lo, top + plot_h - 3)):
        pdf.set_xy(x, ty)
        pdf.cell(9.5, 3, f"{value:g}", align="R")
    pdf.set_xy(left, top + plot_h + 0.5)
    pdf.cell(plot_w / 2, 3, str(first))
    pdf.set_xy(left + plot_w / 2, top + plot_h + 0.5)
    pdf.cell(plot_w / 2, 3, str(last), align="R")

    def at(on, value):
        px = left + (on - first).days / span * plot_w if last != first else left + plot_w / 2
        py = top + plot_h - (value - lo) / (hi - lo) * plot_h
        return px, py

    points = []
    for i, p in enumerate(series.points):
        px, py = at(p.on, p.value)
        if series.step and points:
            points.append((px, points[-1][1]))
        points.append((px, py))
    pdf.set_draw_color(*LINE)
    pdf.set_line_width(0.4)
    if len(points) > 1:
        pdf.polyline(points)
    for px, py in points if len(points) <= 60 else []:
        pdf.circle(px, py, 0.6, style="F") if hasattr(pdf, "circle") else None
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(family, "", 6.5)
    summary = f"last {series.points[-1].value:g} {series.unit} on {last}; min {min(values):g}, max {max(values):g}; {len(values)} point{'s' if len(values) != 1 else ''}"
    pdf.set_xy(left, top + plot_h + 3.5)
    pdf.cell(plot_w, 3, summary)
    pdf.set_draw_color(0, 0, 0)
    pdf.set_line_width(0.2)
