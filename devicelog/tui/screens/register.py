"""Register a patient, and a device with a scanned UDI."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Static

from devicelog import forms
from devicelog.clinic.words import plural
from devicelog.reports.safe import visible
from devicelog.services import InputError, Problem
from devicelog.tui.format import one_line, plain, shown
from devicelog.tui.screens.dialogs import ConfirmScreen
from devicelog.tui.widgets.fields import FieldRow
from devicelog.tui.widgets.footer import ClinicFooter

PATIENT_MRN = forms.FormField("patient_mrn", "Patient MRN", "text", required=True)


class RegisterScreen(Screen["str | None"]):
    """Shared behaviour: rows, problems by field, save in a worker, confirm on leave."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "leave", "Back"),
    ]
    TITLE_TEXT = ""

    def __init__(self) -> None:
        super().__init__()
        self.saving = False
        self.problems: list[Problem] = []

    def field_list(self) -> list[forms.FormField]:
        raise NotImplementedError

    def initial(self) -> dict[str, Any]:
        return {}

    def compose(self) -> ComposeResult:
        values = self.initial()
        yield Header()
        yield Static(self.TITLE_TEXT, id="form-title")
        yield Static("", id="general-problems")
        with VerticalScroll(id="form"):
            for f in self.field_list():
                yield FieldRow(f, values.get(f.key), today=self.app.today, scan=f.key == "udi")
        yield Static("", id="preview")
        yield ClinicFooter()

    def on_mount(self) -> None:
        self.query_one("#preview", Static).display = False
        self.query_one("#general-problems", Static).display = False
        rows = list(self.query(FieldRow))
        # Focused now (not after a refresh, nor with Widget.focus, which is queued behind
        # keys already typed): what is typed or scanned as the form opens lands here.
        self.set_focus(rows[0].control)

    @property
    def rows(self) -> dict[str, FieldRow]:
        return {r.field.key: r for r in self.query(FieldRow)}

    def raw(self) -> dict[str, Any]:
        return {k: r.raw for k, r in self.rows.items()}

    def show(self, problems: list[Problem], everything: bool = True) -> None:
        keys = set(self.rows)
        by_key: dict[str, list[str]] = {}
        general = []
        for p in problems:
            key = self.key_of(p.field)
            if key in keys:
                by_key.setdefault(key, []).append(forms.humanise(p.message, self.field_list()))
            else:
                general.append(forms.problem_text(p, self.field_list()))
        for key, row in self.rows.items():
            msgs = by_key.get(key)
            row.show_problem("; ".join(msgs) if msgs and (everything or row.touched) else None)
        box = self.query_one("#general-problems", Static)
        box.update(shown(Text("\n".join(general), style="bold red")))
        box.display = bool(general)

    def key_of(self, field: str) -> str:
        return forms.field_for(field, self.field_list())

    def build(self):
        """The record to save, or raise ``InputError``."""
        raise NotImplementedError

    @on(FieldRow.Changed)
    def _changed(self, event: FieldRow.Changed) -> None:
        try:
            self.build()
            problems = []
        except InputError as exc:
            problems = exc.problems
        self.show(problems, everything=False)

    def action_save(self) -> None:
        if self.saving:
            return
        try:
            record = self.build()
        except InputError as exc:
            self.show(exc.problems)
            flagged = {self.key_of(p.field) or p.field for p in exc.problems}  # a field with two problems is one
            self.notify(f"Not saved: {plural(len(flagged), 'problem')}, shown in red on the form.", severity="error")
            return
        self.saving = True
        self._save(record)

    @work(thread=True, exclusive=True, group="save")
    def _save(self, record) -> None:
        from devicelog.store.db import write_session

        app = self.app
        try:
            with write_session(app.engine) as session:
                result = self.store(session, record)
        except InputError as exc:
            app.call_from_thread(self._refused, exc.problems)
            return
        except Exception as exc:  # noqa: BLE001 - keep the form, say why
            app.call_from_thread(self._refused, [Problem("(database)", None, f"{type(exc).__name__}: {exc}")])
            return
        app.call_from_thread(self._saved, result)

    def store(self, session, record) -> str:
        raise NotImplementedError

    def _refused(self, problems: list[Problem]) -> None:
        self.saving = False
        self.show(problems)
        self.notify(visible("Not saved: " + "; ".join(forms.problem_text(p, self.field_list()) for p in problems)),
                    severity="error", timeout=8, markup=False)

    def _saved(self, result: str) -> None:
        self.saving = False
        self.app.changed(new_records=True)
        self.dismiss(result)

    def action_leave(self) -> None:
        if not any(r.touched for r in self.query(FieldRow)):
            self.dismiss(None)
            return

        def answered(leave: bool | None) -> None:
            if leave:
                self.dismiss(None)

        self.app.push_screen(ConfirmScreen("Leave this form? What you typed has not been saved.", yes="Leave", no="Stay"),
                             answered)


class PatientScreen(RegisterScreen):
    """Register a patient; dismisses with the MRN."""

    TITLE_TEXT = "Register a patient"

    def field_list(self) -> list[forms.FormField]:
        return forms.patient_fields()

    def initial(self) -> dict[str, Any]:
        return {"goals_of_care": "active_treatment"}

    def build(self):
        from devicelog.clinic.records import PatientIn
        from devicelog.services import validate

        typed = forms.parse_fields(self.field_list(), self.raw(), today=self.app.today)
        return validate(PatientIn, typed)

    def store(self, session, record) -> str:
        from devicelog import services

        services.add_patient(session=session, patient=record, author=self.app.user, today=self.app.today,
                             settings=self.app.settings)
        return record.mrn

    def _saved(self, result: str) -> None:
        self.notify(visible(f"Patient {result} registered. F3 registers a device for them."), markup=False)
        super()._saved(result)


class DeviceRegisterScreen(RegisterScreen):
    """Register a device; a scanned UDI fills in its identifier, serial, lot and expiry."""

    TITLE_TEXT = "Register a device (scan the UDI barcode into the first field)"

    def __init__(self, patient_mrn: str = "") -> None:
        super().__init__()
        self.patient_mrn = patient_mrn
        self._fields: list[forms.FormField] | None = None
        self._model_from_scan: str | None = None  # the model a scan chose, not the person
        #: The imported safety notices (issue 18), read once as the form opens: a device
        #: that matches one is flagged on the form, before it is saved.
        self._notices: list | None = None

    def on_mount(self) -> None:
        super().on_mount()
        flag = Static("", id="advisory-flag")
        flag.display = False
        self.mount(flag, after="#preview")
        self._load_notices()

    @work(thread=True, exclusive=True, group="notices")
    def _load_notices(self) -> None:
        from devicelog.store.advisories import load_notices
        from devicelog.store.db import read_session

        with read_session(self.app.engine) as session:
            notices = load_notices(session)
        self.app.call_from_thread(self._notices_loaded, notices)

    def _notices_loaded(self, notices: list) -> None:
        self._notices = notices
        self._flag_advisories()

    def _flag_advisories(self) -> None:
        """Name every notice the device on the form matches (tier and evidence), or hide."""
        from devicelog.clinic.advisory import DeviceFacts, TIER_LABELS
        from devicelog.store.advisories import matches_for

        box = self.query_one("#advisory-flag", Static)
        if not self._notices:
            box.display = False
            return
        # From what is typed so far (the rest of the form need not be complete yet).
        raw = self.raw()
        serial, code = str(raw.get("serial") or "").strip(), str(raw.get("model") or "").strip()
        try:
            udi = forms.parse_udi_field("udi", raw.get("udi"))
        except InputError:
            udi = None
        if not serial or not code:
            box.display = False
            return
        model = next((m for m in self.models if m.code == code), None)
        lot = (udi.lot if udi else None) or str(raw.get("udi_lot") or "").strip() or None
        facts = DeviceFacts(serial=serial, model_code=code, model_identifiers=tuple(model.device_identifiers) if model else (),
                            udi_di=(udi.device_identifier if udi else None) or str(raw.get("udi_di") or "").strip() or None,
                            udi_lot=lot, udi_serial=udi.serial if udi else None,
                            udi_manufactured=udi.manufactured if udi else None)
        found = matches_for(self._notices, facts)
        if not found:
            box.display = False
            return
        text = Text("SAFETY NOTICE: this device matches ", style="bold white on dark_red")
        text.append(plural(len(found), "notice"), style="bold white on dark_red")
        text.append(" (a due item is made when it is saved)", style="bold")
        for notice_id, title, match in found:
            text.append(f"\n  {notice_id}: {one_line(title)} · match {match.tier} ({TIER_LABELS[match.tier]}): "
                        f"{one_line(match.evidence)}")
        box.update(shown(text))
        box.display = True

    def field_list(self) -> list[forms.FormField]:
        if self._fields is None:
            # The UDI first, where the cursor starts, as the title says: a scan never lands
            # in the MRN (issue 13.7: after F2 a scan overwrote the prefilled MRN).
            udi, *rest = forms.device_fields(self.models)
            self._fields = [udi, PATIENT_MRN, *rest]
        return self._fields

    @property
    def models(self):
        return self.app.load_catalogue().device_models

    def initial(self) -> dict[str, Any]:
        return {"patient_mrn": self.patient_mrn, "implanted_on": self.app.today.isoformat(), "implant_type": "permanent"}

    @on(FieldRow.Changed)
    def _changed(self, event: FieldRow.Changed) -> None:
        if event.row.field.key == "udi":
            event.stop()
            self._udi_typed(event.row)
        super()._changed(event)
        self._flag_advisories()

    def _udi_typed(self, row: FieldRow) -> None:
        preview = self.query_one("#preview", Static)
        try:
            udi = forms.parse_udi_field("udi", row.raw)
        except InputError as exc:
            preview.update(plain(f"UDI not read: {exc.problems[0].message}", style="bold red"))
            preview.display = True
            return
        if udi is None:
            preview.display = False
            return
        rows = self.rows
        if udi.serial:
            rows["serial"].set_raw(udi.serial)
        rows["udi_di"].set_raw(udi.device_identifier)
        rows["udi_lot"].set_raw(udi.lot or "")
        rows["udi_expiry"].set_raw(udi.expiry.isoformat() if udi.expiry else "")
        text = Text("UDI read: ", style="bold green")
        text.append(one_line(f"DI {udi.device_identifier} · serial {udi.serial or '—'} · lot {udi.lot or '—'} · "
                             f"expiry {udi.expiry or '—'}" + (f" · made {udi.manufactured}" if udi.manufactured else "")))
        # The catalogue model whose device identifier this is: chosen for the person unless
        # they chose another model themselves, which is then refused with both named.
        from devicelog.clinic.catalogue import identifier_contradiction, model_of_identifier

        found = model_of_identifier(self.models, udi.device_identifier)
        model_row = rows["model"]
        if found is not None:
            if not model_row.touched or model_row.raw == self._model_from_scan:
                self._model_from_scan = found.code
                model_row.set_raw(found.code)
                text.append(f"\nModel {one_line(found.label)}: chosen from its device identifier", style="bold")
            else:
                why = identifier_contradiction(self.models, model_row.raw, udi.device_identifier)
                if why:
                    text.append(f"\nREFUSED: {one_line(why)}", style="bold white on dark_red")
        preview.update(shown(text))
        preview.display = True

    def key_of(self, field: str) -> str:
        if field.startswith("udi"):
            return {"udi.serial": "serial", "udi.device_identifier": "udi_di", "udi.lot": "udi_lot",
                    "udi.expiry": "udi_expiry"}.get(field, "udi")
        return super().key_of(field)

    def build(self):
        from devicelog.clinic.records import DeviceIn
        from devicelog.services import validate

        raw = self.raw()
        fields = [f for f in self.field_list() if f.key != "udi"]
        problems: list[Problem] = []
        typed: dict[str, Any] = {}
        try:
            typed = forms.parse_fields(fields, raw, today=self.app.today)
        except InputError as exc:
            problems += exc.problems
        udi = None
        try:
            udi = forms.parse_udi_field("udi", raw.get("udi"))
        except InputError as exc:
            problems += exc.problems
        if udi is not None and typed.get("model"):
            from devicelog.clinic.catalogue import identifier_contradiction

            why = identifier_contradiction(self.models, typed["model"], udi.device_identifier)
            if why:
                problems.append(Problem("udi", udi.device_identifier, why))
        if problems:
            raise InputError(problems)
        values = {k: v for k, v in typed.items() if k in ("patient_mrn", "model", "serial", "implanted_on",
                                                          "implant_type", "site", "replaces_serial") and v not in (None, "")}
        if udi is not None:
            values["udi"] = udi.model_dump()
        elif typed.get("udi_di"):
            # Typed by hand from the label: DI, lot and expiry without a scan.
            values["udi"] = {"raw": f"(01){typed['udi_di']}", "device_identifier": typed["udi_di"],
                             "lot": typed.get("udi_lot") or None, "expiry": typed.get("udi_expiry")}
        return validate(DeviceIn, values)

    def store(self, session, record) -> str:
        from devicelog import services

        services.add_device(session=session, device=record, author=self.app.user, today=self.app.today,
                            settings=self.app.settings)
        return record.serial

    def _saved(self, result: str) -> None:
        self.notify(visible(f"Device {result} registered."), markup=False)
        super()._saved(result)
