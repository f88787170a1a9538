"""The full history of a device, or of its patient across every device (issue 5.1-5.4).

Four tabs, all drawn from one ``reports.history.HistoryReport`` (the same content as
``devicelog history SERIAL``):

- **Timeline** (t): every event in date order; ``f`` picks the event kind shown; an
  amended entry is followed by its original and each amendment, a voided one stays
  marked "entered in error".  The highlighted row's full text shows below the table.
- **Programming** (p): each change as a diff against the program before it, with who made it.
- **Refill ledger** (l): expected residual, withdrawn, discrepancy and flag, added, drug;
  the trend of discrepancies underneath, flagged in red when a run or the mean says so.
- **Trends** (g): reservoir volume, daily dose, battery with the projected ERI,
  pain NRS and oral MME, drawn with plotext; IT morphine's oral equivalent is labelled
  "reference only, not for dosing".

``w`` switches between this device and every device of the patient (a replaced pump
and its successor side by side).  The report is read in a worker thread with a fixed
number of queries, so a 3,000-event history opens without freezing the screen.
"""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static, TabbedContent, TabPane

from devicelog.clinic.mme import REFERENCE_ONLY
from devicelog.clinic.records import EVENT_LABELS, EventKind
from devicelog.reports.history import LEDGER_HEADERS, HistoryReport, ledger_table_rows, series_line
from devicelog.reports.safe import visible
from devicelog.tui.format import one_line, plain, shown
from devicelog.tui.widgets.footer import ClinicFooter

DETAIL_CHARS = 100


def _short(text: str, width: int = DETAIL_CHARS) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def chart_points(series) -> tuple[list[str], list[float]]:
    """Dates (ISO) and values to draw; a programmed dose holds until the next change,
    so a step series gets a point at each change date with the value before it."""
    dates: list[str] = []
    values: list[float] = []
    for p in series.points:
        if series.step and values:
            dates.append(p.on.isoformat())
            values.append(values[-1])
        dates.append(p.on.isoformat())
        values.append(p.value)
    return dates, values


class HistoryScreen(Screen):
    """``HistoryScreen(device_id)`` or ``HistoryScreen(engine=…, device_id=…, settings=…, today=…)``.

    Anything not given is taken from the app (``app.engine``, ``app.settings``,
    ``app.today``) when the screen mounts.  ``whole_patient=True`` opens on the
    patient view.
    """

    DEFAULT_CSS = """
    HistoryScreen #history-title { height: auto; padding: 0 1; background: $boost; }
    HistoryScreen #history-tabs { height: 1fr; }
    HistoryScreen TabPane { padding: 0; }
    HistoryScreen #timeline, HistoryScreen #programming { height: 1fr; }
    HistoryScreen #timeline-detail { height: auto; max-height: 8; padding: 0 1; border-top: solid $primary; }
    HistoryScreen #ledger-body, HistoryScreen #trends-body { height: 1fr; }
    HistoryScreen .ledger-table { height: auto; max-height: 24; }
    HistoryScreen .ledger-trend { padding: 0 1 1 1; }
    HistoryScreen .ledger-trend.flagged { color: $error; text-style: bold; }
    HistoryScreen .chart { height: 14; }
    HistoryScreen .chart-caption { padding: 0 1; color: $text-muted; }
    HistoryScreen .section { text-style: bold; padding: 0 1; background: $boost; }
    """

    BINDINGS = [
        Binding("t", "tab('tab-timeline')", "Timeline"),
        Binding("p", "tab('tab-programming')", "Programming"),
        Binding("l", "tab('tab-ledger')", "Ledger"),
        Binding("g", "tab('tab-trends')", "Trends"),
        Binding("f", "next_kind", "Filter kind"),
        Binding("shift+f", "previous_kind", "Filter kind (back)", show=False),
        Binding("w", "toggle_patient", "Device / patient"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(
        self,
        device_id: int | None = None,
        *,
        engine=None,
        settings=None,
        today: dt.date | None = None,
        whole_patient: bool = False,
    ) -> None:
        super().__init__()
        if device_id is None:
            raise TypeError("HistoryScreen needs device_id")
        self.device_id = device_id
        self._engine = engine
        self._settings = settings
        self._today = today
        self.whole_patient = whole_patient
        self.report: HistoryReport | None = None
        self.trends_drawn = False
        self.kind_filter: str | None = None  # None: every kind
        self.timeline_rows: list[tuple[str, object]] = []  # what each table row shows, for the detail pane
        self._read_logged = False  # the read entry for opening this history (once)

    # ------------------------------------------------------------------ plumbing

    @property
    def engine(self):
        return self._engine if self._engine is not None else self.app.engine

    @property
    def settings(self):
        return self._settings if self._settings is not None else self.app.settings

    @property
    def today(self) -> dt.date:
        return self._today if self._today is not None else self.app.today

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading the history…", id="history-title")
        with TabbedContent(id="history-tabs", initial="tab-timeline"):
            with TabPane("Timeline (t)", id="tab-timeline"):
                yield DataTable(id="timeline", cursor_type="row", zebra_stripes=True)
                yield Static("", id="timeline-detail")
            with TabPane("Programming (p)", id="tab-programming"):
                yield DataTable(id="programming", cursor_type="row", zebra_stripes=True)
            with TabPane("Refill ledger (l)", id="tab-ledger"):
                yield VerticalScroll(id="ledger-body")
            with TabPane("Trends (g)", id="tab-trends"):
                yield VerticalScroll(id="trends-body")
        yield ClinicFooter()

    def on_mount(self) -> None:
        # Fixed widths: a 3,000-row timeline is not measured cell by cell.
        timeline = self.query_one("#timeline", DataTable)
        for label, width in (("Date", 10), ("Device", 8), ("Entry", 28), ("By", 10), ("What was recorded", DETAIL_CHARS)):
            timeline.add_column(label, width=width)
        self.query_one("#programming", DataTable).add_columns("Date", "Device", "By", "What", "Setting", "Before", "After")
        self.load()

    @work(thread=True, exclusive=True, group="history")
    def load(self) -> None:
        from devicelog.reports.history import load_report
        from devicelog.store.db import read_session

        from devicelog.problems import InputError

        app = self.app
        try:
            with read_session(self.engine) as session:
                report = load_report(
                    session, device_id=self.device_id, settings=self.settings, as_of=self.today, whole_patient=self.whole_patient
                )
        except (LookupError, InputError) as exc:  # InputError: the server refused this login, in one line
            app.call_from_thread(self.notify, f"Not shown: {exc}", severity="error")
            return
        if not self._read_logged:
            from devicelog.tui.reads import log_opened

            self._read_logged = True
            log_opened(app, f"history of {report.scope}", patients=[report.patient_mrn], devices=[d.serial for d in report.devices], engine=self.engine)
        app.call_from_thread(self.show, report)

    # ------------------------------------------------------------------ drawing

    def show(self, report: HistoryReport) -> None:
        self.report = report
        if self.kind_filter and self.kind_filter not in report.kinds:
            self.kind_filter = None
        self.query_one("#history-title", Static).update(self.title_text())
        self.fill_timeline()
        self.fill_programming()
        self.fill_ledger()
        self.trends_drawn = False  # drawn when the Trends tab is first opened
        if self.query_one("#history-tabs", TabbedContent).active == "tab-trends":
            self.draw_trends()
        self.query_one("#timeline", DataTable).focus()

    def draw_trends(self) -> None:
        if self.report is not None and not self.trends_drawn:
            self.trends_drawn = True
            self.fill_trends()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-trends":
            self.draw_trends()

    def title_text(self) -> Text:
        r = self.report
        text = Text()
        text.append(one_line(r.patient_name), style="bold")
        text.append(f"  MRN {one_line(r.patient_mrn)}  born {r.patient_birth_date}  ·  {one_line(r.scope)}\n")
        for d in r.devices:
            text.append(f"{one_line(d.line)}\n", style="dim" if d.status in ("replaced", "explanted") else "")
        kinds = EVENT_LABELS[EventKind(self.kind_filter)] if self.kind_filter else "all kinds"
        text.append(f"Timeline: {kinds} (f to change) · w: {'this device only' if self.whole_patient else 'every device of the patient'}")
        return shown(text)

    def fill_timeline(self) -> None:
        table = self.query_one("#timeline", DataTable)
        table.clear()
        self.timeline_rows = []
        several = len(self.report.devices) > 1
        kinds = [self.kind_filter] if self.kind_filter else None
        for e in self.report.timeline_of(kinds):
            entry = Text(e.kind_label)
            if e.status == "amended":
                entry.append(" (amended)", style="yellow")
            elif e.status:
                entry = Text(e.kind_label, style="strike dim")
                entry.append(" ENTERED IN ERROR", style="bold red")
            summary = plain(_short(e.summary), style="strike dim" if e.status == "entered in error" else "")
            table.add_row(str(e.occurred_on), plain(e.device_serial if several else ""), entry, plain(e.author), summary)
            self.timeline_rows.append(("entry", e))
            for v in e.versions:
                label = "original" if v.reason is None else "void" if v.voided else "amendment"
                table.add_row("", "", Text(f"  ↳ {label}", style="dim italic"), plain(v.author), plain(_short(v.line), style="dim"))
                self.timeline_rows.append(("version", v))
        if not self.kind_filter:  # due items acknowledged or snoozed (issue 14.2), after the entries
            for a in self.report.acknowledgements:
                table.add_row(str(a.recorded_at.astimezone(dt.timezone.utc).date()), plain(a.device_serial if several else ""),
                              Text(f"Due item {a.action}", style="cyan"), plain(a.author), plain(_short(a.line)))
                self.timeline_rows.append(("ack", a))
        self.show_detail(0)

    def show_detail(self, row: int | None) -> None:
        detail = self.query_one("#timeline-detail", Static)
        if not self.timeline_rows or row is None or row >= len(self.timeline_rows):
            detail.update("No entries." if not self.timeline_rows else "")
            return
        what, item = self.timeline_rows[row]
        if what == "entry":
            text = f"{item.occurred_on} {item.kind_label} by {item.author}: {item.summary}"
            text += "".join(f"\n· {v.line}" for v in item.versions)
        else:  # a version, or a due item acknowledged or snoozed: its line says it all
            text = item.line
        detail.update(shown(text))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "timeline":
            self.show_detail(event.cursor_row)

    def fill_programming(self) -> None:
        table = self.query_one("#programming", DataTable)
        table.clear()
        for c in self.report.programming:
            what = c.target + (" (initial)" if c.initial else "")
            head = (str(c.occurred_on), plain(c.device_serial), plain(c.author), plain(what))
            if not c.changes:
                table.add_row(*head, Text("no change to the settings", style="dim"), "", plain(c.reason))
            for k, f in enumerate(c.changes):
                table.add_row(*(head if k == 0 else ("", "", "", "")), plain(f.field), plain(f.before), plain(f.after, style="bold"))
            if c.reason and c.changes:
                table.add_row("", "", "", "", Text("reason", style="dim"), "", plain(c.reason, style="dim"))

    def fill_ledger(self) -> None:
        body = self.query_one("#ledger-body", VerticalScroll)
        body.remove_children()
        if not self.report.ledgers:
            body.mount(Static("No pump in this view: the refill ledger is for intrathecal pumps.", classes="chart-caption"))
            return
        for ledger in self.report.ledgers:
            body.mount(
                Static(
                    plain(
                        f"{ledger.device_serial}: {ledger.reservoir_ml:g} mL reservoir, discrepancy flagged above {ledger.limit_ml:g} mL "
                        "(discrepancy = withdrawn − expected residual; negative = less than expected)"
                    ),
                    classes="section",
                )
            )
            table = DataTable(classes="ledger-table", cursor_type="row", zebra_stripes=True)
            body.mount(table)
            table.add_columns(*LEDGER_HEADERS)
            for row, source in zip(ledger_table_rows(ledger), ledger.rows):
                # Red while the flag is open (rule 26); bold once reviewed, the review beside it.
                style = "bold red" if source.review_open else ("bold" if source.flagged or source.pocket_fill_flagged else "")
                table.add_row(*(plain(cell, style=style) for cell in row))
            trend = Static(plain(f"Trend: {ledger.trend.text}"), classes="ledger-trend")
            if ledger.trend.flagged:
                trend.add_class("flagged")
            body.mount(trend)

    def fill_trends(self) -> None:
        from textual_plotext import PlotextPlot

        body = self.query_one("#trends-body", VerticalScroll)
        body.remove_children()
        charts = [(t.device_serial, s) for t in self.report.device_trends for s in t.series]
        charts += [("patient", s) for s in self.report.patient_series]
        if not charts:
            body.mount(Static("Nothing to chart yet.", classes="chart-caption"))
        for owner, series in charts:
            plot = PlotextPlot(classes="chart")
            body.mount(plot)
            plt = plot.plt
            plt.date_form("Y-m-d")
            dates, values = chart_points(series)
            title = f"{owner}: {series.title} ({series.unit})"
            if series.label:
                title += f" — {series.label.upper()}"
            plt.title(visible(title, one_line=True))
            if len(values) == 1:
                plt.scatter(dates, values)
            else:
                plt.plot(dates, values, marker="braille")
            body.mount(Static(plain(f"{owner}: {series_line(series)}"), classes="chart-caption"))
            for note in series.notes:
                body.mount(Static(plain(f"note: {note}"), classes="chart-caption"))
        for t in self.report.device_trends:
            for line in t.battery_outlook:
                body.mount(Static(plain(f"{t.device_serial} battery outlook: {line}"), classes="chart-caption"))
        if any(s.label == REFERENCE_ONLY for _, s in charts):
            body.mount(
                Static(
                    f"IT morphine as oral equivalent at {self.report.oral_to_it_ratio:g}:1 is {REFERENCE_ONLY}: "
                    "observed ratios vary from 10:1 to 300:1.",
                    classes="section",
                )
            )

    # ------------------------------------------------------------------ actions

    def action_tab(self, tab: str) -> None:
        self.query_one("#history-tabs", TabbedContent).active = tab
        focus = {"tab-timeline": "#timeline", "tab-programming": "#programming", "tab-ledger": "#ledger-body", "tab-trends": "#trends-body"}
        self.query_one(focus[tab]).focus()

    def _step_kind(self, step: int) -> None:
        if self.report is None:
            return
        choices = [None, *self.report.kinds]
        index = choices.index(self.kind_filter) if self.kind_filter in choices else 0
        self.kind_filter = choices[(index + step) % len(choices)]
        self.query_one("#history-title", Static).update(self.title_text())
        self.fill_timeline()
        self.action_tab("tab-timeline")
        kinds = EVENT_LABELS[EventKind(self.kind_filter)] if self.kind_filter else "all kinds"
        self.notify(f"Timeline: {kinds}", timeout=2)

    def action_next_kind(self) -> None:
        self._step_kind(1)

    def action_previous_kind(self) -> None:
        self._step_kind(-1)

    def action_toggle_patient(self) -> None:
        self.whole_patient = not self.whole_patient
        self.query_one("#history-title", Static).update("Loading the history…")
        self.load()
