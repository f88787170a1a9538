"""The main screen: warnings first, then patients and devices with instant search.

Opening reads the first overdue and critical items (``clinic_warnings``) and the
first 50 patients; each keystroke runs one search (50 patients, their devices, their
most urgent items) in an exclusive worker, so a newer keystroke drops the older
result.  Nothing else of the clinic is read.

What a keystroke costs the UI thread is kept to one repaint of the lines that change:
the results are a ``ResultsTable`` (Line API, only visible lines drawn; a DataTable
took ~55 ms to refill and repaint 50 patients), and the status line asks for no
layout of the whole screen when its size cannot change.

What Enter opens is always a row on screen, for the text in the search box (issue
13.14): each row carries its key (``d<device id>`` or ``p<patient id>``) and Enter
opens the hit of that key; while the list still shows the result of an older text
(the search for the new one not back yet: typed on, or after F5), it is dimmed and
Enter on it opens nothing; Enter in the search box opens the highlighted match (the
first, or the device whose serial was typed in full) once the list is for its text.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Header, Input, Static
from textual.worker import get_current_worker

from devicelog.clinic.words import plural
from devicelog.tui.widgets.footer import ClinicFooter
from devicelog.tui.widgets.results import ResultsTable

# devicelog.tui.format (and the clinical modules it imports) is imported by the
# workers, off the UI thread, so the first screen paints without it.

WARNING_LINES = 4


def urgent_cell(urgent, today) -> Text:
    """A device's most urgent item (``(item, status)`` or None) as a table cell."""
    from devicelog.tui import format as fmt

    return fmt.short_item(*urgent, today) if urgent else Text("nothing due", style="dim")


def hit_rows(result, today) -> list[tuple[tuple, str, tuple]]:
    """``(cells, row key, (patient, device id or None))`` for each row a search shows:
    a patient's devices under its name, a patient without a device on a row of its own.

    Cells are ``Text`` (never parsed as markup: a name may hold ``[``), control
    characters shown as marks (``tui.format.plain``)."""
    from devicelog.tui.format import plain

    rows = []
    blank = Text("")
    for hit in result.hits:
        p = hit.patient
        mrn = plain(p.mrn)
        name = plain(p.name + ("" if p.status.value == "active" else f" ({p.status.value})"))
        if not hit.devices:
            rows.append(((mrn, name, Text("no device (Enter registers one)", style="dim"), blank, blank), f"p{p.id}", (p, None)))
            continue
        for n, d in enumerate(hit.devices):
            device = d.model.model
            if not d.in_service:
                device += f" ({d.status.value})"
            cells = (mrn if n == 0 else blank, name if n == 0 else blank, urgent_cell(result.urgent.get(d.id), today),
                     plain(d.serial), plain(device))
            rows.append((cells, f"d{d.id}", (p, d.id)))
    return rows


class MainScreen(Screen):
    BINDINGS = [
        Binding("ctrl+f", "search", "Search"),
        Binding("f2", "app.register_patient", "New patient"),
        Binding("f3", "app.register_device", "New device"),
        Binding("f4", "app.due", "Due list"),
        Binding("f5", "app.reload", "Reload"),
        Binding("f6", "app.quality", "Quality report", show=False),
        Binding("f7", "app.advisories", "Safety notices", show=False),
        Binding("down", "to_table", "Results", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.hits: list = []  # (PatientInfo, device id or None) per table row
        self.hit_by_key: dict = {}  # the same, by the row's key
        self.open_when_shown: str | None = None  # Enter in the search box, for this text
        self.result = None  # the SearchResult shown
        self.urgent_column = None
        self.stale: set[str] = set()  # what changed while another screen was on top
        self.stale_devices: set[int] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading…", id="warnings")
        yield Input(placeholder="Search MRN, name or device serial (type to filter)", id="search", compact=True)
        yield ResultsTable(id="patients")
        yield Static("", id="status-line")
        yield ClinicFooter()

    def on_mount(self) -> None:
        table = self.query_one("#patients", ResultsTable)
        keys = table.add_columns("MRN", "Patient", "Most urgent", "Serial", "Device")
        self.urgent_column = keys[2]
        self.app.records_changed.subscribe(self, self._records_changed)
        self.query_one("#search", Input).focus()
        preload = self.app.preload
        if preload is not None:
            self.call_after_refresh(preload.painted)  # then it imports the ORM (tui.preload)
        if preload is not None and preload.ready("catalogue", "warnings", "search"):
            # Read while the app started (devicelog.tui.preload): shown in the first frame.
            self.app.load_catalogue()
            self.render_warnings(preload.take("warnings"))
            self._show_hits(preload.take("search"))
            return
        # The screen paints first; then the database is read in workers (started after the
        # first refresh, so their Python does not hold the GIL while the frame is drawn).
        self.call_after_refresh(self._first_load)

    def _first_load(self) -> None:
        self.load_warnings()
        self.run_search(self.query_one("#search", Input).value)

    # ------------------------------------------------------------------ after a save

    def _records_changed(self, change) -> None:
        shown = self.result.device_ids if self.result is not None else []
        if change.everything or change.new_records:
            self.stale |= {"warnings", "search"}
        elif change.touches(shown):
            self.stale |= {"warnings", "urgent"}
            self.stale_devices |= change.device_ids
        elif change.device_ids:
            self.stale.add("warnings")  # a device not on screen may still join or leave the warnings
        if self.is_current:
            self._refresh_stale()

    def on_screen_resume(self) -> None:
        self._refresh_stale()

    def _refresh_stale(self) -> None:
        stale, self.stale = self.stale, set()
        devices, self.stale_devices = self.stale_devices, set()
        if "warnings" in stale:
            self.load_warnings()
        if "search" in stale:
            self.run_search(self.query_one("#search", Input).value)
        elif "urgent" in stale:
            self.refresh_urgent(sorted(devices))

    @work(thread=True, group="urgent")
    def refresh_urgent(self, device_ids: list[int]) -> None:
        """The most urgent item of the devices a save touched, and only those."""
        from devicelog.tui.state import most_urgent

        app = self.app
        urgent = most_urgent(app.engine, device_ids, as_of=app.today, settings=app.settings)
        if not get_current_worker().is_cancelled:
            app.call_from_thread(self._show_urgent, device_ids, urgent)

    def _show_urgent(self, device_ids: list[int], urgent: dict) -> None:
        if self.result is None:
            return
        self.result.urgent.update({i: urgent[i] for i in device_ids if i in urgent})
        for i in device_ids:
            if i not in urgent:
                self.result.urgent.pop(i, None)
        table = self.query_one("#patients", ResultsTable)
        shown = {d.id for h in self.result.hits for d in h.devices}
        for i in device_ids:
            if i in shown:
                table.update_cell(f"d{i}", self.urgent_column, self._urgent_cell(i), update_width=True)

    # ------------------------------------------------------------------ warnings

    @work(thread=True, exclusive=True, group="warnings")
    def load_warnings(self) -> None:
        import devicelog.tui.format  # noqa: F401 - imported here, off the UI thread
        from devicelog.tui.state import opening_warnings

        app = self.app
        preload = app.preload  # read once: a reload sets it to None meanwhile
        found = preload.take("warnings", None) if preload is not None else None
        if found is None:
            found = opening_warnings(app.engine, as_of=app.today, settings=app.settings)
        if not get_current_worker().is_cancelled:
            app.call_from_thread(self.render_warnings, found)

    def render_warnings(self, found) -> None:
        from devicelog.tui import format as fmt

        app = self.app
        box = self.query_one("#warnings", Static)
        # Critical items first, then overdue ones in the due list's order (store.due.clinic_warnings).
        rows = list(found.rows)
        acked = getattr(found, "acknowledged", 0)
        acked_text = f"  {acked} acknowledged/snoozed" if acked else ""
        if not found.total:
            text = Text(" No overdue or critical items. ", style="bold black on green")
            text.append(acked_text, style="dim")
            box.update(text)
            box.set_class(False, "alert")
            return
        text = Text()
        if found.complete:
            overdue = sum(1 for _, s in rows if s == "overdue")
            critical = sum(1 for i, _ in rows if i.severity == "critical")
            text.append(f" {overdue} overdue · {critical} critical ", style="bold white on dark_red")
        else:
            text.append(f" {found.total} overdue or critical items ", style="bold white on dark_red")
        text.append("  F4 due list for all" + acked_text + "\n", style="dim")
        for item, status in rows[:WARNING_LINES]:
            line = fmt.item_line(item, status, app.today, with_patient=True)
            line.truncate(max(20, (self.size.width or app.size.width) - 4), overflow="ellipsis")
            text.append_text(line)
            text.append("\n")
        if found.total > WARNING_LINES:
            text.append(f" … and {found.total - WARNING_LINES} more (F4)", style="bold")
        box.update(text)
        box.set_class(True, "alert")

    # ------------------------------------------------------------------ search

    @on(Input.Changed, "#search")
    def _typed(self, event: Input.Changed) -> None:
        if self.open_when_shown != event.value:
            self.open_when_shown = None  # Enter was for another text
        self.query_one("#patients", ResultsTable).set_class(not self.showing(event.value), "outdated")
        self.run_search(event.value)

    def showing(self, text: str) -> bool:
        """Whether the list on screen is the result of searching ``text``."""
        return self.result is not None and self.result.text == text

    @on(Input.Submitted, "#search")
    def _submitted(self, event: Input.Submitted) -> None:
        """Enter in the search box opens the highlighted match (the first, or the device
        whose serial was typed in full), as soon as the list is the one for this text."""
        event.stop()
        if self.showing(event.value):
            self._open_row(self.query_one("#patients", ResultsTable).cursor_row)
        else:
            self.open_when_shown = event.value

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_to_table(self) -> None:
        self.query_one("#patients", ResultsTable).focus()

    @work(thread=True, exclusive=True, group="search")
    def run_search(self, text: str) -> None:
        """One search per keystroke; a newer keystroke cancels this one and its result is dropped."""
        import devicelog.tui.format  # noqa: F401 - imported here, off the UI thread
        from devicelog.tui.state import search

        app = self.app
        worker = get_current_worker()
        catalogue = app.load_catalogue()
        preload = app.preload  # read once: a reload sets it to None meanwhile
        result = preload.take("search", None) if preload is not None and text == "" else None
        if result is None:
            result = search(app.engine, text, as_of=app.today, settings=app.settings, catalogue=catalogue,
                            cancelled=lambda: worker.is_cancelled)
        if result is not None and not worker.is_cancelled:
            rows = hit_rows(result, app.today)  # the cells, built here rather than on the UI thread
            if not worker.is_cancelled:
                app.call_from_thread(self._show_hits, result, rows)

    def _urgent_cell(self, device_id: int) -> Text:
        return urgent_cell(self.result.urgent.get(device_id) if self.result else None, self.app.today)

    def _show_hits(self, result, rows: list | None = None) -> None:
        """Show a search's patients (``rows``: their cells, built off the UI thread by
        ``hit_rows``; built here when not given)."""
        if result.text != self.query_one("#search", Input).value:
            return  # typed on since: the search for the newer text follows
        table = self.query_one("#patients", ResultsTable)
        # The same text read again (F5, a save elsewhere): the cursor stays on its row.
        kept = table.row_key_at(table.cursor_row) if self.showing(result.text) else None
        self.result = result
        if rows is None:
            rows = hit_rows(result, self.app.today)
        table.replace_rows((cells, key) for cells, key, _ in rows)
        table.remove_class("outdated")
        self.hits = [hit for _, _, hit in rows]
        self.hit_by_key = {key: hit for _, key, hit in rows}
        # A serial typed in full (or scanned) puts the cursor on that device's row.
        wanted = result.text.strip().lower()
        serials = {d.id: d.serial.lower() for h in result.hits for d in h.devices}
        if kept is not None and table.row_index(kept) is not None:
            table.move_cursor(row=table.row_index(kept))
        else:
            for index, (_, device_id) in enumerate(self.hits):
                if wanted and device_id is not None and serials[device_id] == wanted:
                    table.move_cursor(row=index)
                    break
        count = len(result.hits)
        line = plural(count, "patient") + (f" matching {result.text!r}" if result.text.strip() else "")
        if count >= result.limit:
            line += f" (first {result.limit}; type more to narrow)"
        line += " · Enter opens the device"
        status = self.query_one("#status-line", Static)
        # A line that fits where a one-line status was needs no layout of the screen
        # (Static.update lays out every widget by default, ~5-10 ms per keystroke).
        text = Text(line)
        fits = status.size.height == 1 and text.cell_len < status.content_region.width
        status.update(text, layout=not fits)
        if self.open_when_shown == result.text:
            self.open_when_shown = None
            self._open_row(table.cursor_row)

    @property
    def selected(self):
        table = self.query_one("#patients", ResultsTable)
        return self.hit_by_key.get(table.row_key_at(table.cursor_row))

    def _open_row(self, index: int) -> None:
        table = self.query_one("#patients", ResultsTable)
        if table.row_count == 0:
            self.notify("No patient matches this search.", severity="warning")
            return
        self._open_key(table.row_key_at(index))

    @on(ResultsTable.RowSelected, "#patients")
    def _open(self, event: ResultsTable.RowSelected) -> None:
        text = self.query_one("#search", Input).value
        if not self.showing(text):
            # The rows on screen are an older search's; the one for the text typed is coming.
            self.notify(f"Still searching for {text!r}: the list below is not its result yet. "
                        "Press Enter again when it shows.", severity="warning")
            return
        self._open_key(event.row_key)

    def _open_key(self, key: str | None) -> None:
        """Open the hit of the row with this key, if that row is still on screen."""
        chosen = self.hit_by_key.get(key)
        if chosen is None:
            return
        patient, device_id = chosen
        if device_id is None:
            self.app.action_register_device(patient.mrn)
            return
        from devicelog.tui.screens.device import open_device

        pump = next((d.model.is_pump for h in self.result.hits for d in h.devices if d.id == device_id), None) if self.result else None
        open_device(self, device_id, pump=pump)
