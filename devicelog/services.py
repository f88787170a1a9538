"""Use cases: what a person does, each one transaction.

Every function takes ``session`` (from ``store.db.write_session``) keyword-only and
either writes everything or raises ``InputError`` naming each refused field and
value; the caller's ``write_session`` then rolls the whole action back.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
from dataclasses import dataclass
from typing import Any, Iterable

from pydantic import ValidationError
from sqlmodel import Session, select

from devicelog.clinic.catalogue import DeviceModel
from devicelog.clinic.records import (
    DATA_MODELS,
    DeviceIn,
    DeviceKind,
    DeviceStatus,
    EventIn,
    EventKind,
    InterrogationData,
    PatientIn,
    ProgrammingData,
    PumpMode,
    PumpProgram,
    RefillData,
    ReinterventionData,
    ReinterventionKind,
)
from devicelog.settings import Settings
from devicelog.store import audit, forecasts, queries, tables


def current_user(explicit: str | None = None) -> str:
    """``--user`` if given, else the operating-system login."""
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers)
        return os.environ.get("USER") or "unknown"


from devicelog.problems import InputError, Problem  # noqa: E402  (defined apart, re-exported here)


def problems_from(error: ValidationError, prefix: str = "") -> list[Problem]:
    found = []
    for e in error.errors():
        path = ".".join(str(p) for p in e["loc"] if p not in ("function-after",))
        field = f"{prefix}.{path}".strip(".") if prefix else path
        message = e["msg"].removeprefix("Value error, ")
        found.append(Problem(field or prefix or "(document)", e.get("input"), message))
    return found


def validate(model, values: Any, prefix: str = ""):
    """``model.model_validate(values)`` with refusals as ``InputError``."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InputError(problems_from(exc, prefix)) from None


# --------------------------------------------------------------------- patients & devices


def add_patient(*, session: Session, patient: PatientIn, author: str) -> tables.Patient:
    if queries.patient_by_mrn(session, patient.mrn) is not None:
        raise InputError([Problem("mrn", patient.mrn, "a patient with this MRN already exists")])
    row = tables.Patient(**patient.model_dump(), author=author)
    row.goals_of_care = patient.goals_of_care.value
    row.status = patient.status.value
    session.add(row)
    session.flush()
    audit.append(session, action="add patient", author=author, changes=[_created(row)])
    return row


def _created(row) -> audit.Change:
    return audit.Change(row.__tablename__, row.id, None, audit.row_values(row))


def add_device(*, session: Session, device: DeviceIn, author: str, today: dt.date) -> tables.Device:
    problems: list[Problem] = []
    patient = queries.patient_by_mrn(session, device.patient_mrn)
    if patient is None:
        problems.append(Problem("patient_mrn", device.patient_mrn, "no patient has this MRN"))
    model_row = session.get(tables.DeviceModelRow, device.model)
    if model_row is None:
        problems.append(Problem("model", device.model, "not in the device catalogue"))
    if queries.device_by_serial(session, device.serial) is not None:
        problems.append(Problem("serial", device.serial, "a device with this serial is already registered"))
    if device.implanted_on > today:
        problems.append(Problem("implanted_on", device.implanted_on.isoformat(), f"is after today ({today})"))
    if patient is not None and device.implanted_on < patient.birth_date:
        problems.append(
            Problem("implanted_on", device.implanted_on.isoformat(), f"is before the patient's birth ({patient.birth_date})")
        )
    if device.udi is not None and device.udi.serial and device.udi.serial != device.serial:
        problems.append(
            Problem("udi.serial", device.udi.serial, f"does not match the device serial {device.serial!r}")
        )
    replaced = None
    if device.replaces_serial:
        replaced = queries.device_by_serial(session, device.replaces_serial)
        if replaced is None:
            problems.append(Problem("replaces_serial", device.replaces_serial, "no device has this serial"))
        elif patient is not None and replaced.patient_id != patient.id:
            problems.append(Problem("replaces_serial", device.replaces_serial, "belongs to another patient"))
        elif replaced.status in (DeviceStatus.replaced.value,):
            problems.append(Problem("replaces_serial", device.replaces_serial, "was already replaced"))
    if problems:
        raise InputError(problems)
    udi = device.udi
    row = tables.Device(
        patient_id=patient.id,
        model_code=device.model,
        serial=device.serial,
        udi_raw=udi.raw if udi else None,
        udi_di=udi.device_identifier if udi else None,
        udi_lot=udi.lot if udi else None,
        udi_serial=udi.serial if udi else None,
        udi_expiry=udi.expiry if udi else None,
        udi_manufactured=udi.manufactured if udi else None,
        implanted_on=device.implanted_on,
        implant_type=device.implant_type.value,
        site=device.site,
        status=device.status.value,
        recharge_interval_days=device.recharge_interval_days,
        author=author,
    )
    session.add(row)
    session.flush()
    changes = [_created(row)]
    if replaced is not None:
        before = audit.row_values(replaced)
        replaced.status = DeviceStatus.replaced.value
        replaced.replaced_by_id = row.id
        session.add(replaced)
        changes.append(audit.Change("device", replaced.id, before, audit.row_values(replaced)))
    audit.append(session, action="add device", author=author, changes=changes)
    forecasts.refresh_devices(session, [row.id, replaced.id if replaced is not None else None])
    return row


# --------------------------------------------------------------------- events


def _model(session: Session, device: tables.Device) -> DeviceModel:
    return queries.to_device_model(session.get(tables.DeviceModelRow, device.model_code))


class Lookups:
    """What ``check_event`` reads again and again during one bulk write (an import):
    device rows by serial, catalogue models by code, the drug codes.  Only found devices
    are kept (one added later is still found); a kept row is the session's own object,
    so a status change made during the import is seen."""

    def __init__(self) -> None:
        self.devices: dict[str, tables.Device] = {}
        self.models: dict[str, DeviceModel] = {}
        self.drug_codes: set[str] | None = None

    def device(self, session: Session, serial: str) -> tables.Device | None:
        found = self.devices.get(serial)
        if found is None:
            found = queries.device_by_serial(session, serial)
            if found is not None:
                self.devices[serial] = found
        return found

    def model(self, session: Session, device: tables.Device) -> DeviceModel:
        found = self.models.get(device.model_code)
        if found is None:
            found = self.models[device.model_code] = _model(session, device)
        return found

    def drugs(self, session: Session) -> set[str]:
        if self.drug_codes is None:
            self.drug_codes = _drug_codes(session)
        return self.drug_codes


def check_event(
    *, session: Session, event: EventIn, today: dt.date, lookups: Lookups | None = None
) -> tuple[tables.Device, list[Problem]]:
    """Every reason this event cannot be recorded against its device (empty when it can).

    ``lookups`` (an importer's): read devices, models and drug codes once per import."""
    if lookups is not None:
        device = lookups.device(session, event.device_serial)
    else:
        device = queries.device_by_serial(session, event.device_serial)
    if device is None:
        return None, [Problem("device_serial", event.device_serial, "no device has this serial")]
    model = lookups.model(session, device) if lookups is not None else _model(session, device)
    problems: list[Problem] = []
    data = event.data
    kind = EventKind(data.kind)
    if event.occurred_on < device.implanted_on:
        problems.append(
            Problem("occurred_on", event.occurred_on.isoformat(), f"is before the device's implant ({device.implanted_on})")
        )
    if event.occurred_on > today:
        problems.append(Problem("occurred_on", event.occurred_on.isoformat(), f"is after today ({today})"))
    problems += _fits_device(kind, data, model)
    problems += _drugs_known(session, data, lookups.drugs(session) if lookups is not None else None)
    problems += _volumes_fit(data, model)
    if device.status in (DeviceStatus.explanted.value, DeviceStatus.replaced.value) and kind not in (
        EventKind.wound_check,
        EventKind.outcome,
    ):
        problems.append(Problem("device_serial", event.device_serial, f"the device is {device.status}"))
    return device, problems


def _fits_device(kind: EventKind, data, model: DeviceModel) -> list[Problem]:
    pump = model.kind is DeviceKind.intrathecal_pump
    if kind is EventKind.refill and not pump:
        return [Problem("data.kind", kind.value, f"a {model.label} is not a pump and has no reservoir")]
    if kind in (EventKind.trial_start, EventKind.trial_end) and pump:
        return [Problem("data.kind", kind.value, "trials are recorded for stimulators")]
    if isinstance(data, ProgrammingData):
        if pump and data.stim_programs:
            return [Problem("data.stim_programs", None, f"a {model.label} is a pump: give pump_program")]
        if not pump and data.pump_program is not None:
            return [Problem("data.pump_program", None, f"a {model.label} is a stimulator: give stim_programs")]
    program = data.program if isinstance(data, RefillData) else getattr(data, "pump_program", None)
    if isinstance(program, PumpProgram):
        if model.constant_flow and program.mode is not PumpMode.constant_flow:
            return [
                Problem(
                    "data.program.mode" if isinstance(data, RefillData) else "data.pump_program.mode",
                    program.mode.value,
                    "a constant-flow pump's dose changes only by concentration (rule 14): mode must be constant_flow",
                )
            ]
        if not model.constant_flow and program.mode is PumpMode.constant_flow:
            return [Problem("data.program.mode", program.mode.value, f"a {model.label} is a programmable pump")]
    if isinstance(data, InterrogationData) and model.power.value == "none" and (
        data.battery_percent is not None or data.battery_v is not None or data.battery_state.value != "ok"
    ):
        return [Problem("data.battery_state", data.battery_state.value, f"a {model.label} has no battery (rule 14)")]
    return []


def _drug_codes(session: Session) -> set[str]:
    return set(session.exec(select(tables.DrugRow.code)).all())


def _drugs_known(session: Session, data, known: set[str] | None = None) -> list[Problem]:
    program = data.program if isinstance(data, RefillData) else getattr(data, "pump_program", None)
    if program is None:
        return []
    if known is None:
        known = _drug_codes(session)
    where = "data.program" if isinstance(data, RefillData) else "data.pump_program"
    return [
        Problem(f"{where}.drugs.{i}.drug", d.drug, "not in the drug catalogue")
        for i, d in enumerate(program.drugs)
        if d.drug not in known
    ]


def _volumes_fit(data, model: DeviceModel) -> list[Problem]:
    if model.reservoir_ml is None:
        return []
    cap = model.reservoir_ml
    fields = []
    if isinstance(data, RefillData):
        fields = [
            ("data.volume_withdrawn_ml", data.volume_withdrawn_ml),
            ("data.volume_added_ml", data.volume_added_ml),
            ("data.reservoir_volume_after_ml", data.reservoir_volume_after_ml),
            ("data.measured_after_ml", data.measured_after_ml),
        ]
    elif isinstance(data, InterrogationData):
        fields = [("data.reservoir_volume_ml", data.reservoir_volume_ml)]
    elif isinstance(data, ProgrammingData):
        fields = [("data.reservoir_volume_ml", data.reservoir_volume_ml)]
    return [
        Problem(name, value, f"is more than the {model.label} reservoir holds ({cap:g} mL)")
        for name, value in fields
        if value is not None and value > cap + 1e-9
    ]


def clinical_refusals(*, session: Session, event: EventIn, settings: Settings) -> list[Problem]:
    """What the clinical rules forbid saving from a visit (not applied to imports, which
    carry history as it happened; their flags show in the forecast and the ledger).

    Rules 6-7: a dose the forecast blocks (ziconotide step, interval or maximum).
    Rule 9: a possible pocket fill must come with a reason code.
    """
    data = event.data
    if isinstance(data, RefillData):
        program, where = data.program, "data.program"
    elif isinstance(data, ProgrammingData) and data.pump_program is not None:
        program, where = data.pump_program, "data.pump_program"
    else:
        return []
    from devicelog.clinic import forecast

    problems = []
    history = queries.history_by_serial(session, event.device_serial)
    drugs = queries.drugs_by_code(session)
    for warning in forecast.dose_warnings(history, program, event.occurred_on, settings, drugs):
        if warning.level == "block":
            problems.append(Problem(f"{where}.dose_mg_per_day", program.dose_mg_per_day, warning.message))
    if isinstance(data, RefillData) and not (data.pocket_fill_reason or "").strip():
        check = forecast.possible_pocket_fill(data, settings)
        if check.flagged:
            problems.append(
                Problem("data.pocket_fill_reason", None, f"{check.text}: give a reason code and monitor after the refill (rule 9)")
            )
    return problems


def record_event(
    *, session: Session, event: EventIn, today: dt.date, settings: Settings | None = None
) -> tables.EventRow:
    device, problems = check_event(session=session, event=event, today=today)
    if not problems:
        problems = clinical_refusals(session=session, event=event, settings=settings or Settings())
    if problems:
        raise InputError(problems)
    row = tables.EventRow(
        device_id=device.id,
        kind=event.data.kind,
        occurred_on=event.occurred_on,
        author=event.author,
        data=event.data.model_dump(mode="json"),
    )
    session.add(row)
    session.flush()
    changes = [_created(row)] + _apply_to_device(session, device, event)
    audit.append(session, action=f"record {row.kind}", author=event.author, changes=changes)
    forecasts.refresh_devices(session, [device.id])  # the due table, in this same transaction
    return row


def _apply_to_device(session: Session, device: tables.Device, event: EventIn) -> list[audit.Change]:
    data = event.data
    if isinstance(data, ReinterventionData) and data.reintervention in (
        ReinterventionKind.explant,
        ReinterventionKind.lead_removal,
    ):
        before = audit.row_values(device)
        device.status = DeviceStatus.explanted.value
        session.add(device)
        return [audit.Change("device", device.id, before, audit.row_values(device))]
    return []


def amend_event(
    *,
    session: Session,
    event_id: int,
    occurred_on: dt.date,
    data,
    reason: str,
    author: str,
    today: dt.date,
    settings: Settings | None = None,
) -> tables.EventRow:
    """Record a correction of an earlier event; the original stays as it was."""
    original = _original(session, event_id)
    if not reason.strip():
        raise InputError([Problem("reason", reason, "an amendment must say why")])
    if data.kind != original.kind:
        raise InputError([Problem("data.kind", data.kind, f"the amended event is a {original.kind}")])
    device = session.get(tables.Device, original.device_id)
    candidate = EventIn(device_serial=device.serial, occurred_on=occurred_on, author=author, data=data)
    _, problems = check_event(session=session, event=candidate, today=today)
    # An amendment of an event on a since-explanted device is still allowed.
    problems = [p for p in problems if p.field != "device_serial"]
    # Dose steps are not re-judged on an amendment (the amended event would be compared
    # with itself); the pocket-fill reason is still required.
    if not problems and isinstance(data, RefillData):
        problems = [
            p
            for p in clinical_refusals(session=session, event=candidate, settings=settings or Settings())
            if p.field == "data.pocket_fill_reason"
        ]
    if problems:
        raise InputError(problems)
    row = tables.EventRow(
        device_id=original.device_id,
        kind=original.kind,
        occurred_on=occurred_on,
        author=author,
        data=data.model_dump(mode="json"),
        amends_id=original.id,
        amendment_reason=reason.strip(),
    )
    session.add(row)
    session.flush()
    audit.append(session, action=f"amend {row.kind} {original.id}", author=author, changes=[_created(row)])
    forecasts.refresh_devices(session, [row.device_id])
    return row


def void_event(*, session: Session, event_id: int, reason: str, author: str) -> tables.EventRow:
    """Mark an event "entered in error": it stays on record, and the forecast ignores it."""
    original = _original(session, event_id)
    if not reason.strip():
        raise InputError([Problem("reason", reason, "say why the entry is void")])
    row = tables.EventRow(
        device_id=original.device_id,
        kind=original.kind,
        occurred_on=original.occurred_on,
        author=author,
        data=original.data,
        amends_id=original.id,
        amendment_reason=reason.strip(),
        voided=True,
    )
    session.add(row)
    session.flush()
    audit.append(session, action=f"void {row.kind} {original.id}", author=author, changes=[_created(row)])
    forecasts.refresh_devices(session, [row.device_id])
    return row


def _original(session: Session, event_id: int) -> tables.EventRow:
    row = session.get(tables.EventRow, event_id)
    if row is None:
        raise InputError([Problem("event_id", event_id, "no event has this id")])
    if row.amends_id is not None:
        row = session.get(tables.EventRow, row.amends_id)
    return row


def parse_event_data(kind: str, values: dict, prefix: str = "data"):
    """Validate a kind's fields (e.g. from a form) into its record."""
    try:
        model = DATA_MODELS[EventKind(kind)]
    except ValueError:
        raise InputError([Problem(f"{prefix}.kind", kind, "unknown event kind")]) from None
    return validate(model, {**values, "kind": kind}, prefix)
