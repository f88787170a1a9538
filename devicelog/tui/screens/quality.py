"""The program quality report on screen (issue 17, section 3).

A table of every figure (value, numerator, denominator); Enter on a row lists the
patients and devices that make it up.  Below: the Kaplan-Meier curves per kind and the
monthly on-time-refill line, drawn with plotext, and what is not yet available.  The
report is computed in a thread worker (``store.quality.quality_histories`` →
``clinic.quality.quality_report``), so the screen never freezes.
"""

from __future__ import annotations

import datetime as dt

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from devicelog.tui.format import plain
from devicelog.tui.widgets.footer import ClinicFooter


class QualityScreen(Screen):
    BINDINGS = [Binding("escape", "back", "Back")]

    DEFAULT_CSS = """
    QualityScreen #quality-figures { height: 1fr; }
    QualityScreen #quality-members { height: 12; }
    QualityScreen .chart { height: 16; }
    """

    def __init__(self, *, start: dt.date | None = None, end: dt.date | None = None) -> None:
        super().__init__()
        self.start, self.end = start, end
        self.report = None
        self.items: list = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Computing the quality report…", id="quality-period")
        yield DataTable(id="quality-figures", cursor_type="row", zebra_stripes=True)
        yield Static("Enter on a figure lists who makes it up.", id="quality-members-title")
        yield DataTable(id="quality-members", cursor_type="row")
        yield VerticalScroll(id="quality-charts")
        yield ClinicFooter()

    def on_mount(self) -> None:
        self.query_one("#quality-figures", DataTable).add_columns("Figure", "Value", "Numerator", "Denominator")
        self.query_one("#quality-members", DataTable).add_columns("MRN", "Patient", "Device", "Date", "What")
        self.query_one("#quality-figures", DataTable).focus()
        self.compute()

    @work(thread=True, exclusive=True, group="quality")
    def compute(self) -> None:
        from devicelog.clinic.quality import Period, quality_report
        from devicelog.store import queries
        from devicelog.store.db import read_session
        from devicelog.store.quality import quality_histories

        app = self.app
        end = self.end or app.today
        start = self.start or end - dt.timedelta(days=364)
        period = Period(start, end)
        with read_session(app.engine) as session:
            drugs = queries.drugs_by_code(session)
            report = quality_report(quality_histories(session, period), period=period, settings=app.settings, drugs=drugs)
        app.call_from_thread(self._show, report)

    def _show(self, report) -> None:
        from devicelog.reports.quality import sections

        self.report = report
        self.query_one("#quality-period", Static).update(plain(f"Program quality · {report.period} · all device kinds · {report.reviews}"))
        table = self.query_one("#quality-figures", DataTable)
        table.clear()
        self.items = []
        for _title, items in sections(report):
            for item in items:
                self.items.append(item)
                value = item.shown().split(" (")[0]
                numerator = str(getattr(item, "numerator", ""))
                denominator = str(getattr(item, "denominator", f"n = {getattr(item, 'count', '')}"))
                table.add_row(plain(item.label), value, numerator, denominator)
        self._charts(report)

    def _charts(self, report) -> None:
        from textual_plotext import PlotextPlot

        from devicelog.reports.quality import km_points

        body = self.query_one("#quality-charts", VerticalScroll)
        body.remove_children()
        if report.survival:
            plot = PlotextPlot(classes="chart")
            body.mount(plot)
            plot.plt.title("Device survival (Kaplan-Meier), days since implant")
            for s in report.survival:
                points = km_points(s)
                plot.plt.plot([x for x, _ in points], [y * 100 for _, y in points], label=s.kind.label)
            plot.plt.ylim(0, 100)
        months = [p for p in report.monthly_on_time if p.percent is not None]
        if months:
            plot = PlotextPlot(classes="chart")
            body.mount(plot)
            plot.plt.title("Refills done by their latest safe date, % per month")
            plot.plt.plot(list(range(len(months))), [p.percent for p in months], marker="braille")
            plot.plt.xticks(list(range(len(months))), [p.month for p in months])
            plot.plt.ylim(0, 100)
        for line in report.not_available:
            body.mount(Static(plain(f"Not yet available: {line}")))

    def action_back(self) -> None:
        """Escape: from the list of members back to the figures, else off the screen."""
        figures = self.query_one("#quality-figures", DataTable)
        if self.focused is not figures and self.query_one("#quality-members", DataTable).has_focus:
            figures.focus()
        else:
            self.app.pop_screen()

    @on(DataTable.RowSelected, "#quality-figures")
    def drill_down(self, event: DataTable.RowSelected) -> None:
        """Enter on a figure: who makes it up."""
        item = self.items[event.cursor_row]
        members = self.query_one("#quality-members", DataTable)
        members.clear()
        label = getattr(item, "members_label", "") or "patients"
        self.query_one("#quality-members-title", Static).update(plain(f"{item.label}: {label} ({len(item.members)})"))
        for m in item.members:
            members.add_row(plain(m.mrn), plain(m.name), plain(m.serial), str(m.on or ""), plain(m.note))
        if item.members:
            members.focus()
