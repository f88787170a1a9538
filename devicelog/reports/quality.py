"""The program quality report (issue 17, section 3) as text, json, csv, html and pdf.

Renders a ``clinic.quality.QualityReport`` as it is given.  Names, serials and reasons
come from the database: they go through ``safe.visible`` on a terminal, ``safe.csv_cell``
in CSV, ``html.escape`` in HTML and ``safe.json_text`` in JSON.

Pictures (HTML and PDF): the Kaplan-Meier curves per device kind and the monthly
on-time-refill line.  HTML draws them as inline SVG (a polyline each: no plotting
library is needed for two line charts); the PDF draws the same with fpdf2's public
``line``/``polyline``/``rect`` (fpdf2 is imported inside :func:`render_pdf`).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import html
import io
import json
from collections.abc import Iterable, Sequence

from devicelog.clinic.quality import Figure, Median, Member, QualityReport, Survival
from devicelog.reports.safe import csv_cell, json_text, visible

#: Members listed per figure in text, HTML and PDF (all of them are in json and csv).
SHOWN_MEMBERS = 10
#: Days at which the survival tables are read (1, 2 and 5 years).
SURVIVAL_DAYS = (365, 730, 1826)
KIND_COLOURS = {
    "intrathecal_pump": (31, 119, 180),
    "spinal_cord_stimulator": (214, 39, 40),
    "drg_stimulator": (44, 160, 44),
    "peripheral_nerve_stimulator": (148, 103, 189),
}


def sections(report: QualityReport) -> list[tuple[str, list[Figure | Median]]]:
    return [
        (
            "Refills (intrathecal pumps)",
            [report.refill_on_time, *report.overdue_bands[1:], report.discrepancies, report.pocket_fills, report.review_figure],
        ),
        ("Wounds and infection (rule 22)", [report.wound_escalations, report.infections]),
        ("Explants and revisions by reason", list(report.explants_revisions)),
        ("Trial-to-permanent conversion", list(report.trial_conversion)),
        ("Outcomes recorded today", [report.mme_change, report.mme_change_percent, report.nrs_reduction_30, report.nrs_reduction_50]),
    ]


def _kinds(report: QualityReport) -> str:
    return ", ".join(k.label for k in report.kinds) if report.kinds else "all device kinds"


def _survival_at(s: Survival, day: int) -> str:
    value = s.survival_at(day)
    return "not followed that long" if value is None else f"{value * 100:.1f} %"


def _member_line(m: Member) -> str:
    parts = [m.mrn, m.name, m.serial, str(m.on) if m.on else ""]
    if m.note:
        parts.append(m.note)
    return " · ".join(p for p in parts if p)


# ====================================================================== text


def render_text(report: QualityReport) -> str:
    out: list[str] = []
    add = out.append
    add("devicelog program quality report")
    add(f"Period: {report.period} · {_kinds(report)}")
    for title, items in sections(report):
        add("")
        add(title)
        add("-" * len(title))
        if not items:
            add("  none in the period")
        for item in items:
            add(f"  {visible(item.label, one_line=True)}: {item.shown()}")
            members = item.members
            if isinstance(item, Figure) and members:
                add(f"    {item.members_label}:")
            for m in members[:SHOWN_MEMBERS]:
                add(f"      {visible(_member_line(m), one_line=True)}")
            if len(members) > SHOWN_MEMBERS:
                add(f"      … and {len(members) - SHOWN_MEMBERS} more (all in --format json or csv)")
        if title.startswith("Refills"):
            add(f"  {report.reviews}")
    add("")
    add("Device survival (Kaplan-Meier: explant or revision, censored at death or period end)")
    if not report.survival:
        add("  no permanent implants")
    for s in report.survival:
        at = " · ".join(f"{d // 365} y {_survival_at(s, d)}" for d in SURVIVAL_DAYS)
        add(f"  {s.kind.label}: {s.devices} devices, {s.events} failure{'' if s.events == 1 else 's'} · {at}")
    add("")
    add("Monthly on-time refills")
    for p in report.monthly_on_time:
        pct = "n/a" if p.percent is None else f"{p.percent:.1f} %"
        add(f"  {p.month}: {pct} ({p.on_time} / {p.refills})")
    add("")
    add("Not yet available")
    for line in report.not_available:
        add(f"  {line}")
    return "\n".join(out) + "\n"


# ====================================================================== json and csv


def _plain(value):
    if isinstance(value, (dt.date,)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and hasattr(value, "name") and not isinstance(value, (int, float, str)):
        return value.value  # an enum
    return value


def _figure_dict(item: Figure | Median) -> dict:
    values = _plain(dataclasses.asdict(item))
    if isinstance(item, Figure):
        values["value"] = item.value
    values["period"] = {"start": item.period.start.isoformat(), "end": item.period.end.isoformat()}
    return values


def report_dict(report: QualityReport) -> dict:
    return {
        "period": {"start": report.period.start.isoformat(), "end": report.period.end.isoformat()},
        "kinds": [k.value for k in report.kinds],
        "sections": [{"title": title, "figures": [_figure_dict(i) for i in items]} for title, items in sections(report)],
        "overdue_distribution": [_figure_dict(f) for f in report.overdue_bands],
        "reviews": report.reviews,
        "reviewed": _plain([dataclasses.asdict(m) for m in report.reviewed]),
        "survival": [
            {
                "kind": s.kind.value,
                "devices": s.devices,
                "failures": s.events,
                "steps": [dataclasses.asdict(step) for step in s.steps],
                "failed": _plain([dataclasses.asdict(m) for m in s.members]),
            }
            for s in report.survival
        ],
        "monthly_on_time": [{**dataclasses.asdict(p), "percent": p.percent} for p in report.monthly_on_time],
        "not_available": report.not_available,
    }


def render_json(report: QualityReport) -> str:
    return json_text(json.dumps(report_dict(report), indent=2, ensure_ascii=False)) + "\n"


CSV_HEADER = ["record", "key", "label", "numerator", "denominator", "value", "unit", "period_start", "period_end", "mrn", "name", "serial", "on", "note"]


def render_csv(report: QualityReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    start, end = report.period.start.isoformat(), report.period.end.isoformat()

    def members(key: str, items: Iterable[Member]) -> None:
        for m in items:
            w.writerow(["member", key, "", "", "", "", "", start, end, csv_cell(m.mrn), csv_cell(m.name), csv_cell(m.serial), m.on.isoformat() if m.on else "", csv_cell(m.note)])

    figures: list[Figure | Median] = [report.refill_on_time, *report.overdue_bands, report.discrepancies, report.pocket_fills]
    figures.append(report.review_figure)
    for _title, items in sections(report)[1:]:
        figures += items
    for item in figures:
        if isinstance(item, Figure):
            value = "" if item.value is None else f"{item.value:.4f}"
            w.writerow(["figure", item.key, csv_cell(item.label), item.numerator, item.denominator, value, item.unit, start, end, "", "", "", "", csv_cell(item.definition)])
        else:
            value = "" if item.value is None else f"{item.value:.4f}"
            w.writerow(["median", item.key, csv_cell(item.label), "", item.count, value, item.unit, start, end, "", "", "", "", csv_cell(item.definition)])
        members(item.key, item.members)
    w.writerow(["note", "reviews", csv_cell(report.reviews), "", "", "", "", start, end, "", "", "", "", ""])
    members("reviewed", report.reviewed)
    for s in report.survival:
        for step in s.steps:
            w.writerow(["km", s.kind.value, f"day {step.day}", step.events, step.at_risk, f"{step.survival:.6f}", "survival", start, end, "", "", "", "", f"censored {step.censored}"])
        members(f"km_{s.kind.value}", s.members)
    for p in report.monthly_on_time:
        w.writerow(["month", "refill_on_time", p.month, p.on_time, p.refills, "" if p.percent is None else f"{p.percent:.4f}", "%", start, end, "", "", "", "", ""])
    for line in report.not_available:
        w.writerow(["not_available", "", csv_cell(line), "", "", "", "", start, end, "", "", "", "", ""])
    return buf.getvalue()


# ====================================================================== charts as points


def km_points(s: Survival) -> list[tuple[float, float]]:
    """The step curve of ``s`` as (day, survival) corners, from (0, 1)."""
    points = [(0.0, 1.0)]
    value = 1.0
    for step in s.steps:
        points.append((float(step.day), value))
        if step.survival != value:
            value = step.survival
            points.append((float(step.day), value))
    return points


def _svg_chart(title: str, series: Sequence[tuple[str, tuple[int, int, int], list[tuple[float, float]]]], x_max: float, y_label: str, x_label: str, x_ticks: Sequence[tuple[float, str]]) -> str:
    width, height, left, bottom, top, right = 640, 280, 50, 40, 30, 150
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(x: float, y: float) -> str:
        return f"{left + (x / x_max if x_max else 0) * plot_w:.1f},{top + (1 - y) * plot_h:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>',
    ]
    for frac in (0, 0.25, 0.5, 0.75, 1):
        y = top + (1 - frac) * plot_h
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{frac * 100:.0f} %</text>')
    for x, label in x_ticks:
        px = left + (x / x_max if x_max else 0) * plot_w
        parts.append(f'<text x="{px:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle">{html.escape(label)}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" font-size="11" text-anchor="middle">{html.escape(x_label)}</text>')
    parts.append(f'<text x="12" y="{top + plot_h / 2}" font-size="11" transform="rotate(-90 12 {top + plot_h / 2})" text-anchor="middle">{html.escape(y_label)}</text>')
    for n, (name, (r, g, b), points) in enumerate(series):
        path = " ".join(xy(x, y) for x, y in points)
        parts.append(f'<polyline fill="none" stroke="rgb({r},{g},{b})" stroke-width="2" points="{path}"/>')
        ly = top + 12 + n * 16
        parts.append(f'<line x1="{left + plot_w + 10}" y1="{ly}" x2="{left + plot_w + 28}" y2="{ly}" stroke="rgb({r},{g},{b})" stroke-width="3"/>')
        parts.append(f'<text x="{left + plot_w + 32}" y="{ly + 4}" font-size="11">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _km_chart_data(report: QualityReport):
    x_max = max((s.steps[-1].day for s in report.survival if s.steps), default=0) or 1
    series = [(f"{s.kind.label} (n={s.devices})", KIND_COLOURS.get(s.kind.value, (0, 0, 0)), km_points(s)) for s in report.survival]
    years = int(x_max // 365)
    step = max(1, years // 8 + (1 if years % 8 else 0)) if years > 8 else 1
    ticks = [(d * 365.0, f"{d} y") for d in range(0, years + 1, step)]
    return series, float(x_max), ticks


def _month_chart_data(report: QualityReport):
    points = [(float(i), p.percent / 100) for i, p in enumerate(report.monthly_on_time) if p.percent is not None]
    x_max = float(max(1, len(report.monthly_on_time) - 1))
    every = max(1, -(-len(report.monthly_on_time) // 7))  # at most 7 labels: they must not overlap
    ticks = [(float(i), p.month) for i, p in enumerate(report.monthly_on_time) if i % every == 0]
    return [("on time", (31, 119, 180), points)], x_max, ticks


# ====================================================================== html


def render_html(report: QualityReport) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>devicelog program quality report</title>',
        (
            "<style>body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:0.5em 0}"
            "td,th{border-bottom:1px solid #ccc;padding:0.25em 0.6em;text-align:left;vertical-align:top}"
            "td.n{text-align:right}.def{color:#555;font-size:0.85em}details{font-size:0.9em}.na{background:#fff4d6;padding:0.5em 1em}</style>"
        ),
        "</head><body>",
        "<h1>Program quality report</h1>",
        f"<p>Period: {e(str(report.period))} · {e(_kinds(report))}</p>",
    ]
    for title, items in sections(report):
        out.append(f"<h2>{e(title)}</h2>")
        if not items:
            out.append("<p>None in the period.</p>")
            continue
        out.append("<table><tr><th>Figure</th><th>Value</th><th>Numerator</th><th>Denominator</th><th>Who</th></tr>")
        for item in items:
            if isinstance(item, Figure):
                value = "n/a" if item.value is None else f"{item.value:.1f} {item.unit}"
                num, den = str(item.numerator), str(item.denominator)
            else:
                value = "n/a" if item.value is None else f"{item.value:+.1f} {item.unit}"
                num, den = "", f"n = {item.count}"
            who = ""
            if item.members:
                rows = "".join(f"<li>{e(_member_line(m))}</li>" for m in item.members[:SHOWN_MEMBERS])
                more = f"<li>… and {len(item.members) - SHOWN_MEMBERS} more (csv, json)</li>" if len(item.members) > SHOWN_MEMBERS else ""
                label = item.members_label if isinstance(item, Figure) else "patients"
                who = f"<details><summary>{e(label)} ({len(item.members)})</summary><ul>{rows}{more}</ul></details>"
            out.append(
                f"<tr><td>{e(item.label)}<div class='def'>{e(item.definition)}</div></td><td class='n'>{e(value)}</td>"
                f"<td class='n'>{num}</td><td class='n'>{e(den)}</td><td>{who}</td></tr>"
            )
        out.append("</table>")
        if title.startswith("Refills"):
            out.append(f"<p>{e(report.reviews)}</p>")
    out.append("<h2>Device survival (Kaplan–Meier)</h2>")
    out.append("<p class='def'>Permanent implants up to the period's end; failure = explant, revision, migration or replacement; censored at death or at the period's end.</p>")
    if report.survival:
        series, x_max, ticks = _km_chart_data(report)
        out.append(_svg_chart("Device survival", series, x_max, "devices without explant or revision", "time since implant", ticks))
        out.append("<table><tr><th>Kind</th><th>Devices</th><th>Failures</th>" + "".join(f"<th>{d // 365} y</th>" for d in SURVIVAL_DAYS) + "</tr>")
        for s in report.survival:
            out.append(f"<tr><td>{e(s.kind.label)}</td><td class='n'>{s.devices}</td><td class='n'>{s.events}</td>" + "".join(f"<td class='n'>{e(_survival_at(s, d))}</td>" for d in SURVIVAL_DAYS) + "</tr>")
        out.append("</table>")
    else:
        out.append("<p>No permanent implants.</p>")
    out.append("<h2>Monthly on-time refills</h2>")
    if report.monthly_on_time:
        series, x_max, ticks = _month_chart_data(report)
        out.append(_svg_chart("Refills done by their latest safe date, per month", series, x_max, "on time", "month", ticks))
        out.append("<table><tr><th>Month</th><th>On time</th><th>Refills</th><th>%</th></tr>")
        for p in report.monthly_on_time:
            pct = "n/a" if p.percent is None else f"{p.percent:.1f} %"
            out.append(f"<tr><td>{e(p.month)}</td><td class='n'>{p.on_time}</td><td class='n'>{p.refills}</td><td class='n'>{pct}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>No refills in the period.</p>")
    out.append("<h2>Not yet available</h2><div class='na'><ul>")
    out.extend(f"<li>{e(line)}</li>" for line in report.not_available)
    out.append("</ul></div></body></html>")
    return "\n".join(out) + "\n"


# ====================================================================== pdf


def render_pdf(report: QualityReport, *, page_size: str = "A4") -> bytes:
    from fpdf import FPDF

    from devicelog.reports import fonts

    pdf = FPDF(format=page_size)
    family = fonts.register(pdf)
    pdf.set_margins(14, 14, 14)
    pdf.set_auto_page_break(True, margin=14)
    pdf.add_page()
    width = pdf.w - 28

    def text(line: str, style: str = "", size: float = 9, h: float = 4.5) -> None:
        pdf.set_font(family, style, size)
        pdf.multi_cell(width, h, line, new_x="LMARGIN", new_y="NEXT")

    def need(mm: float) -> None:
        if pdf.get_y() + mm > pdf.page_break_trigger:
            pdf.add_page()

    text("Program quality report", "B", 15, 8)
    text(f"Period: {report.period} · {_kinds(report)}")
    widths = (width * 0.52, width * 0.2, width * 0.14, width * 0.14)
    for title, items in sections(report):
        need(20)
        pdf.ln(2)
        text(title, "B", 11, 6)
        if not items:
            text("None in the period.")
        else:
            pdf.set_font(family, "B", 8)
            for head, w in zip(("Figure", "Value", "Numerator", "Denominator"), widths):
                pdf.cell(w, 5, head, border="B")
            pdf.ln()
        for item in items:
            need(10)
            if isinstance(item, Figure):
                value = "n/a" if item.value is None else f"{item.value:.1f} {item.unit}"
                cells = (item.label, value, str(item.numerator), str(item.denominator))
            else:
                value = "n/a" if item.value is None else f"{item.value:+.1f} {item.unit}"
                cells = (item.label, value, "", f"n = {item.count}")
            pdf.set_font(family, "", 8)
            for cell, w in zip(cells, widths):
                pdf.cell(w, 5, cell[:70])
            pdf.ln()
            who = "; ".join(f"{m.mrn} {m.serial} {m.on or ''}".strip() for m in item.members[:SHOWN_MEMBERS])
            if who:
                more = f" … and {len(item.members) - SHOWN_MEMBERS} more" if len(item.members) > SHOWN_MEMBERS else ""
                pdf.set_font(family, "", 7)
                pdf.set_text_color(90, 90, 90)
                pdf.multi_cell(width, 3.5, f"    {who}{more}", new_x="LMARGIN", new_y="NEXT")
                pdf.set_text_color(0, 0, 0)
        if title.startswith("Refills"):
            text(report.reviews, size=8)

    def chart(title: str, series, x_max: float, ticks) -> None:
        need(80)
        pdf.ln(3)
        text(title, "B", 11, 6)
        left, top = pdf.l_margin + 12, pdf.get_y() + 2
        plot_w, plot_h = width - 60, 55
        pdf.set_draw_color(220, 220, 220)
        pdf.set_font(family, "", 7)
        for frac in (0, 0.25, 0.5, 0.75, 1):
            y = top + (1 - frac) * plot_h
            pdf.line(left, y, left + plot_w, y)
            pdf.text(left - 10, y + 1, f"{frac * 100:.0f} %")
        pdf.set_draw_color(0, 0, 0)
        pdf.line(left, top, left, top + plot_h)
        pdf.line(left, top + plot_h, left + plot_w, top + plot_h)
        for x, label in ticks:
            pdf.text(left + x / x_max * plot_w - 3, top + plot_h + 4, label)
        pdf.set_line_width(0.5)
        for n, (name, colour, points) in enumerate(series):
            pdf.set_draw_color(*colour)
            coords = [(left + x / x_max * plot_w, top + (1 - y) * plot_h) for x, y in points]
            if len(coords) > 1:
                pdf.polyline(coords)
            ly = top + 3 + n * 5
            pdf.line(left + plot_w + 4, ly, left + plot_w + 12, ly)
            pdf.text(left + plot_w + 14, ly + 1, name)
        pdf.set_line_width(0.2)
        pdf.set_draw_color(0, 0, 0)
        pdf.set_y(top + plot_h + 8)

    if report.survival:
        series, x_max, ticks = _km_chart_data(report)
        chart("Device survival (Kaplan–Meier)", series, x_max, ticks)
        text("Permanent implants up to the period's end; failure = explant, revision, migration or replacement; censored at death or period end.", size=7)
        for s in report.survival:
            text(f"{s.kind.label}: {s.devices} devices, {s.events} failure{'' if s.events == 1 else 's'} · " + " · ".join(f"{d // 365} y {_survival_at(s, d)}" for d in SURVIVAL_DAYS), size=8)
    if report.monthly_on_time:
        series, x_max, ticks = _month_chart_data(report)
        chart("Refills done by their latest safe date, per month", series, x_max, ticks)
    need(20)
    pdf.ln(2)
    text("Not yet available", "B", 11, 6)
    for line in report.not_available:
        text(f"• {line}", size=8)
    return bytes(pdf.output())
