"""The clinic terminal UI.

``make_app(engine, settings, today, user)`` builds it for the CLI and for the tests;
today is passed in and never read from the clock here.

Nothing proportional to the clinic's size is loaded: the first screen paints, then
each screen reads what it shows in worker threads (``devicelog.tui.state``).  After a
save the app publishes ``records_changed`` with the devices the entry touched, and
each screen refreshes only those (``Changed``).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from textual.app import App
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.signal import Signal

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from devicelog.clinic.catalogue import Catalogue
    from devicelog.settings import Settings
    from devicelog.tui.preload import Preload


@dataclass(frozen=True)
class Changed:
    """What a save (or a reload) touched.

    ``device_ids``: devices whose record changed (their items, their patient's details);
    ``new_records``: a patient or device was added, so a search may find more;
    ``everything``: read it all again (F5).
    """

    device_ids: frozenset[int] = frozenset()
    new_records: bool = False
    everything: bool = False

    def touches(self, device_ids: Iterable[int]) -> bool:
        return self.everything or not self.device_ids.isdisjoint(device_ids)


class ClinicCommands(Provider):
    """The main actions in the command palette (ctrl+p)."""

    def _commands(self):
        app = self.app
        commands = [
            ("Register patient", "Add a new patient (F2)", app.action_register_patient),
            ("Register device", "Add a device with its UDI (F3)", app.action_register_device),
            ("Due list", "Everything due in the clinic, by kind and range (F4)", app.action_due),
            ("Search", "Find a patient by MRN, name or device serial (ctrl+f)", app.action_search),
            ("Log visit", "Log an entry for the device on screen (v)", app.action_log_visit),
            ("Safety notices", "Advisories and recalls, and the devices they concern (F7)", app.action_advisories),
            ("Acknowledge due item", "Acknowledge the highlighted due item with a reason (a on the due list)",
             app.action_acknowledge_item),
            ("Snooze due item", "Snooze the highlighted due item until a date (z on the due list)", app.action_snooze_item),
            ("Show or hide acknowledged items", "On the due list (h)", app.action_toggle_acknowledged),
            ("Reload", "Read the database again (F5)", app.action_reload),
        ]
        return commands

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield Hit(1.0, name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class DeviceLogApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "devicelog"
    COMMANDS = App.COMMANDS | {ClinicCommands}
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True)]

    def __init__(self, engine: Engine, settings: Settings, today: dt.date, user: str, preload: Preload | None = None) -> None:
        super().__init__()
        #: The first screen's data read while the app started (``devicelog tui``), else None.
        self.preload = preload
        self.engine = engine
        self.settings = settings
        self.today = today
        self.user = user
        from devicelog.reports.safe import visible

        # The clinic's name (settings) and the user's (--user) show as typed, never run.
        self.sub_title = visible(f"{settings.clinic_name} · {today.isoformat()} · {user}", one_line=True)
        self._catalogue: Catalogue | None = None
        self._catalogue_lock = threading.Lock()
        #: Published on the UI thread after a save: a ``Changed``.
        self.records_changed: Signal[Changed] = Signal(self, "records-changed")

    def on_mount(self) -> None:
        from devicelog.tui.screens.main import MainScreen

        self.push_screen(MainScreen())

    # ------------------------------------------------------------------ data

    @property
    def catalogue(self) -> Catalogue | None:
        """The device models and drugs, once read (``load_catalogue`` reads them)."""
        return self._catalogue

    def load_catalogue(self) -> Catalogue:
        """The catalogue, read once (a few dozen rows); safe to call from worker threads."""
        with self._catalogue_lock:
            preload = self.preload  # read once: a reload sets it to None meanwhile
            if self._catalogue is None and preload is not None:
                self._catalogue = preload.take("catalogue", None)
            if self._catalogue is None:
                from devicelog.tui.state import load_catalogue

                self._catalogue = load_catalogue(self.engine)
            return self._catalogue

    def changed(self, device_ids: Iterable[int] = (), *, new_records: bool = False, everything: bool = False) -> None:
        """Tell the screens what a save touched (call on the UI thread)."""
        self.records_changed.publish(Changed(frozenset(device_ids), new_records, everything))

    # ------------------------------------------------------------------ actions

    def action_reload(self) -> None:
        self.preload = None  # what was read at start is not read again
        with self._catalogue_lock:
            self._catalogue = None  # read again, with anything imported since
        self.changed(everything=True)
        self.notify("Reloading the clinic…")

    def action_search(self) -> None:
        from devicelog.tui.screens.main import MainScreen

        while len(self.screen_stack) > 2 and not isinstance(self.screen, MainScreen):
            self.pop_screen()
        if isinstance(self.screen, MainScreen):
            self.screen.action_search()

    def action_due(self) -> None:
        from devicelog.tui.screens.due import DueScreen

        self.push_screen(DueScreen())

    def action_advisories(self) -> None:
        from devicelog.tui.screens.advisories import AdvisoriesScreen

        self.push_screen(AdvisoriesScreen())

    def _on_due_list(self, action: str) -> None:
        """Run a due-list action (issue 14.2) there, or open the due list to choose the item."""
        from devicelog.tui.screens.due import DueScreen

        if isinstance(self.screen, DueScreen):
            getattr(self.screen, f"action_{action}")()
        else:
            self.action_due()
            self.notify("Highlight the item on the due list, then press a (acknowledge) or z (snooze).")

    def action_acknowledge_item(self) -> None:
        self._on_due_list("acknowledge")

    def action_snooze_item(self) -> None:
        self._on_due_list("snooze")

    def action_toggle_acknowledged(self) -> None:
        self._on_due_list("toggle_acknowledged")

    def action_quality(self) -> None:
        from devicelog.tui.screens.quality import QualityScreen

        self.push_screen(QualityScreen())

    def action_register_patient(self) -> None:
        from devicelog.tui.screens.register import PatientScreen

        def registered(mrn: str | None) -> None:
            if mrn:
                self.action_register_device(mrn)

        self.push_screen(PatientScreen(), registered)

    def action_register_device(self, patient_mrn: str = "") -> None:
        from devicelog.tui.screens.register import DeviceRegisterScreen

        if self.catalogue is None:
            self.notify("Still loading the clinic; try again in a moment.", severity="warning")
            return
        self.push_screen(DeviceRegisterScreen(patient_mrn))

    def action_log_visit(self) -> None:
        from devicelog.tui.screens.device import DeviceScreen

        if isinstance(self.screen, DeviceScreen):
            self.screen.action_log_visit()
        else:
            self.notify("Open a device first (search, then Enter), then log the visit.", severity="warning")


def make_app(engine: Engine, settings: Settings, today: dt.date, user: str, preload: Preload | None = None) -> DeviceLogApp:
    """The app for the CLI and the tests; ``preload``: the first screen's data, being read."""
    return DeviceLogApp(engine, settings, today, user, preload)
