"""The clinic terminal UI.

``make_app(engine, settings, today, user)`` builds it for the CLI and for the tests;
today is passed in and never read from the clock here.  The clinic's histories and
forecasts are loaded in a worker thread into ``app.state`` (a reactive: screens watch
it) and refreshed for the devices an entry touched.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.reactive import reactive

from devicelog.settings import Settings
from devicelog.tui.state import ClinicState


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

    state: reactive[ClinicState | None] = reactive(None, always_update=True)

    def __init__(self, engine: Engine, settings: Settings, today: dt.date, user: str) -> None:
        super().__init__()
        self.engine = engine
        self.settings = settings
        self.today = today
        self.user = user
        self.sub_title = f"{settings.clinic_name} · {today.isoformat()} · {user}"

    def on_mount(self) -> None:
        from devicelog.tui.screens.main import MainScreen

        self.push_screen(MainScreen())
        self.reload_state()

    # ------------------------------------------------------------------ data

    @work(thread=True, exclusive=True, group="state")
    def reload_state(self) -> None:
        from devicelog.tui.state import load_state

        state = load_state(self.engine, self.settings)
        self.call_from_thread(setattr, self, "state", state)

    @work(thread=True, group="state-devices")
    def refresh_devices(self, device_ids: list[int]) -> None:
        from devicelog.tui.state import reload_devices

        if self.state is None:
            self.reload_state()
            return
        state = reload_devices(self.state, self.engine, self.settings, device_ids)
        self.call_from_thread(setattr, self, "state", state)

    # ------------------------------------------------------------------ actions

    def action_reload(self) -> None:
        self.reload_state()
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

    def action_register_patient(self) -> None:
        from devicelog.tui.screens.register import PatientScreen

        def registered(mrn: str | None) -> None:
            if mrn:
                self.action_register_device(mrn)

        self.push_screen(PatientScreen(), registered)

    def action_register_device(self, patient_mrn: str = "") -> None:
        from devicelog.tui.screens.register import DeviceRegisterScreen

        if self.state is None:
            self.notify("Still loading the clinic; try again in a moment.", severity="warning")
            return
        self.push_screen(DeviceRegisterScreen(patient_mrn))

    def action_log_visit(self) -> None:
        from devicelog.tui.screens.device import DeviceScreen

        if isinstance(self.screen, DeviceScreen):
            self.screen.action_log_visit()
        else:
            self.notify("Open a device first (search, then Enter), then log the visit.", severity="warning")


def make_app(engine: Engine, settings: Settings, today: dt.date, user: str) -> DeviceLogApp:
    """The app for the CLI and the tests."""
    return DeviceLogApp(engine, settings, today, user)
