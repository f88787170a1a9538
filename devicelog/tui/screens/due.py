"""The clinic's due list (``store.due.due_list``), filtered by device kind and range,
with the items suppressed by goals of care (rule 24) and the forecast's notes under it."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Header, Label, Select, Static

from devicelog.clinic.due import shown_red
from devicelog.clinic.records import DeviceKind
from devicelog.clinic.words import plural
from devicelog.tui.format import STATUS_STYLE, STATUS_WORD, one_line, plain, shown, when
from devicelog.tui.widgets.footer import ClinicFooter

FILL_CHUNK = 500

RANGES = [("overdue and next 7 days", 7), ("next 14 days", 14), ("next 30 days", 30), ("next 90 days", 90),
          ("overdue only", 0), ("everything", -1)]


class DueScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("k", "focus_kind", "Kind"),
        Binding("g", "focus_range", "Range"),
        Binding("p", "print_due", "Print"),
        Binding("a", "acknowledge", "Ack"),
        Binding("z", "snooze", "Snooze"),
        Binding("h", "toggle_acknowledged", "Ack'd"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows = []
        self.due_list = None
        self.stale = False
        self._filling = 0  # which list the table is being filled with
        #: h: list the acknowledged and snoozed items too, marked (issue 14.2)
        self.show_acknowledged = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="due-filters"):
            yield Label("Kind")
            yield Select([(k.label, k.value) for k in DeviceKind], prompt="all devices", id="due-kind", compact=True)
            yield Label("Range")
            yield Select(RANGES, value=30, allow_blank=False, id="due-range", compact=True)
        yield DataTable(id="due-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="due-foot")
        yield Static("Loading the due list…", id="due-why")
        yield ClinicFooter()

    def on_mount(self) -> None:
        table = self.query_one("#due-table", DataTable)
        table.add_columns("Status", "Due", "When", "Patient", "Device", "What")
        self.app.records_changed.subscribe(self, self._records_changed)
        self.query_one("#due-foot", Static).display = False
        self.load()
        table.focus()

    def _records_changed(self, change) -> None:
        # Any save may move an item into or out of the range: read the list again,
        # now if it is on screen, else when the screen comes back.
        self.stale = True
        if self.is_current:
            self.stale = False
            self.load()

    def on_screen_resume(self) -> None:
        if self.stale:
            self.stale = False
            self.load()

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
        from devicelog.tui.reads import log_opened

        try:
            path, message = print_due_pdf(app.engine, app.settings, app.today, within, kinds, Path.cwd())
        except Exception as exc:  # a full disk, an unwritable folder: say so, keep the screen
            app.call_from_thread(app.notify, f"Due list PDF not written: {exc}", severity="error")
            return
        # names and MRNs of everyone on it, on paper: a logged read (issue 15)
        log_opened(app, f"due list as of {app.today} (pdf)", scope=f"every patient on the due list as of {app.today}, written to {path}")
        app.call_from_thread(app.notify, message, timeout=12)

    @on(Select.Changed)
    def _filter(self) -> None:
        self.load()

    def load(self) -> None:
        kind = self.query_one("#due-kind", Select).value
        days = self.query_one("#due-range", Select).value
        kinds = None if kind is Select.NULL or kind is None else [DeviceKind(kind)]
        self._compute(kinds, days, self.show_acknowledged)

    def _highlighted(self):
        table = self.query_one("#due-table", DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def action_acknowledge(self) -> None:
        """a: acknowledge the highlighted item with a reason (a form with a preview)."""
        self._open_ack_form("acknowledge")

    def action_snooze(self) -> None:
        """z: snooze the highlighted item until a date, with a reason."""
        self._open_ack_form("snooze")

    def _open_ack_form(self, kind: str) -> None:
        from devicelog.tui.screens.acks import AckScreen

        row = self._highlighted()
        if row is None:
            self.notify("Highlight an item first.", severity="warning")
            return
        item = row[0]
        if self.due_list is not None and any(e.item.key == item.key for e in self.due_list.hidden):
            self.notify("This item is already acknowledged or snoozed (devicelog due withdraw takes that back).",
                        severity="warning")
            return

        def saved(message: str | None) -> None:
            if message:
                self.notify(message)

        self.app.push_screen(AckScreen(item, kind), saved)

    def action_toggle_acknowledged(self) -> None:
        """h: show or hide the acknowledged and snoozed items (marked when shown)."""
        self.show_acknowledged = not self.show_acknowledged
        self.notify("Acknowledged and snoozed items shown, marked." if self.show_acknowledged
                    else "Acknowledged and snoozed items hidden (counted under the list).")
        self.load()

    @work(thread=True, exclusive=True, group="due")
    def _compute(self, kinds, days, show_acknowledged=False) -> None:
        from textual.worker import get_current_worker

        from devicelog.tui.state import due_view

        app = self.app
        within = None if days == -1 else max(days, 0)
        dl = due_view(app.engine, as_of=app.today, settings=app.settings, within_days=within, kinds=kinds or (),
                      show_acknowledged=show_acknowledged)
        acks = {e.item.key: e.ack for e in dl.hidden}
        rows = [(e.item, e.status) for e in dl.entries]
        if days == 0:
            rows = [r for r in rows if r[1] == "overdue"]
        cells = [self._cells(item, status, app.today, acks.get(item.key)) for item, status in rows]  # off the UI thread
        if not get_current_worker().is_cancelled:
            app.call_from_thread(self._show, rows, cells, dl)

    @staticmethod
    def _cells(item, status, today, ack=None) -> tuple:
        what = plain(item.what + ("  CRITICAL" if item.severity == "critical" else ""),
                     style="bold red" if shown_red(item) and ack is None else "")
        if ack is not None:  # listed with h: marked, not shown as active
            word = "ack'd" if ack.kind == "acknowledge" else "snoozed"
            return (Text(word, style="dim italic"), str(item.due_on), when(item.due_on, today),
                    plain(f"{item.patient_mrn} {item.patient_name}"), plain(item.device_serial), what)
        return (Text(STATUS_WORD[status], style=STATUS_STYLE[status]), str(item.due_on), when(item.due_on, today),
                plain(f"{item.patient_mrn} {item.patient_name}"), plain(item.device_serial), what)

    def _show(self, rows, cells, dl=None) -> None:
        self.due_list = dl
        self._show_foot(dl)
        table = self.query_one("#due-table", DataTable)
        table.clear()
        self.rows = rows
        self._filling += 1
        self._add_rows(self._filling, cells, 0)
        self.query_one("#due-why", Static).update(f"{plural(len(rows), 'item')} · Enter opens the device")
        self._explain()

    def _add_rows(self, filling: int, cells: list, start: int) -> None:
        """A long list (11,000 rows on a 20,000-patient clinic) goes in by chunks, a screen
        refresh between them, so the keyboard answers while it fills."""
        if filling != self._filling or not self.is_attached:
            return  # a newer list replaced this one
        self.query_one("#due-table", DataTable).add_rows(cells[start:start + FILL_CHUNK])
        if start + FILL_CHUNK < len(cells):
            self.call_after_refresh(self._add_rows, filling, cells, start + FILL_CHUNK)

    def _show_foot(self, dl) -> None:
        """What the list leaves out, and why: the items suppressed by goals of care (rule 24)
        and the forecast's notes, one line each, count first (the PDF, p, prints them all)."""
        foot = self.query_one("#due-foot", Static)
        lines = Text(no_wrap=True, overflow="ellipsis")
        if dl is not None and dl.hidden:
            acked, snoozed = dl.hidden_counts()
            words = " and ".join(w for w in (f"{acked} acknowledged" if acked else "", f"{snoozed} snoozed" if snoozed else "") if w)
            noun = "item" if acked + snoozed == 1 else "items"
            lines.append(f"{words} {noun} {'shown, marked' if dl.show_acknowledged else 'not listed'}", style="bold cyan")
            lines.append(" (h shows or hides them)\n", style="cyan")
        if dl is not None and dl.suppressed:
            n = len(dl.suppressed)
            reasons = "; ".join(f"{count} × {reason}" for reason, count in dl.suppressed_by_reason())
            lines.append(f"{n} item{'s' if n != 1 else ''} suppressed by goals of care (rule 24), not listed", style="bold magenta")
            lines.append(f" (p prints why): {one_line(reasons)}\n", style="magenta")
        if dl is not None and dl.notes:
            n = len(dl.notes)
            first = dl.notes[0]
            lines.append(f"{n} forecast note{'s' if n != 1 else ''}", style="bold yellow")
            lines.append(one_line(f"{' (p prints them all)' if n > 1 else ''}: {first.device_serial} ({first.patient_mrn}) "
                                  f"{first.warning.message} [{first.warning.rule}]"), style="yellow")
        lines.rstrip()
        foot.update(shown(lines))
        foot.display = bool(lines.plain)

    @on(DataTable.RowHighlighted, "#due-table")
    def _explain(self) -> None:
        table = self.query_one("#due-table", DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return
        item, _ = self.rows[table.cursor_row]
        ack = next((e.ack for e in self.due_list.hidden if e.item.key == item.key), None) if self.due_list else None
        said = f" — {ack.text()}" if ack is not None else ""
        self.query_one("#due-why", Static).update(
            plain(f"{item.what} for {item.device_model} {item.device_serial}: {item.why} [{item.rule}]{said}", style="dim")
        )

    @on(DataTable.RowSelected, "#due-table")
    def _open(self) -> None:
        table = self.query_one("#due-table", DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return
        from devicelog.tui.screens.device import open_device

        item, _ = self.rows[table.cursor_row]
        open_device(self, item.device_id, pump=item.device_kind is DeviceKind.intrathecal_pump)
