"""The clinic's due list from the forecast, filtered by device kind and range."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Select, Static

from devicelog.clinic.records import DeviceKind
from devicelog.tui.format import STATUS_STYLE, STATUS_WORD, when

RANGES = [("overdue and next 7 days", 7), ("next 14 days", 14), ("next 30 days", 30), ("next 90 days", 90),
          ("overdue only", 0), ("everything", -1)]


class DueScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("k", "focus_kind", "Kind"),
        Binding("g", "focus_range", "Range"),
        Binding("p", "print_due", "Print"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="due-filters"):
            yield Label("Kind")
            yield Select([(k.label, k.value) for k in DeviceKind], prompt="all devices", id="due-kind", compact=True)
            yield Label("Range")
            yield Select(RANGES, value=30, allow_blank=False, id="due-range", compact=True)
        yield DataTable(id="due-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="due-why")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#due-table", DataTable)
        table.add_columns("Status", "Due", "When", "Patient", "Device", "What")
        self.watch(self.app, "state", lambda _: self.load(), init=False)
        self.load()
        table.focus()

    def action_focus_kind(self) -> None:
        self.query_one("#due-kind", Select).focus()

    def action_focus_range(self) -> None:
        self.query_one("#due-range", Select).focus()

    def action_print_due(self) -> None:
        """Write the list as shown (kind, range) to a PDF; print it when print_command is set."""
        kind = self.query_one("#due-kind", Select).value
        days = self.query_one("#due-range", Select).value
        kinds = [] if kind is Select.NULL or kind is None else [DeviceKind(kind)]
        self._print(kinds, None if days == -1 else max(days, 0))

    @work(thread=True, exclusive=True, group="due-print")
    def _print(self, kinds, within) -> None:
        from pathlib import Path

        from devicelog.reports.due_pdf import print_due_pdf

        app = self.app
        try:
            _, message = print_due_pdf(app.engine, app.settings, app.today, within, kinds, Path.cwd())
        except Exception as exc:  # a full disk, an unwritable folder: say so, keep the screen
            app.call_from_thread(app.notify, f"Due list PDF not written: {exc}", severity="error")
            return
        app.call_from_thread(app.notify, message, timeout=12)

    @on(Select.Changed)
    def _filter(self) -> None:
        self.load()

    def load(self) -> None:
        kind = self.query_one("#due-kind", Select).value
        days = self.query_one("#due-range", Select).value
        kinds = None if kind is Select.NULL or kind is None else [DeviceKind(kind)]
        self._compute(kinds, days)

    @work(thread=True, exclusive=True, group="due")
    def _compute(self, kinds, days) -> None:
        app = self.app
        state = app.state
        if state is None:
            return
        within = None if days == -1 else max(days, 0)
        rows = state.due(app.today, app.settings, within_days=within, kinds=kinds)
        if days == 0:
            rows = [r for r in rows if r[1] == "overdue"]
        app.call_from_thread(self._show, rows)

    def _show(self, rows) -> None:
        today = self.app.today
        table = self.query_one("#due-table", DataTable)
        table.clear()
        self.rows = rows
        for item, status in rows:
            what = Text(item.what + ("  CRITICAL" if item.severity == "critical" else ""),
                        style="bold red" if item.severity == "critical" else "")
            table.add_row(Text(STATUS_WORD[status], style=STATUS_STYLE[status]), str(item.due_on),
                          when(item.due_on, today), f"{item.patient_mrn} {item.patient_name}",
                          f"{item.device_serial}", what)
        self.query_one("#due-why", Static).update(f"{len(rows)} item(s) · Enter opens the device")
        self._explain()

    @on(DataTable.RowHighlighted, "#due-table")
    def _explain(self) -> None:
        table = self.query_one("#due-table", DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return
        item, _ = self.rows[table.cursor_row]
        self.query_one("#due-why", Static).update(
            Text(f"{item.what} for {item.device_model} {item.device_serial}: {item.why} [{item.rule}]", style="dim")
        )

    @on(DataTable.RowSelected, "#due-table")
    def _open(self) -> None:
        table = self.query_one("#due-table", DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return
        from devicelog.tui.screens.device import DeviceScreen

        item, _ = self.rows[table.cursor_row]
        self.app.push_screen(DeviceScreen(item.device_id))
