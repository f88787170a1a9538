"""One device: summary, due items with why, recent entries; log, amend, void.

The screen reads its one device (history, forecast, entry rows) in a worker when it
opens, and again when a save touches that device; nothing else of the clinic.
"""

from __future__ import annotations


from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static, TabbedContent, TabPane

from devicelog.clinic.history import DeviceHistory
from devicelog.clinic.records import VISIT_FORM_KINDS, EventKind
from devicelog.tui.format import battery_summary, event_summary, item_line, one_line, plain, shown, therapy_summary
from devicelog.tui.screens.dialogs import ChooseKindScreen, ReasonScreen
from devicelog.tui.widgets.footer import ClinicFooter

RECENT = 12


def kinds_for(history: DeviceHistory) -> list[EventKind]:
    """The entries that fit the device (the store refuses the others anyway)."""
    pump = history.device.model.is_pump
    # A refill review (rule 26) names a flagged refill: recorded from its own screen (f).
    kinds = list(VISIT_FORM_KINDS)
    if pump:
        return [k for k in kinds if k not in (EventKind.trial_start, EventKind.trial_end)]
    return [k for k in kinds if k is not EventKind.refill]


class DeviceScreen(Screen):
    BINDINGS = [
        # priority: the app runs it (and awaits the form's mount) before it hands on the
        # next key; a plain binding runs only once the key has bubbled back up to the app,
        # after the keys typed behind it were handed to this screen and lost (issue 13.2).
        Binding("r", "log('refill')", "Refill", priority=True),
        Binding("v", "log_visit", "Log visit"),
        Binding("a", "amend", "Amend entry"),
        Binding("x", "void", "Entered in error"),
        Binding("h", "history", "Full history"),
        Binding("m", "mri", "MRI checklist"),
        Binding("f", "review", "Review refill flag"),
        Binding("f7", "app.advisories", "Safety notices", show=False),
        Binding("d", "tab('tab-due')", "Due", show=False),
        Binding("e", "tab('tab-events')", "Entries", show=False),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, device_id: int, *, pump: bool | None = None, view=None) -> None:
        """``pump``: whether the device is a pump, when the caller knows (the list it was
        chosen from does), so the footer shows Refill from the first frame and is not
        rebuilt when the record arrives.  ``view``: the device already read
        (``open_device``), shown in the first frame; else it is read in a worker."""
        super().__init__()
        self.device_id = device_id
        self._pump_hint = pump
        self._first_view = view
        self.event_rows: list = []
        self.view = None  # devicelog.tui.state.DeviceView, once read
        self._read_logged = False  # the read entry for opening this screen (once)
        self.may_amend = True  # False for a login the server lets record but not amend (a nurse)

    @property
    def history(self) -> DeviceHistory | None:
        return self.view.history if self.view is not None else None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading the device…", id="summary")
        with TabbedContent(id="device-tabs", initial="tab-due"):
            with TabPane("Due items (d)", id="tab-due"):
                with VerticalScroll(id="device-body"):
                    yield Static("", id="device-items")
            with TabPane("Recent entries (e)", id="tab-events"):
                yield DataTable(id="events", cursor_type="row", zebra_stripes=True)
        yield ClinicFooter()

    def on_mount(self) -> None:
        table = self.query_one("#events", DataTable)
        table.add_columns("Date", "Entry", "What was recorded", "By")
        self.app.records_changed.subscribe(self, self._records_changed)
        self.query_one("#device-body").focus()
        view, self._first_view = self._first_view, None
        if view is not None:
            self.view = view
            self._log_opened(view)
            self.render_device()
        else:
            self.load()

    def _records_changed(self, change) -> None:
        if change.touches([self.device_id]):
            self.load()

    @work(thread=True, exclusive=True, group="device")
    def load(self) -> None:
        """This device's history, forecast and entries, read together."""
        from textual.worker import get_current_worker

        from devicelog.tui.state import device_view

        import devicelog.forms  # noqa: F401 - render_device's therapy summary uses it; imported here, off the UI thread

        from devicelog.problems import InputError

        app = self.app
        app.load_catalogue()  # the visit form needs the drugs
        try:
            view = device_view(app.engine, self.device_id, settings=app.settings)
        except InputError as exc:  # the server refused this login (e.g. a scheduler): one line
            app.call_from_thread(self.notify, f"Not shown: {exc}", severity="error")
            return
        if get_current_worker().is_cancelled:
            return
        if view is None:
            app.call_from_thread(self.notify, f"No device with id {self.device_id}.", severity="error")
            return
        app.call_from_thread(self._loaded, view)

    def _loaded(self, view) -> None:
        refill_shown = self._is_pump()
        self.view = view
        self._log_opened(view)
        self.render_device()
        if self._is_pump() != refill_shown:
            self.refresh_bindings()  # the footer is rebuilt only when Refill appears or goes

    def _log_opened(self, view) -> None:
        if not self._read_logged:
            self._read_logged = True
            self._append_read(view.history.device.serial, view.history.patient.mrn)

    @work(thread=True, group="read-log")
    def _append_read(self, serial: str, mrn: str) -> None:
        from devicelog.tui.reads import log_opened, may_amend

        log_opened(self.app, f"device screen {serial} (patient {mrn})", patients=[mrn], devices=[serial])
        if not may_amend(self.app.engine):  # amend and void leave the footer (a clinician's)
            self.app.call_from_thread(self._offer_amend, False)

    def _offer_amend(self, may: bool) -> None:
        self.may_amend = may
        self.refresh_bindings()

    def _is_pump(self) -> bool:
        """Refill is offered for a pump: known from the record once read, else from the hint."""
        history = self.history
        return bool(history.device.model.is_pump if history is not None else self._pump_hint)

    def action_tab(self, tab: str) -> None:
        self.query_one("#device-tabs", TabbedContent).active = tab
        if tab == "tab-events":
            self.query_one("#events", DataTable).focus()
        else:
            self.query_one("#device-body").focus()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "log" and parameters and parameters[0] == "refill":
            return self._is_pump()
        if action == "review":
            return self._is_pump()
        if action in ("amend", "void"):
            return self.may_amend
        return True

    def render_device(self) -> None:
        history = self.history
        if history is None:
            return
        app = self.app
        p, d = history.patient, history.device
        days = (app.today - d.implanted_on).days
        summary = Text()
        summary.append(f"{one_line(p.name)}  ", style="bold")
        summary.append(f"MRN {one_line(p.mrn)} · born {p.birth_date}")
        if p.end_of_life:
            from devicelog.tui.format import value_label

            summary.append(f" · {value_label('goals_of_care', p.goals_of_care.value)}", style="bold magenta")
        if p.status.value != "active":
            summary.append(f" · {p.status.value}", style="bold magenta")
        summary.append("\n")
        summary.append(one_line(d.model.label), style="bold")
        summary.append(f" ({d.model.kind.label}) serial {one_line(d.serial)} · {d.status.value}\n")
        summary.append(f"Implanted {d.implanted_on} ({days} days ago, {d.implant_type.value})")
        if d.model.reservoir_ml:
            summary.append(f" · reservoir {d.model.reservoir_ml:g} mL")
        summary.append("\n")
        summary.append("Therapy: ", style="bold")
        summary.append(one_line(therapy_summary(history, {d.code: d for d in app.load_catalogue().drugs})) + "\n")
        summary.append("Battery: ", style="bold")
        summary.append(one_line(battery_summary(history)))
        if d.udi_di:
            summary.append("\n" + one_line(f"UDI DI {d.udi_di} lot {d.udi_lot or '—'} expiry {d.udi_expiry or '—'}"), style="dim")
        flags = history.advisories  # issue 18: every notice matching this device, open or done
        if len(flags) == 1:
            summary.append("\n" + one_line(flags[0].line), style="dim" if flags[0].acknowledged_on else "bold red")
        elif flags:  # one line whatever their number (the screen is 24 lines at the least)
            summary.append("\nSafety notices: " + "; ".join(
                f"{f.advisory_id} class {f.notice_class} {f.tier_short} "
                + ("done" if f.acknowledged_on else "OPEN") for f in flags) + " (F7: notices)",
                style="bold red" if any(f.acknowledged_on is None for f in flags) else "dim")
        self.query_one("#summary", Static).update(shown(summary))

        items = Text()
        rows = self.view.items(app.today, app.settings)
        forecast = self.view.forecast
        if not rows:
            items.append("No due items.\n", style="dim")
        from devicelog.clinic.acks import hides

        for item, status in rows:
            items.append_text(item_line(item, status, app.today))
            items.append(f"\n   why: {one_line(item.why)} [{item.rule}]\n", style="dim")
            ack = self.view.acks.get(item.key)
            if hides(ack, item, app.today):  # issue 14.2: off the active list, and why
                items.append(f"   {one_line(ack.text())}\n", style="cyan")
        if forecast is not None:
            for w in forecast.warnings:
                items.append(f"WARNING ({w.rule}): {one_line(w.message)}\n", style="bold yellow" if w.level != "note" else "dim")
            for s in forecast.suppressed:
                items.append(f"not listed: {one_line(s.item.what)} {s.item.due_on} — {one_line(s.reason)}\n", style="dim")
        self.query_one("#device-items", Static).update(shown(items))

        self._show_events(list(self.view.entries))

    def _show_events(self, rows: list) -> None:
        """Every entry row, amendments and voids included, so the original stays visible."""
        originals = sorted((e for e in rows if e.amends_id is None),
                           key=lambda e: (e.occurred_on, e.recorded_at, e.id), reverse=True)[:RECENT]
        amendments: dict[int, list] = {}
        for e in sorted(rows, key=lambda e: e.id):
            if e.amends_id is not None:
                amendments.setdefault(e.amends_id, []).append(e)
        table = self.query_one("#events", DataTable)
        table.clear()
        self.event_rows = []
        drugs = {d.code: d for d in self.app.load_catalogue().drugs}
        for original in originals:
            later = amendments.get(original.id, [])
            latest = later[-1] if later else None
            style = "strike dim" if latest is not None else ""
            marker = ""
            if latest is not None and latest.voided:
                marker = " [entered in error]"
            elif latest is not None:
                marker = " [amended]"
            table.add_row(str(original.occurred_on), Text(original.kind.label + marker, style=style if latest and latest.voided else ""),
                          plain(event_summary(original, drugs), style=style), plain(original.author), key=f"e{original.id}")
            self.event_rows.append(original)
            for amendment in later:
                label = "  ↳ entered in error" if amendment.voided else "  ↳ amendment"
                summary = f"why: {amendment.amendment_reason}" if amendment.voided else (
                    f"{event_summary(amendment, drugs)} · why: {amendment.amendment_reason}")
                table.add_row(str(amendment.occurred_on), label, plain(summary), plain(amendment.author), key=f"e{amendment.id}")
                self.event_rows.append(amendment)

    def _selected(self):
        table = self.query_one("#events", DataTable)
        tabs = self.query_one("#device-tabs", TabbedContent)
        if tabs.active != "tab-events":
            self.action_tab("tab-events")
            self.notify("Choose the entry in the list, then press the key again.")
            return None
        if not self.event_rows or table.cursor_row is None or table.cursor_row >= len(self.event_rows):
            self.notify("No entry selected: move to an entry in the list first.", severity="warning")
            return None
        return self.event_rows[table.cursor_row]

    def _open_form(self, kind: EventKind, amend=None):
        """Push the form; the returned awaitable completes once it is mounted, its cursor
        in its first field."""
        from devicelog.tui.screens.visit import VisitScreen

        history = self.history
        if history is None:
            return None
        return self.app.push_screen(VisitScreen(history, kind, amend=amend))

    async def action_log(self, kind: str) -> None:
        # Awaited: the app handles the keys typed after ``r`` only once the form is
        # mounted with its cursor placed, so none of them is lost (issue 13.2).
        mounted = self._open_form(EventKind(kind))
        if mounted is not None:
            await mounted

    def action_log_visit(self) -> None:
        history = self.history
        if history is None:
            return

        def chosen(kind: EventKind | None) -> None:
            if kind is not None:
                self._open_form(kind)

        self.app.push_screen(ChooseKindScreen(kinds_for(history)), chosen)

    def _effective(self, row):
        """The entry as it stands now (its latest amendment), for amending."""
        original_id = row.amends_id or row.id
        history = self.history
        if history is None:
            return None
        for e in history.events:
            if e.id == original_id:
                return e
        return None

    def action_amend(self) -> None:
        row = self._selected()
        if row is None:
            return
        current = self._effective(row)
        if current is None:
            self.notify("This entry was marked entered in error; it cannot be amended.", severity="warning")
            return
        if current.kind is EventKind.refill_review:
            self.notify("A refill review is not amended: mark it entered in error (x) and record the review again (f).",
                        severity="warning")
            return
        self._open_form(current.kind, amend=current)

    def action_void(self) -> None:
        row = self._selected()
        if row is None:
            return
        current = self._effective(row)
        if current is None:
            self.notify("This entry is already marked entered in error.", severity="warning")
            return
        question = (f"Mark the {current.kind.label.lower()} of {current.occurred_on} as entered in error?\n"
                    "It stays on the record, struck through; the forecast ignores it.")

        def answered(reason: str | None) -> None:
            if reason:
                self._void(current.id, reason)

        self.app.push_screen(ReasonScreen(question, "Entered in error"), answered)

    @work(thread=True, exclusive=True, group="save")
    def _void(self, event_id: int, reason: str) -> None:
        from devicelog import services
        from devicelog.store.db import write_session

        app = self.app
        try:
            with write_session(app.engine) as session:
                services.void_event(session=session, event_id=event_id, reason=reason, author=app.user)
        except services.InputError as exc:
            from devicelog.forms import problem_text

            app.call_from_thread(self.notify, "Not saved: " + "; ".join(problem_text(p) for p in exc.problems), severity="error")
            return
        app.call_from_thread(self.notify, "Marked entered in error; the original stays on the record.")
        app.call_from_thread(app.changed, [self.device_id])

    def action_review(self) -> None:
        """Rule 26: review a flagged refill (its flag stays on the due list until then)."""
        from devicelog.tui.screens.review import ReviewScreen, open_flags

        history = self.history
        if history is None or not history.device.model.is_pump:
            return
        flags = open_flags(history, self.app.settings)
        if not flags:
            self.notify("No open refill flag on this pump: nothing to review.", severity="warning")
            return
        self.app.push_screen(ReviewScreen(history, flags))

    def action_mri(self) -> None:
        from devicelog.tui.screens.mri import MriScreen

        history = self.history
        if history is None:
            return
        self.app.push_screen(MriScreen(history))

    def action_history(self) -> None:
        try:
            from devicelog.tui.screens.history import HistoryScreen
        except ImportError:
            self.notify("The full history screen is not available yet in this version.", severity="warning")
            return
        self.app.push_screen(HistoryScreen(self.device_id))


def open_device(screen: Screen, device_id: int, *, pump: bool | None = None) -> None:
    """Push the device's screen with its record already read.

    Read first, then pushed: the screen is composed and laid out once, with its data,
    instead of once with "Loading…" and again when a worker has read the device (a
    second full layout of every widget on it).  The read (history, forecast, entries:
    tens of ms) runs in a worker of ``screen``; a newer ``open_device`` cancels it.
    """
    from textual.worker import get_current_worker

    app = screen.app

    def read() -> None:
        import devicelog.forms  # noqa: F401 - render_device's therapy summary uses it; imported here, off the UI thread
        from devicelog.tui.state import device_view

        from devicelog.problems import InputError

        app.load_catalogue()  # the visit form needs the drugs
        try:
            view = device_view(app.engine, device_id, settings=app.settings)
        except InputError as exc:  # the server refused this login (e.g. a scheduler): one line
            app.call_from_thread(screen.notify, f"Not shown: {exc}", severity="error")
            return
        if get_current_worker().is_cancelled:
            return
        app.call_from_thread(push, view)

    def push(view) -> None:
        if not screen.is_current:
            return  # the nurse went elsewhere meanwhile
        if view is None:
            screen.notify(f"No device with id {device_id}.", severity="error")
            return
        app.push_screen(DeviceScreen(device_id, pump=pump, view=view))

    screen.run_worker(read, thread=True, exclusive=True, group="open-device")
