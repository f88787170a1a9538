"""Before an MRI (rule 13): the device's checklist, the MRI date, and its two records.

Opened from the device screen (``m``).  The checklist (``devicelog.clinic.mri``) is
redrawn as the MRI date is typed.  ``ctrl+s`` records the checklist as done for that
date (a ``pre_mri_checklist`` reintervention, with an optional note: volume withdrawn,
analgesia plan); ``F2`` opens the visit form for the post-MRI interrogation, its reason
already ``post-MRI`` and its MRI date filled in, saved like any other interrogation (``services.record_event``: checks, audit chain, due table).
"""

from __future__ import annotations

from typing import Any

import datetime as dt

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Input, Label, Static

from devicelog.clinic.history import DeviceHistory
from devicelog.clinic.records import EventKind
from devicelog.tui.format import one_line, shown
from devicelog.tui.screens.visit import VisitScreen
from devicelog.tui.widgets.footer import ClinicFooter


class PostMriVisitScreen(VisitScreen):
    """The interrogation form with its reason set to post-MRI and its MRI date filled in."""

    def __init__(self, history: DeviceHistory, mri_on: dt.date) -> None:
        super().__init__(history, EventKind.interrogation)
        self.mri_on = mri_on

    def opening_values(self, values: dict[str, Any]) -> dict[str, Any]:
        # Composed with these values (not set once the form is drawn, after keys typed
        # as it opened: issue 13.2).
        return {**values, "reason": "post_mri", "mri_on": self.mri_on.isoformat()}

    def evaluate(self):
        """The form's own checks, and: a post-MRI interrogation is dated on or after the MRI."""
        ev = super().evaluate()
        if ev.occurred_on is not None and ev.occurred_on < self.mri_on:
            ev.problems.setdefault("occurred_on", []).append(
                f"is before the MRI on {self.mri_on}: a post-MRI interrogation comes after the scan")
        return ev


class MriScreen(Screen):
    DEFAULT_CSS = """
    MriScreen #mri-date-row { height: 3; }
    MriScreen #mri-date-row Label { width: auto; padding: 1 1 0 1; }
    MriScreen #mri-date { width: 18; }
    MriScreen #mri-date-problem { height: auto; padding: 0 1; }
    MriScreen #mri-body { height: 1fr; padding: 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+s", "record", "Checklist done", priority=True),
        Binding("f2", "interrogate", "Log post-MRI interrogation", priority=True),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, history: DeviceHistory, mri_on: dt.date | None = None) -> None:
        super().__init__()
        self.history = history
        self.mri_on = mri_on
        self.saving = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="mri-date-row"):
            yield Label("MRI date (YYYY-MM-DD): ")
            yield Input(value=self.mri_on.isoformat() if self.mri_on else "", placeholder="YYYY-MM-DD", id="mri-date")
        yield Static("", id="mri-date-problem")
        with VerticalScroll(id="mri-body"):
            yield Static("", id="mri-checklist")
        yield ClinicFooter()

    def on_mount(self) -> None:
        self.app.records_changed.subscribe(self, self._records_changed)
        self.query_one("#mri-date", Input).focus()
        self.render_checklist()
        # The history handed over may predate an entry saved a moment ago (the device
        # screen reloads in a worker): read it again, so a refill logged today is counted.
        self.reload()

    def _records_changed(self, change) -> None:
        if change.touches([self.history.device.id]):
            self.reload()

    @work(thread=True, exclusive=True, group="mri")
    def reload(self) -> None:
        from devicelog.tui.state import device_view

        view = device_view(self.app.engine, self.history.device.id, settings=self.app.settings)
        if view is not None:
            self.app.call_from_thread(self._reloaded, view.history)

    def _reloaded(self, history: DeviceHistory) -> None:
        self.history = history
        self.render_checklist()

    @on(Input.Changed, "#mri-date")
    def _date_typed(self, event: Input.Changed) -> None:
        from devicelog import forms
        from devicelog.problems import InputError

        problem = self.query_one("#mri-date-problem", Static)
        try:
            self.mri_on = forms.parse_date("mri_on", event.value, today=self.app.today)
            problem.update("")
        except InputError as exc:
            self.mri_on = None
            problem.update(shown(Text("; ".join(f"MRI date {p.value!r}: {p.message}" for p in exc.problems), style="bold red")))
        self.render_checklist()

    def render_checklist(self) -> None:
        from devicelog.clinic import mri
        from devicelog.commands.mri import lines

        app = self.app
        checklist = mri.checklist(self.history, app.load_catalogue().drugs, app.today, self.mri_on)
        text = Text()
        for style, line in lines(checklist, app.today):
            text.append(one_line(line) + "\n", style=style)
        if checklist.applies:
            text.append("\nctrl+s: record this checklist as done for the MRI date · F2: log the post-MRI interrogation\n", style="dim")
        self.query_one("#mri-checklist", Static).update(shown(text))

    def _need_date(self) -> dt.date | None:
        if self.mri_on is None:
            self.notify("Type the MRI date first (YYYY-MM-DD).", severity="warning")
            self.query_one("#mri-date", Input).focus()
        return self.mri_on

    def action_record(self) -> None:
        from devicelog.tui.screens.dialogs import ReasonScreen

        if not self.history.device.model.is_pump:
            self.notify("Rule 13's checklist is for pumps: nothing to record for a stimulator.", severity="warning")
            return
        mri_on = self._need_date()
        if mri_on is None or self.saving:
            return

        def answered(note: str | None) -> None:
            if note:
                self._record(mri_on, "" if note.strip() in ("-", "none") else note)

        self.app.push_screen(
            ReasonScreen(f"Record the pre-MRI checklist as done for the MRI on {mri_on}?\n"
                         "Say what was done (volume withdrawn in mL, the alternative analgesia), or '-'.",
                         "Checklist done"),
            answered,
        )

    @work(thread=True, exclusive=True, group="save")
    def _record(self, mri_on: dt.date, note: str) -> None:
        from devicelog.commands.mri import record_checklist
        from devicelog.problems import InputError
        from devicelog.store.db import write_session

        app = self.app
        self.saving = True
        try:
            with write_session(app.engine) as session:
                record_checklist(session, serial=self.history.device.serial, mri_on=mri_on, note=note,
                                 author=app.user, today=app.today, settings=app.settings)
        except InputError as exc:
            from devicelog.forms import problem_text

            app.call_from_thread(self.notify, "Not saved: " + "; ".join(problem_text(p) for p in exc.problems), severity="error")
            return
        finally:
            self.saving = False
        app.call_from_thread(self.notify, f"Pre-MRI checklist recorded for the MRI on {mri_on}.")
        app.call_from_thread(app.changed, [self.history.device.id])

    def action_interrogate(self) -> None:
        if not self.history.device.model.is_pump:
            self.notify("No post-MRI interrogation is asked of a stimulator (rule 13 is for pumps).", severity="warning")
            return
        mri_on = self._need_date()
        if mri_on is None:
            return
        self.app.push_screen(PostMriVisitScreen(self.history, mri_on))
