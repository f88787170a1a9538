"""The visit form: one screen for every event kind, to log a new entry or amend one.

The fields come from ``devicelog.forms``; what they mean comes from the records
(``services.parse_event_data``), the store's own checks (``services.check_event``, run
in a worker as the form is typed) and the forecast (``refill_preview``,
``dose_warnings``, ``wound_escalation_findings``).  The screen keeps no clinical rule of
its own.  Saving is one transaction in a worker; a refused save keeps the form as
typed and shows each problem at its field.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Static

from devicelog import forms
from devicelog.clinic.history import DeviceHistory
from devicelog.clinic.programs import fmt_amount, pump_program_changes, stim_program_changes
from devicelog.clinic.records import Event, EventKind, ProgrammingData, RefillData, WoundCheckData
from devicelog.clinic.words import plural
from devicelog.services import InputError, Problem
from devicelog.tui.screens.dialogs import ConfirmScreen
from devicelog.tui.widgets.fields import FieldRow
from devicelog.reports.safe import visible
from devicelog.tui.format import plain, shown
from devicelog.tui.widgets.footer import ClinicFooter

AMEND_REASON = forms.FormField("amendment_reason", "Reason for amendment", "text", required=True)


@dataclass
class Evaluation:
    """The form read once: the record (if it validates), problems by field, the preview."""

    data: Any = None
    occurred_on: dt.date | None = None
    reason: str = ""
    problems: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)
    preview: Text = field(default_factory=Text)
    blocked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.data is not None and not self.problems and not self.general and not self.blocked


def first_field(fields: list[forms.FormField], values: dict[str, Any]) -> str | None:
    """Where the cursor starts: where the person has something to type, the first empty
    required field, else the value most often changed, else the first field after the
    date.  Worked out from the values the form opens with, before it is drawn."""
    keys = [f.key for f in fields]
    for f in fields:
        if f.required and values.get(f.key) in ("", None):
            return f.key
    for key in ("program.dose_mg_per_day", "pump_program.dose_mg_per_day", "stim.amplitude"):
        if key in keys:
            return key
    return next((k for k in keys if k != "occurred_on"), keys[0] if keys else None)


class VisitScreen(Screen["int | None"]):
    """Log (or amend) one entry for one device; dismisses with the saved event id."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "leave", "Back"),
        Binding("ctrl+t", "top", "First field"),
    ]

    def __init__(self, history: DeviceHistory, kind: EventKind, *, amend: Event | None = None) -> None:
        super().__init__()
        self.history = history
        self.kind = EventKind(kind)
        self.amend = amend
        self.fields: list[forms.FormField] = []
        self.evaluation = Evaluation()
        self.server_problems: list[Problem] = []
        self.show_all = False
        self.saving = False
        self.first_key: str | None = None  # the field the cursor starts in

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        app = self.app
        model = self.history.device.model
        drugs = app.load_catalogue().drugs
        self.fields = forms.event_fields(self.kind, model, drugs)
        if self.amend is not None:
            values = forms.raw_from_data(self.kind, self.amend.data, self.amend.occurred_on)
        else:
            values = self.opening_values(forms.defaults(self.kind, self.history, app.today))
        known = tuple(d.code for d in drugs)
        # Amending: the reason first (required, and always empty).
        self.first_key = AMEND_REASON.key if self.amend is not None else first_field(self.fields, values)
        if self.first_key:
            self.AUTO_FOCUS = "#" + FieldRow.control_id_for(self.first_key)  # should anything blur it first
        p, d = self.history.patient, self.history.device
        verb = f"Amend {self.kind.label.lower()} of {self.amend.occurred_on}" if self.amend else self.kind.label
        yield Header()
        yield Static(plain(f"{verb} · {p.mrn} {p.name} · {d.model.label} {d.serial}"), id="form-title")
        yield Static("", id="general-problems")
        with VerticalScroll(id="form"):
            if self.amend is not None:
                yield FieldRow(AMEND_REASON, "", today=app.today)
            for f in self.fields:
                yield FieldRow(f, values.get(f.key), today=app.today, known_drugs=known)
        yield Static("", id="preview")
        yield ClinicFooter()

    def on_mount(self) -> None:
        self.query_one("#preview", Static).border_title = "What this entry means"
        self.query_one("#general-problems", Static).display = False
        # Focus now, as the screen mounts, not after its first refresh: keys typed while
        # the form opened (``r`` then the residual at once) are handled after this, so
        # they reach this field in order.  (``Widget.focus`` would queue the change
        # behind those keys, and a screen with nothing focused drops them.)
        first = self.rows.get(self.first_key) if self.first_key else None
        if first is not None:
            self.set_focus(first.control)
        self.call_after_refresh(self._refresh)

    def opening_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """The raw values a new entry's form opens with (a subclass may fill in more)."""
        return values

    def action_top(self) -> None:
        rows = list(self.query(FieldRow))
        if rows:
            rows[0].control.focus()

    # ------------------------------------------------------------------ reading the form

    @property
    def rows(self) -> dict[str, FieldRow]:
        return {r.field.key: r for r in self.query(FieldRow)}

    @property
    def dirty(self) -> bool:
        return any(r.touched for r in self.query(FieldRow))

    def raw_values(self) -> dict[str, Any]:
        return {key: row.raw for key, row in self.rows.items()}

    def evaluate(self) -> Evaluation:
        app = self.app
        ev = Evaluation()
        raw = self.raw_values()
        known = [d.code for d in app.load_catalogue().drugs]

        def add(key: str, message: str) -> None:
            ev.problems.setdefault(key, []).append(message)

        if self.amend is not None:
            try:
                ev.reason = forms.parse_free_text("amendment_reason", raw.get("amendment_reason"), required=True, max_length=500)
            except InputError as exc:
                for p in exc.problems:
                    add("amendment_reason", p.message)
        try:
            typed = forms.parse_fields(self.fields, raw, today=app.today, known_drugs=known)
        except InputError as exc:
            for p in exc.problems:
                add(p.field, p.message)
            return ev
        ev.occurred_on = typed.get("occurred_on")
        keep = []
        if self.kind is EventKind.programming and not self.history.device.model.is_pump:
            programs, _ = forms.current_stim_programs(self.history)
            keep = [p.model_dump(mode="json") for p in programs]
        base = forms.base_pump_program(self.history, self.amend.data if self.amend is not None else None)
        values = forms.event_values(self.kind, typed, keep_stim_programs=keep, base_program=base)
        from devicelog.services import parse_event_data

        try:
            ev.data = parse_event_data(self.kind.value, values)
            ev.data = forms.with_limit_override(ev.data, typed.get(forms.LIMIT_OVERRIDE.key), self._dose_warnings(ev))
        except InputError as exc:
            for p in exc.problems:
                key = forms.field_for(p.field, self.fields)
                if key:
                    add(key, forms.humanise(p.message, self.fields))
                else:
                    ev.general.append(forms.problem_text(p, self.fields))
            return ev
        except ValidationError as exc:  # the override's reason (length, characters)
            add(forms.LIMIT_OVERRIDE.key, "; ".join(e["msg"] for e in exc.errors()))
            return ev
        self._preview(ev)
        return ev

    def _dose_warnings(self, ev: Evaluation) -> list:
        """The dose warnings of the program this entry sets (rules 6-7, issue 18.2)."""
        from devicelog.clinic.forecast import dose_warnings

        program = ev.data.program if isinstance(ev.data, RefillData) else getattr(ev.data, "pump_program", None)
        if program is None or ev.occurred_on is None:
            return []
        return dose_warnings(self.history, program, ev.occurred_on, self.app.settings, self.app.load_catalogue())

    def _preview(self, ev: Evaluation) -> None:
        app = self.app
        text = Text()
        data, on_date = ev.data, ev.occurred_on
        try:
            if isinstance(data, RefillData):
                self._refill_preview(ev, text)
            elif isinstance(data, ProgrammingData):
                if data.pump_program is not None:
                    self._program_changes(text, data.pump_program)
                    for w in self._dose_warnings(ev):
                        self._warning(ev, text, w)
                else:
                    programs, active = forms.current_stim_programs(self.history)
                    new = data.stim_programs[0]
                    old = next((p for p in programs if p.name == new.name), None)
                    changes = stim_program_changes(old, new)
                    if old is None:
                        text.append(f"• program {new.name} is new\n")
                    for change in changes:
                        text.append(f"• {change.line}\n")
                    if old is not None and not changes:
                        text.append("• no change from the current program\n")
                    if active is not None and data.active_program != active:
                        text.append(f"• active program: {active} → {data.active_program}\n")
                    others = len(data.stim_programs) - 1
                    if others:
                        text.append(f"• {plural(others, 'other program')} kept as they were\n", style="dim")
            elif isinstance(data, WoundCheckData):
                from devicelog.clinic.forecast import wound_escalation_findings

                findings = wound_escalation_findings(data, self.history.device.model.kind)
                if findings:
                    text.append("ESCALATE SAME DAY (rule 22): " + "; ".join(findings) + "\n", style="bold white on dark_red")
                else:
                    text.append("No escalation finding (rule 22: purulent drainage, exposed hardware, "
                                "fever > 38.0 °C, meningism in a pump patient)\n", style="green")
            else:
                from devicelog.tui.format import event_summary

                fake = Event(id=0, device_id=self.history.device.id, occurred_on=on_date, author=app.user,
                             recorded_at=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), data=data)
                text.append(f"Saves: {event_summary(fake, {d.code: d for d in app.load_catalogue().drugs})}\n")
        except Exception as exc:  # noqa: BLE001 - a preview failure must not lose the form
            text.append(f"(preview unavailable: {type(exc).__name__}: {exc})\n", style="yellow")
        ev.preview = text

    def _program_changes(self, text: Text, program) -> None:
        """Every setting the entry changes from the program it starts from, one line each
        (the same diff as the history screen: ``clinic.programs``)."""
        from devicelog.clinic.pump import drug_table

        base = forms.base_pump_program(self.history, self.amend.data if self.amend is not None else None)
        if base is None:
            text.append("• no earlier program is logged: this is the first\n")
        changes = pump_program_changes(base, program, drug_table(self.app.load_catalogue()))
        for change in changes:
            text.append(f"• {change.line}\n", style="bold")
        if base is not None and not changes:
            text.append("• program settings unchanged\n", style="dim")

    def _warning(self, ev: Evaluation, text: Text, w) -> None:
        style = {"block": "bold white on dark_red", "warn": "bold yellow", "note": "dim"}[w.level]
        word = {"block": "REFUSED", "warn": "WARNING", "note": "note"}[w.level]
        override = getattr(ev.data, "limit_override", None)
        overridden = override is not None and any(lim.code == w.code for lim in override.limits)
        if w.level == "warn" and w.code.startswith("limit_"):
            word = "OVERRIDDEN SOFT LIMIT" if overridden else "SOFT LIMIT"
        text.append(f"{word} ({w.rule}): {w.message}\n", style=style)
        if overridden:
            text.append(f"  override reason: {override.reason}\n", style="bold")
        elif w.level == "warn" and w.code.startswith("limit_"):
            need = "a soft drug limit is exceeded (see the preview): give a reason to override it"
            if need not in ev.problems.get(forms.LIMIT_OVERRIDE.key, []):
                ev.problems.setdefault(forms.LIMIT_OVERRIDE.key, []).append(need)
            text.append("  to save, type a Soft-limit override reason" + (" (a clinician's login)" if self._server() else "") + "\n",
                        style="bold yellow")
        if w.level == "block":
            ev.blocked.append(w.message)

    def _server(self) -> bool:
        return self.app.engine.dialect.name == "postgresql"

    def _refill_preview(self, ev: Evaluation, text: Text) -> None:
        from devicelog.clinic.forecast import refill_preview

        app = self.app
        pv = refill_preview(self.history, ev.data, ev.occurred_on, app.settings, app.load_catalogue(), amends=self.amend)
        self._program_changes(text, ev.data.program)
        # Drug limits and boxed warnings first: they ask for an action before saving, and
        # must be seen in a short preview (80x24) without scrolling (issue 18.2).
        first = [w for w in pv.warnings if w.code.startswith(("limit_", "boxed_warning_"))]
        for w in first:
            self._warning(ev, text, w)
        alarm_before = self.amend.data.low_alarm_ml if self.amend is not None else forms.last_low_alarm_ml(self.history)
        if ev.data.low_alarm_ml != alarm_before:
            text.append(f"• low-reservoir alarm: {fmt_amount(alarm_before, 'mL', 3)} → {fmt_amount(ev.data.low_alarm_ml, 'mL', 3)}\n",
                        style="bold")
        if pv.expected_residual_ml is not None:
            text.append(f"Expected residual {pv.expected_residual_ml:.1f} mL", style="bold")
            text.append(f"  ({pv.expected_residual_why})\n", style="dim")
        else:
            text.append(f"Expected residual: {pv.expected_residual_why}\n", style="dim")
        if pv.discrepancy is not None:
            style = "bold white on dark_red" if pv.discrepancy.flagged else "green"
            text.append(("FLAG: " if pv.discrepancy.flagged else "") + pv.discrepancy.text + "\n", style=style)
        if pv.pocket_fill.flagged:
            text.append("FLAG: " + pv.pocket_fill.text + "\n", style="bold white on dark_red")
        if pv.next_fill is not None:
            next_on, rec = pv.next_fill
            style = "bold white on dark_red" if rec.discrepancy.flagged else "dim"
            text.append(f"The refill of {next_on} then reconciles: " + ("FLAG: " if rec.discrepancy.flagged else ""), style=style)
            text.append(f"{rec.discrepancy.text} ({rec.why})\n", style=style)
        alarm = pv.low_reservoir_alarm_on
        text.append(f"Daily volume {pv.daily_volume_ml:.3f} mL/day (worst case {pv.worst_case_daily_volume_ml:.3f} mL/day)\n")
        text.append(f"Low-reservoir alarm {alarm if alarm else '— (none forecast)'}", style="bold")
        text.append(f" · next refill due {pv.refill_due_on}", style="bold")
        text.append(f" (latest safe {pv.refill_latest_safe_on})\n")
        text.append(f"  why: {pv.refill_due_why}\n", style="dim")
        for w in pv.warnings:
            if w not in first:
                self._warning(ev, text, w)

    # ------------------------------------------------------------------ showing it

    def _refresh(self) -> None:
        ev = self.evaluate()
        self.evaluation = ev
        for key, row in self.rows.items():
            messages = list(ev.problems.get(key, []))
            messages += [forms.humanise(p.message, self.fields) for p in self.server_problems if self._key_of(p) == key]
            row.show_problem("; ".join(messages) if messages and (row.touched or self.show_all) else None)
        general = list(ev.general) + [forms.problem_text(p, self.fields) for p in self.server_problems if not self._key_of(p)]
        if self.show_all:
            hidden = [k for k in ev.problems if k not in self.rows]
            general += [f"{forms.field_label(k, self.fields)}: {'; '.join(ev.problems[k])}" for k in hidden]
        box = self.query_one("#general-problems", Static)
        box.update(shown(Text("\n".join(general), style="bold red")) if general else "")
        box.display = bool(general)
        preview = self.query_one("#preview", Static)
        if ev.data is not None:
            preview.update(shown(ev.preview))
        else:
            waiting = [f"{self.rows[k].field.label}: {'; '.join(v)}" for k, v in ev.problems.items() if k in self.rows]
            preview.update(shown(Text("Fill in the form to see what this entry means.\n" + "\n".join(waiting[:4]), style="dim")))
        if ev.data is not None:
            self._check_with_store(ev)

    def _key_of(self, problem: Problem) -> str:
        if problem.field == "reason" and self.amend is not None:
            return "amendment_reason"
        if problem.field == "occurred_on":
            return "occurred_on"
        return forms.field_for(problem.field, self.fields)

    @on(FieldRow.Changed)
    def _changed(self, event: FieldRow.Changed) -> None:
        self.server_problems = []
        self._refresh()

    @work(thread=True, exclusive=True, group="check")
    def _check_with_store(self, ev: Evaluation) -> None:
        """The store's own checks (implant date, today, reservoir size), read-only."""
        from devicelog import services
        from devicelog.clinic.records import EventIn
        from devicelog.store.db import read_session

        app = self.app
        try:
            event = EventIn(device_serial=self.history.device.serial, occurred_on=ev.occurred_on,
                            author=app.user, data=ev.data)
            with read_session(app.engine) as session:
                _, problems = services.check_event(session=session, event=event, today=app.today, settings=app.settings)
        except Exception:  # noqa: BLE001 - the save reports anything this check cannot
            return
        if self.amend is not None:
            problems = [p for p in problems if p.field != "device_serial"]
        self.app.call_from_thread(self._show_store_problems, ev, problems)

    def _show_store_problems(self, ev: Evaluation, problems: list[Problem]) -> None:
        if ev is not self.evaluation or not self.is_attached:
            return
        if problems != self.server_problems:
            self.server_problems = problems
            for key, row in self.rows.items():
                messages = list(ev.problems.get(key, [])) + [forms.humanise(p.message, self.fields) for p in problems
                                                             if self._key_of(p) == key]
                row.show_problem("; ".join(messages) if messages else None)
                if messages:
                    row.touched = True
            general = list(ev.general) + [forms.problem_text(p, self.fields) for p in problems if not self._key_of(p)]
            box = self.query_one("#general-problems", Static)
            box.update(shown(Text("\n".join(general), style="bold red")) if general else "")
            box.display = bool(general)

    # ------------------------------------------------------------------ saving and leaving

    def action_save(self) -> None:
        if self.saving:
            return
        self.show_all = True
        self._refresh()
        ev = self.evaluation
        if not ev.ok:
            # Counted as shown: each flagged field once (the form's own problems and the
            # store's), each line of the box above the form, each dose the rules refuse.
            fields = set(ev.problems) | {k for k in map(self._key_of, self.server_problems) if k}
            general = len(ev.general) + sum(1 for p in self.server_problems if not self._key_of(p))
            count = len(fields) + general + len(ev.blocked)
            self.notify(f"Not saved: {plural(count, 'problem')}, shown in red on the form.", severity="error")
            self._focus_first_problem()
            return
        self.saving = True
        self._save(ev)

    def _focus_first_problem(self) -> None:
        for key, row in self.rows.items():
            if key in self.evaluation.problems or any(self._key_of(p) == key for p in self.server_problems):
                row.control.focus()
                return

    @work(thread=True, exclusive=True, group="save")
    def _save(self, ev: Evaluation) -> None:
        from devicelog import services
        from devicelog.clinic.records import EventIn
        from devicelog.store.db import write_session

        app = self.app
        try:
            with write_session(app.engine) as session:
                if self.amend is not None:
                    row = services.amend_event(session=session, event_id=self.amend.id, occurred_on=ev.occurred_on,
                                               data=ev.data, reason=ev.reason, author=app.user, today=app.today,
                                               settings=app.settings)
                else:
                    event = services.validate(EventIn, {"device_serial": self.history.device.serial,
                                                        "occurred_on": ev.occurred_on, "author": app.user,
                                                        "data": ev.data.model_dump(mode="json")})
                    row = services.record_event(session=session, event=event, today=app.today, settings=app.settings)
                saved_id = row.id
        except InputError as exc:
            app.call_from_thread(self._refused, exc.problems)
            return
        except Exception as exc:  # noqa: BLE001 - the database said no: keep the form, say why
            app.call_from_thread(self._refused, [Problem("(database)", None, f"{type(exc).__name__}: {exc}")])
            return
        app.call_from_thread(self._saved, saved_id)

    def _refused(self, problems: list[Problem]) -> None:
        self.saving = False
        self.server_problems = problems
        self._refresh()
        self.notify(visible("Not saved: " + "; ".join(forms.problem_text(p, self.fields) for p in problems)),
                    severity="error", timeout=8, markup=False)
        self._focus_first_problem()

    def _saved(self, event_id: int) -> None:
        self.saving = False
        what = "Amendment" if self.amend is not None else self.kind.label
        self.notify(visible(f"{what} saved for {self.history.device.serial}."), markup=False)
        self.app.changed([self.history.device.id])
        self.dismiss(event_id)

    def action_leave(self) -> None:
        if not self.dirty:
            self.dismiss(None)
            return

        def answered(leave: bool | None) -> None:
            if leave:
                self.dismiss(None)

        self.app.push_screen(ConfirmScreen("Leave this form? What you typed has not been saved.",
                                           yes="Leave", no="Stay"), answered)
