"""The main screen: warnings first, then patients and devices with instant search."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from devicelog.tui.format import item_line, short_item

WARNING_LINES = 4


class MainScreen(Screen):
    BINDINGS = [
        Binding("ctrl+f", "search", "Search"),
        Binding("f2", "app.register_patient", "New patient"),
        Binding("f3", "app.register_device", "New device"),
        Binding("f4", "app.due", "Due list"),
        Binding("f5", "app.reload", "Reload"),
        Binding("down", "to_table", "Results", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.hits = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading…", id="warnings")
        yield Input(placeholder="Search MRN, name or device serial (type to filter)", id="search", compact=True)
        yield DataTable(id="patients", cursor_type="row", zebra_stripes=True)
        yield Static("", id="status-line")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#patients", DataTable)
        table.add_columns("MRN", "Patient", "Most urgent", "Serial", "Device")
        self.watch(self.app, "state", lambda _: self._state_changed(), init=False)
        self.query_one("#search", Input).focus()
        if self.app.state is not None:
            self._state_changed()

    def _state_changed(self) -> None:
        if self.app.state is None:
            return
        self.render_warnings()
        self.run_search(self.query_one("#search", Input).value)

    def render_warnings(self) -> None:
        app = self.app
        box = self.query_one("#warnings", Static)
        # Critical items first, then overdue ones in the forecast's order.
        rows = sorted(app.state.warnings(app.today, app.settings), key=lambda r: r[0].severity != "critical")
        if not rows:
            box.update(Text(" No overdue or critical items. ", style="bold black on green"))
            box.set_class(False, "alert")
            return
        overdue = sum(1 for _, s in rows if s == "overdue")
        critical = sum(1 for i, _ in rows if i.severity == "critical")
        text = Text()
        text.append(f" {overdue} overdue · {critical} critical ", style="bold white on dark_red")
        text.append("  F4 due list for all\n", style="dim")
        for item, status in rows[:WARNING_LINES]:
            line = item_line(item, status, app.today, with_patient=True)
            line.truncate(max(20, self.size.width - 4), overflow="ellipsis")
            text.append_text(line)
            text.append("\n")
        if len(rows) > WARNING_LINES:
            text.append(f" … and {len(rows) - WARNING_LINES} more (F4)", style="bold")
        box.update(text)
        box.set_class(True, "alert")

    @on(Input.Changed, "#search")
    def _typed(self, event: Input.Changed) -> None:
        self.run_search(event.value)

    @on(Input.Submitted, "#search")
    def _submitted(self) -> None:
        self.action_to_table()

    def action_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_to_table(self) -> None:
        self.query_one("#patients", DataTable).focus()

    @work(thread=True, exclusive=True, group="search")
    def run_search(self, text: str) -> None:
        from devicelog.tui.state import search

        hits = search(self.app.engine, text)
        self.app.call_from_thread(self._show_hits, text, hits)

    def _show_hits(self, text: str, hits) -> None:
        app = self.app
        if app.state is None:
            return
        table = self.query_one("#patients", DataTable)
        table.clear()
        self.hits = []
        for hit in hits:
            p = hit.patient
            histories = [app.state.histories[i] for i in hit.device_ids if i in app.state.histories]
            name = p.name + ("" if p.status.value == "active" else f" ({p.status.value})")
            if not histories:
                table.add_row(p.mrn, name, Text("no device (Enter registers one)", style="dim"), "", "", key=f"p{p.id}")
                self.hits.append((p, None))
                continue
            for n, h in enumerate(histories):
                urgent = app.state.most_urgent(h.device.id, app.today, app.settings)
                shown = short_item(*urgent, app.today) if urgent else Text("nothing due", style="dim")
                device = h.device.model.model
                if not h.device.in_service:
                    device += f" ({h.device.status.value})"
                table.add_row(p.mrn if n == 0 else "", name if n == 0 else "", shown, h.device.serial, device,
                              key=f"d{h.device.id}")
                self.hits.append((p, h.device.id))
        # A serial typed in full (or scanned) puts the cursor on that device's row.
        wanted = text.strip().lower()
        for index, (_, device_id) in enumerate(self.hits):
            if wanted and device_id is not None and app.state.histories[device_id].device.serial.lower() == wanted:
                table.move_cursor(row=index)
                break
        count = len(hits)
        line = f"{count} patient(s)" + (f" matching {text!r}" if text.strip() else "")
        if count >= 50:
            line += " (first 50; type more to narrow)"
        line += " · Enter opens the device"
        self.query_one("#status-line", Static).update(line)

    @property
    def selected(self):
        table = self.query_one("#patients", DataTable)
        if not self.hits or table.cursor_row is None or table.cursor_row >= len(self.hits):
            return None
        return self.hits[table.cursor_row]

    @on(DataTable.RowSelected, "#patients")
    def _open(self) -> None:
        chosen = self.selected
        if chosen is None:
            return
        patient, device_id = chosen
        if device_id is None:
            self.app.action_register_device(patient.mrn)
            return
        from devicelog.tui.screens.device import DeviceScreen

        self.app.push_screen(DeviceScreen(device_id))
