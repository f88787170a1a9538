"""Safety notices on screen (issue 18, section 1): the notices, then the devices each concerns.

The top table lists every imported notice with its counts; moving onto one lists the
devices it concerns below (implanted first, then explanted apart), each with its tier,
the evidence of the highlighted one, and whether what was done has been recorded.
``k`` on a device opens :class:`AcknowledgeScreen`: choose what was done, see the
record as it will be saved, save (ctrl+s).  The due item then goes.

Notices are imported with ``devicelog advisory import FILE`` (no file dialog here: a
notice arrives as a file the clinic saves, and the report of what could not be read
belongs in the terminal where it can be kept).
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Header, Input, SelectionList, Static

from devicelog.tui.format import one_line, plain, shown
from devicelog.tui.widgets.footer import ClinicFooter


class AdvisoriesScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("k", "acknowledge", "Record what was done"),
        Binding("tab", "switch", "Notices/devices", show=False),
    ]

    DEFAULT_CSS = """
    AdvisoriesScreen #notices { height: auto; max-height: 8; }
    AdvisoriesScreen #notice-detail { height: auto; max-height: 6; padding: 0 1; }
    AdvisoriesScreen #affected { height: 1fr; }
    AdvisoriesScreen #evidence { height: auto; max-height: 4; padding: 0 1; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: list = []
        self.counts: dict = {}
        self.affected: list = []
        self.notice_id: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Safety notices (advisories and recalls) · import with: devicelog advisory import FILE", id="notices-title")
        yield DataTable(id="notices", cursor_type="row", zebra_stripes=True)
        yield Static("", id="notice-detail")
        yield DataTable(id="affected", cursor_type="row", zebra_stripes=True)
        yield Static("", id="evidence")
        yield ClinicFooter()

    def on_mount(self) -> None:
        self.query_one("#notices", DataTable).add_columns("ID", "Issued", "Class", "Devices", "Open", "Possible", "Title")
        self.query_one("#affected", DataTable).add_columns("MRN", "Patient", "Device", "Match", "Done", "Status")
        self.query_one("#notices", DataTable).focus()
        self.app.records_changed.subscribe(self, lambda change: self.load())
        self.load()

    @work(thread=True, exclusive=True, group="advisories")
    def load(self) -> None:
        from devicelog.store import advisories
        from devicelog.store.db import read_session

        app = self.app
        with read_session(app.engine) as session:
            rows = advisories.notices(session)
            counts = advisories.counts(session)
        app.call_from_thread(self._show_notices, rows, counts)

    def _show_notices(self, rows, counts) -> None:
        self.rows, self.counts = rows, counts
        table = self.query_one("#notices", DataTable)
        keep = self.notice_id
        table.clear()
        for r in rows:
            matched, open_, possible = counts.get(r.id, (0, 0, 0))
            table.add_row(str(r.id), str(r.issued_on), r.notice_class, str(matched), str(open_), str(possible),
                          plain(r.title), key=str(r.id))
        if not rows:
            self.query_one("#notice-detail", Static).update(
                "No safety notices imported. In a terminal: devicelog advisory import FILE (devicelog JSON/CSV or an openFDA recall).")
            return
        index = next((n for n, r in enumerate(rows) if r.id == keep), 0)
        table.move_cursor(row=index)
        self._open(rows[index].id)

    @on(DataTable.RowHighlighted, "#notices")
    def _notice_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value and int(event.row_key.value) != self.notice_id:
            self._open(int(event.row_key.value))

    def _open(self, notice_id: int) -> None:
        from devicelog.clinic.advisory import SEVERITY_BY_CLASS

        self.notice_id = notice_id
        row = next(r for r in self.rows if r.id == notice_id)
        detail = Text()
        detail.append(f"{one_line(row.source)} · class {row.notice_class} → due items {SEVERITY_BY_CLASS[row.notice_class]}\n",
                      style="bold")
        detail.append("What to do: " + one_line(" ".join(row.recommended_action.split())))
        for piece in row.unparsed or []:
            detail.append(f"\nNOT READ (check by hand): {one_line(piece)}", style="bold yellow")
        self.query_one("#notice-detail", Static).update(shown(detail))
        self.load_affected(notice_id)

    @work(thread=True, exclusive=True, group="advisory-affected")
    def load_affected(self, notice_id: int) -> None:
        from devicelog.store import advisories
        from devicelog.store.db import read_session
        from devicelog.tui.reads import log_opened

        app = self.app
        with read_session(app.engine) as session:
            affected = advisories.affected(session, notice_id)
        if affected and not log_opened(app, f"safety notice {notice_id}: affected devices",
                                       patients=[a.patient_mrn for a in affected], devices=[a.serial for a in affected]):
            return
        app.call_from_thread(self._show_affected, notice_id, affected)

    def _show_affected(self, notice_id: int, affected) -> None:
        from devicelog.clinic.advisory import ACTIONS, TIER_SHORT

        if notice_id != self.notice_id:
            return
        # Implanted first, explanted and replaced apart below them (no due item).
        self.affected = [a for a in affected if a.implanted] + [a for a in affected if not a.implanted]
        table = self.query_one("#affected", DataTable)
        table.clear()
        for n, a in enumerate(self.affected):
            done = (f"{a.acknowledged_on}: {', '.join(ACTIONS.get(x, x) for x in a.actions)}" if a.acknowledged_on
                    else ("OPEN" if a.implanted else "—"))
            status = a.status if a.implanted else f"{a.status} (apart)"
            table.add_row(plain(a.patient_mrn), plain(a.patient_name), plain(a.serial), f"{a.tier} {TIER_SHORT[a.tier]}",
                          plain(done, "bold red" if done == "OPEN" else ""), status, key=str(n))
        implanted = sum(1 for a in self.affected if a.implanted)
        self.query_one("#evidence", Static).update(
            f"{implanted} implanted, {len(self.affected) - implanted} explanted or replaced." if self.affected
            else "No device in the clinic matches this notice.")

    @on(DataTable.RowHighlighted, "#affected")
    def _device_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is None or event.row_key.value is None:
            return
        a = self.affected[int(event.row_key.value)]
        from devicelog.clinic.advisory import TIER_LABELS

        text = Text(f"{one_line(a.serial)} · {one_line(a.model)} · match {a.tier} ({TIER_LABELS[a.tier]}): ", style="bold")
        text.append(one_line(a.evidence))
        if a.note:
            text.append(f"\nNote: {one_line(a.note)} ({one_line(a.acknowledged_by)})")
        self.query_one("#evidence", Static).update(shown(text))

    def action_switch(self) -> None:
        notices, affected = self.query_one("#notices", DataTable), self.query_one("#affected", DataTable)
        (affected if notices.has_focus else notices).focus()

    def action_acknowledge(self) -> None:
        table = self.query_one("#affected", DataTable)
        if not self.affected or self.notice_id is None:
            self.notify("No device to acknowledge: choose a notice that matches a device.", severity="warning")
            return
        a = self.affected[table.cursor_row]
        if a.acknowledged_on is not None:
            self.notify(f"Already recorded on {a.acknowledged_on} by {a.acknowledged_by}.", severity="warning", markup=False)
            return
        notice_id = self.notice_id
        self.app.push_screen(AcknowledgeScreen(notice_id, a.serial, a.patient_name), lambda saved: self._acknowledged(saved, a))

    def _acknowledged(self, saved: bool | None, a) -> None:
        if saved:
            self.app.changed([a.device_id])
            self.notify(f"Recorded for {a.serial}; its due item is closed.", markup=False)


class AcknowledgeScreen(ModalScreen[bool]):
    """What was done about a notice for one device, previewed, then saved (ctrl+s)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save", priority=True)]

    def __init__(self, notice_id: int, serial: str, patient_name: str) -> None:
        super().__init__()
        self.notice_id, self.serial, self.patient_name = notice_id, serial, patient_name

    def compose(self) -> ComposeResult:
        from devicelog.clinic.advisory import ACTIONS

        with Vertical(classes="dialog"):
            yield Static(shown(Text(f"Safety notice {self.notice_id} · {one_line(self.serial)} ({one_line(self.patient_name)}): "
                                    "what was done? (space ticks)", style="bold")), classes="question")
            yield SelectionList[str](*[(label, key) for key, label in ACTIONS.items()], id="done")
            yield Input(placeholder="note (optional): who was told, what was found", id="note")
            yield Static("", id="ack-preview")
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#done", SelectionList).focus()
        self._preview()

    def _chosen(self) -> list[str]:
        return list(self.query_one("#done", SelectionList).selected)

    @on(SelectionList.SelectedChanged)
    @on(Input.Changed)
    def _preview(self) -> None:
        from devicelog.clinic.advisory import ACTIONS

        chosen = self._chosen()
        note = self.query_one("#note", Input).value.strip()
        text = Text("Will record: ", style="bold")
        if chosen:
            text.append(", ".join(ACTIONS[c] for c in chosen) + f" · on {self.app.today} · by {self.app.user}")
            if note:
                text.append(f" · note: {note}")
        else:
            text.append("nothing yet: tick at least one action", style="bold red")
        self.query_one("#ack-preview", Static).update(shown(text))

    def action_cancel(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(False)

    def action_save(self) -> None:
        if not self._chosen():
            self.notify("Not saved: tick what was done.", severity="error")
            return
        self._save(self._chosen(), self.query_one("#note", Input).value)

    @work(thread=True, exclusive=True, group="ack")
    def _save(self, chosen: list[str], note: str) -> None:
        from devicelog.problems import InputError
        from devicelog.store import advisories
        from devicelog.store.db import write_session

        app = self.app
        try:
            with write_session(app.engine) as session:
                advisories.acknowledge(session, advisory_id=self.notice_id, serial=self.serial, actions=chosen, note=note,
                                       author=app.user, done_on=app.today, today=app.today)
        except InputError as exc:
            app.call_from_thread(self.notify, f"Not saved: {exc}", severity="error", markup=False)
            return
        app.call_from_thread(self.dismiss, True)
