"""Use cases: what a person does, each one transaction.

Every function takes ``session`` (from ``store.db.write_session``) keyword-only and
either writes everything or raises ``InputError`` naming each refused field and
value; the caller's ``write_session`` then rolls the whole action back.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError
from sqlmodel import Session, select

from devicelog.clinic.catalogue import DeviceModel, identifier_contradiction
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
    RefillReviewData,
    ReinterventionData,
    ReinterventionKind,
)
from devicelog.settings import Settings
from devicelog.store import access, audit, forecasts, queries, tables


def current_user(explicit: str | None = None) -> str:
    """The author on a SQLite file: the operating-system login, ``explicit`` (``--user``)
    as a display name beside it (``devicelog.identity``)."""
    from devicelog.identity import local_author

    return local_author(explicit)


from devicelog.problems import InputError, Problem  # noqa: E402  (defined apart, re-exported here)


def problems_from(error: ValidationError, prefix: str = "") -> list[Problem]:
    found = []
    for e in error.errors():
        path = ".".join(str(p) for p in e["loc"] if p not in ("function-after",))
        field = f"{prefix}.{path}".strip(".") if prefix else path
        message = e["msg"].removeprefix("Value error, ")
        found.append(Problem(field or prefix or "(document)", e.get("input"), message))
    return found


def latest_plausible_date(today: dt.date, settings: Settings) -> dt.date:
    """The latest date a record can hold: ``settings.planned_years_ahead`` years after today
    (29 February gives 28 February in a year that has none)."""
    year = today.year + settings.planned_years_ahead
    try:
        return today.replace(year=year)
    except ValueError:
        return dt.date(year, 2, 28)


def _dates(value: Any, path: str) -> Iterable[tuple[str, dt.date]]:
    """Every date (and the date of every instant) inside a record, with its path."""
    if isinstance(value, dt.datetime):
        yield path, value.date()
    elif isinstance(value, dt.date):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _dates(getattr(value, name), f"{path}.{name}".lstrip("."))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _dates(item, f"{path}.{i}")


def date_problems(record: BaseModel, *, today: dt.date, settings: Settings, prefix: str = "") -> list[Problem]:
    """Issue 19: every date of ``record`` (a patient, a device, an event and its data) lies
    between ``settings.earliest_date`` and ``settings.planned_years_ahead`` years after
    today; a date outside that range is no date a clinic's record can have."""
    earliest, latest = settings.earliest_date, latest_plausible_date(today, settings)
    problems = []
    for path, day in _dates(record, prefix):
        if day < earliest:
            problems.append(Problem(path, day.isoformat(), f"is before {earliest}, the earliest date a record can have"))
        elif day > latest:
            problems.append(Problem(path, day.isoformat(),
                                    f"is more than {settings.planned_years_ahead} years ahead (after {latest})"))
    return problems


def patient_problems(patient: PatientIn, *, today: dt.date, settings: Settings) -> list[Problem]:
    """Issue 13 item 6: a date of birth is not after today, and gives an age of at most
    ``settings.max_age_years`` today; a date of death is not after today either."""
    problems = date_problems(patient, today=today, settings=settings)
    if problems:
        return problems
    if patient.birth_date > today:
        problems.append(Problem("birth_date", patient.birth_date.isoformat(), f"is after today ({today})"))
    else:
        age = today.year - patient.birth_date.year - ((today.month, today.day) < (patient.birth_date.month, patient.birth_date.day))
        if age > settings.max_age_years:
            problems.append(Problem("birth_date", patient.birth_date.isoformat(),
                                    f"gives an age of {age} years, more than the clinic's limit of {settings.max_age_years} (setting max_age_years)"))
    if patient.died_on is not None and patient.died_on > today:
        problems.append(Problem("died_on", patient.died_on.isoformat(), f"is after today ({today})"))
    return problems


def validate(model, values: Any, prefix: str = ""):
    """``model.model_validate(values)`` with refusals as ``InputError``."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InputError(problems_from(exc, prefix)) from None


# --------------------------------------------------------------------- patients & devices


def add_patient(
    *, session: Session, patient: PatientIn, author: str, today: dt.date, settings: Settings | None = None
) -> tables.Patient:
    [result] = add_patients(session=session, patients=[(patient, author)], today=today, settings=settings)
    if not isinstance(result, tables.Patient):
        raise InputError(result)
    return result


#: Keys looked up per ``IN (...)`` query by the bulk use cases.
LOOKUP_CHUNK = 500


def _by_key(session: Session, column, keys: Iterable[str]) -> dict:
    """Rows whose ``column`` is one of ``keys``, by that key (``IN`` queries of LOOKUP_CHUNK keys)."""
    table = column.class_
    wanted = sorted(set(keys))
    found = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        for row in session.exec(select(table).where(column.in_(wanted[start : start + LOOKUP_CHUNK]))).all():
            found[getattr(row, column.key)] = row
    return found


def _audit_runs(session: Session, action: str, entries: list[tuple[str, audit.Change]]) -> None:
    """One audit entry per run of consecutive changes by the same author, in order."""
    run: list[audit.Change] = []
    run_author = None
    for author, change in entries:
        if run and author != run_author:
            audit.append(session, action=action, author=run_author, changes=run)
            run = []
        run_author = author
        run.append(change)
    if run:
        audit.append(session, action=action, author=run_author, changes=run)


def add_patients(
    *, session: Session, patients: list[tuple[PatientIn, str]], today: dt.date, settings: Settings | None = None
) -> list[tables.Patient | list[Problem]]:
    """``add_patient`` for many patients at once (an import's): each (patient, author)
    gets the same check in the same order (an MRN already in the database, or given to
    an earlier patient of the list, is refused), and its row or its problems, in order.

    One query per LOOKUP_CHUNK MRNs, one flush, and one "add patient" audit entry per run
    of patients by the same author holding each patient's values as one ``add_patient``
    call records them: the same changes, in fewer entries.
    """
    taken = set(_by_key(session, tables.Patient.mrn, (p.mrn for p, _ in patients)))
    results: list[tables.Patient | list[Problem]] = []
    added: list[tuple[str, tables.Patient]] = []
    settings = settings or Settings()
    for patient, author in patients:
        if patient.mrn in taken:
            results.append([Problem("mrn", patient.mrn, "a patient with this MRN already exists")])
            continue
        refused = patient_problems(patient, today=today, settings=settings)
        if refused:
            results.append(refused)
            continue
        taken.add(patient.mrn)
        row = tables.Patient(**patient.model_dump(), author=author)
        row.goals_of_care = patient.goals_of_care.value
        row.status = patient.status.value
        session.add(row)
        results.append(row)
        added.append((author, row))
    if added:
        session.flush()
        _audit_runs(session, "add patient", [(author, _created(row)) for author, row in added])
    return results


def _created(row) -> audit.Change:
    return audit.Change(row.__tablename__, row.id, None, audit.row_values(row))


def add_device(
    *, session: Session, device: DeviceIn, author: str, today: dt.date, settings: Settings | None = None
) -> tables.Device:
    [result] = add_devices(session=session, devices=[(device, author)], today=today, settings=settings)
    if not isinstance(result, tables.Device):
        raise InputError(result)
    return result


def add_devices(
    *, session: Session, devices: list[tuple], today: dt.date, settings: Settings | None = None
) -> list[tables.Device | list[Problem]]:
    """``add_device`` for many devices at once (an import's): each (device, author) gets
    the same checks, in order, as if added one by one (a serial registered by an earlier
    device of the list is taken; a device replaced earlier in the list is "already
    replaced"), and its row or its problems, in order.  An item is (device, author) or
    (device, author, recorded_at): an importer's instant, set once the row is created
    and audited as such, as the importer did after each ``add_device`` call.

    Patients, device models and serials are read with one query per LOOKUP_CHUNK keys,
    the rows are flushed once, and the audit has one "add device" entry per run of
    devices by the same author, holding what each ``add_device`` call records (the new
    row; the replaced device before and after).  The due table is refreshed for every
    device added or replaced (deferred by an importer).
    """
    patients = _by_key(session, tables.Patient.mrn, (item[0].patient_mrn for item in devices))
    by_serial = _by_key(
        session,
        tables.Device.serial,
        [item[0].serial for item in devices] + [item[0].replaces_serial for item in devices if item[0].replaces_serial],
    )
    models = {code: session.get(tables.DeviceModelRow, code) for code in {item[0].model for item in devices}}
    results: list[tables.Device | list[Problem]] = []
    added: list[tuple[str, tables.Device, tables.Device | None, dict | None]] = []
    created: dict[int, dict] = {}  # id(row) -> its values as created (flushed), for the audit
    unrecorded: list[tables.Device] = []

    recorded_at: dict[int, dt.datetime] = {}

    def record_created() -> None:
        for r in unrecorded:
            created[id(r)] = audit.row_values(r)
            if id(r) in recorded_at:
                r.recorded_at = recorded_at[id(r)]
        unrecorded.clear()

    catalogue_models = None  # read once, when a device comes with a UDI (issue 13.7)
    for item in devices:
        device, author = item[0], item[1]
        problems: list[Problem] = date_problems(device, today=today, settings=settings or Settings())
        patient = patients.get(device.patient_mrn)
        if patient is None:
            problems.append(Problem("patient_mrn", device.patient_mrn, "no patient has this MRN"))
        if models[device.model] is None:
            problems.append(Problem("model", device.model, "not in the device catalogue"))
        if device.serial in by_serial:
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
        if device.udi is not None and device.udi.device_identifier:
            if catalogue_models is None:
                catalogue_models = queries.device_models(session)
            why = identifier_contradiction(catalogue_models, device.model, device.udi.device_identifier)
            if why:
                problems.append(Problem("udi.device_identifier", device.udi.device_identifier, why))
        replaced = None
        if device.replaces_serial:
            replaced = by_serial.get(device.replaces_serial)
            if replaced is None:
                problems.append(Problem("replaces_serial", device.replaces_serial, "no device has this serial"))
            elif patient is not None and replaced.patient_id != patient.id:
                problems.append(Problem("replaces_serial", device.replaces_serial, "belongs to another patient"))
            elif replaced.status in (DeviceStatus.replaced.value,):
                problems.append(Problem("replaces_serial", device.replaces_serial, "was already replaced"))
        if problems:
            results.append(problems)
            continue
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
        unrecorded.append(row)
        if len(item) > 2 and item[2] is not None:
            recorded_at[id(row)] = item[2]
        by_serial[device.serial] = row
        before = None
        if replaced is not None:
            if any(r is replaced for r in unrecorded):  # added earlier in this list: as one by one,
                session.flush()  # its id and its values as created, before this device changes it
                record_created()
            before = audit.row_values(replaced)
            replaced.status = DeviceStatus.replaced.value  # a later device of the list may not replace it again
            session.add(replaced)
        results.append(row)
        added.append((author, row, replaced, before))
    if not added:
        return results
    session.flush()  # the new rows' ids, in list order
    record_created()
    for _, row, replaced, _ in added:
        if replaced is not None:
            replaced.replaced_by_id = row.id
    session.flush()
    entries: list[tuple[str, audit.Change]] = []
    for author, row, replaced, before in added:
        entries.append((author, audit.Change("device", row.id, None, created[id(row)])))
        if replaced is not None:
            entries.append((author, audit.Change("device", replaced.id, before, audit.row_values(replaced))))
    _audit_runs(session, "add device", entries)
    # Issue 18: a device registered after a safety notice was imported is matched to it now
    # (its due item comes with the refresh below).
    from devicelog.store.advisories import match_new_devices

    for author in dict.fromkeys(a for a, _, _, _ in added):
        match_new_devices(session, [row.id for a, row, _, _ in added if a == author], author, today)
    forecasts.refresh_devices(
        session, [i for _, row, replaced, _ in added for i in (row.id, replaced.id if replaced is not None else None)]
    )
    return results


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
        self.drug_table: dict | None = None

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
    *, session: Session, event: EventIn, today: dt.date, lookups: Lookups | None = None, settings: Settings | None = None
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
    problems: list[Problem] = date_problems(event, today=today, settings=settings or Settings())
    data = event.data
    kind = EventKind(data.kind)
    if event.occurred_on < device.implanted_on:
        problems.append(
            Problem("occurred_on", event.occurred_on.isoformat(), f"is before the device's implant ({device.implanted_on})")
        )
    if event.occurred_on > today:
        problems.append(Problem("occurred_on", event.occurred_on.isoformat(), f"is after today ({today})"))
    problems += _fits_device(kind, data, model)
    problems += _after_the_mri(event)
    problems += _drugs_known(session, data, lookups.drugs(session) if lookups is not None else None)
    problems += _volumes_fit(data, model)
    problems += _plausible_doses(session, data, settings or Settings(), lookups)
    problems += _review_names_a_refill(session, event, device)
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
    if kind is EventKind.refill_review and not pump:
        return [Problem("data.kind", kind.value, f"a {model.label} is not a pump: it has no refills to review")]
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
    if not pump and isinstance(data, ReinterventionData) and data.reintervention is ReinterventionKind.pre_mri_checklist:
        return [Problem("data.reintervention", data.reintervention.value,
                        f"a {model.label} is not a pump: rule 13's pre-MRI checklist is for pumps")]
    if not pump and isinstance(data, InterrogationData) and data.mri_on is not None:
        return [Problem("data.reason", data.reason.value,
                        f"a {model.label} is not a pump: rule 13's post-MRI interrogation is for pumps")]
    return []


def _review_names_a_refill(session: Session, event: EventIn, device: tables.Device) -> list[Problem]:
    """Rule 26: a refill review names a refill of the same device, by its entry id, and
    is dated on or after it.  (That the refill is flagged is a clinical refusal.)"""
    data = event.data
    if not isinstance(data, RefillReviewData):
        return []
    field = "data.refill_event_id"
    if data.refill_event_id is None:
        return [Problem(field, None, "name the flagged refill this review is of (its entry id)")]
    row = session.get(tables.EventRow, data.refill_event_id)
    if row is None or row.amends_id is not None:
        return [Problem(field, data.refill_event_id, "no refill has this entry id")]
    if row.kind != EventKind.refill.value:
        return [Problem(field, data.refill_event_id, f"entry {row.id} is a {EventKind(row.kind).label.lower()}, not a refill")]
    if row.device_id != device.id:
        other = session.get(tables.Device, row.device_id)
        return [Problem(field, data.refill_event_id, f"is a refill of another device ({other.serial if other else row.device_id}), not {device.serial}")]
    refill_on = row.occurred_on
    latest = session.exec(
        select(tables.EventRow).where(tables.EventRow.amends_id == row.id).order_by(tables.EventRow.id.desc()).limit(1)
    ).first()
    if latest is not None:
        if latest.voided:
            return [Problem(field, data.refill_event_id, f"the refill of {row.occurred_on} was marked entered in error")]
        refill_on = latest.occurred_on
    if event.occurred_on < refill_on:
        return [Problem("occurred_on", event.occurred_on.isoformat(), f"is before the refill it reviews ({refill_on})")]
    return []


def review_refusals(*, session: Session, event: EventIn, settings: Settings) -> list[Problem]:
    """Rule 26 at the keyboard: the refill a review names must be flagged (a refill
    discrepancy beyond the limit, rule 8, or a possible pocket fill, rule 9)."""
    data = event.data
    if not isinstance(data, RefillReviewData) or data.refill_event_id is None:
        return []
    from devicelog.clinic import pump

    history = queries.history_by_serial(session, event.device_serial)
    fills = pump.pump_fills(history.events)
    reservoir_ml = history.device.model.reservoir_ml or 20.0
    for k, fill in enumerate(fills):
        if fill.event.id == data.refill_event_id:
            if pump.refill_flags(fills, k, reservoir_ml, settings).any:
                return []
            return [
                Problem(
                    "data.refill_event_id",
                    data.refill_event_id,
                    f"the refill of {fill.event.occurred_on} has no flag to review "
                    "(no discrepancy beyond the limit, no possible pocket fill)",
                )
            ]
    return [Problem("data.refill_event_id", data.refill_event_id, "no refill of this device has this entry id")]


def _after_the_mri(event: EventIn) -> list[Problem]:
    """Rule 13: a post-MRI interrogation is dated on or after the MRI it follows, and a
    pre-MRI checklist on or before the MRI it prepares (one dated after its scan would be
    overdue the moment it is saved)."""
    data = event.data
    if isinstance(data, InterrogationData) and data.mri_on is not None and event.occurred_on < data.mri_on:
        return [Problem("occurred_on", event.occurred_on.isoformat(),
                        f"is before the MRI on {data.mri_on} (data.mri_on): a post-MRI interrogation comes after the scan")]
    if isinstance(data, ReinterventionData) and data.mri_on is not None and event.occurred_on > data.mri_on:
        return [Problem("occurred_on", event.occurred_on.isoformat(),
                        f"is after the MRI on {data.mri_on} (data.mri_on): a pre-MRI checklist is done before the scan")]
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


def _plausible_doses(session: Session, data, settings: Settings, lookups: Lookups | None = None) -> list[Problem]:
    """Issue 19: a drug concentration or daily dose no clinic can have (hydromorphone at
    1000 mg/mL or 1000 mg/day) is refused at every entry point, imports included,
    whatever the overrides (``clinic.pump.implausible_values``)."""
    program = data.program if isinstance(data, RefillData) else getattr(data, "pump_program", None)
    if program is None:
        return []
    from devicelog.clinic.pump import implausible_values

    if lookups is not None:
        if lookups.drug_table is None:
            lookups.drug_table = queries.drugs_by_code(session)
        drugs = lookups.drug_table
    else:
        drugs = queries.drugs_by_code(session)
    where = "data.program" if isinstance(data, RefillData) else "data.pump_program"
    return [Problem(f"{where}.{name}", value, message) for name, value, message in implausible_values(program, drugs, settings)]


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
    Rule 26: a review names a flagged refill (``review_refusals``).
    """
    data = event.data
    if isinstance(data, RefillData):
        program, where = data.program, "data.program"
    elif isinstance(data, ProgrammingData) and data.pump_program is not None:
        program, where = data.pump_program, "data.pump_program"
    elif isinstance(data, RefillReviewData):
        return review_refusals(session=session, event=event, settings=settings)
    else:
        return []
    from devicelog.clinic import forecast

    problems = []
    history = queries.history_by_serial(session, event.device_serial)
    drugs = queries.drugs_by_code(session)
    warnings = forecast.dose_warnings(history, program, event.occurred_on, settings, drugs)
    for warning in warnings:
        if warning.level == "block":
            # A concentration limit names the drug's concentration field; any other the dose.
            conc = next((i for i, d in enumerate(program.drugs)
                         if warning.code.startswith(f"limit_{d.drug}_max_concentration_")), None)
            if conc is not None:
                problems.append(Problem(f"{where}.drugs.{conc}.concentration_mg_per_ml",
                                        program.drugs[conc].concentration_mg_per_ml, warning.message))
            else:
                problems.append(Problem(f"{where}.dose_mg_per_day", program.dose_mg_per_day, warning.message))
    # Issue 18.2: a soft drug limit is saved only with an override naming it, with a
    # reason; on a server, only a clinician's login overrides.
    override = data.limit_override
    for message in forecast.override_problems(warnings, override):
        problems.append(Problem("data.limit_override", None, message))
    if override is not None and not access.holds_clinician_rights(session.connection()):
        problems.append(Problem("data.limit_override", override.reason,
                                f"overriding a soft drug limit needs the role {access.CLINICIAN} (ask a clinician)"))
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
    device, problems = check_event(session=session, event=event, today=today, settings=settings)
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


def record_review(
    *,
    session: Session,
    serial: str,
    refill_event_id: Any,
    finding: Any,
    note: str,
    author: str,
    today: dt.date,
    occurred_on: dt.date | None = None,
    settings: Settings | None = None,
) -> tables.EventRow:
    """Rule 26: record the review of a flagged refill (its entry id) on device ``serial``,
    on ``occurred_on`` (default today): a ``refill_review`` event through
    :func:`record_event`, so one transaction, audited, the due table refreshed."""
    data = validate(RefillReviewData, {"refill_event_id": refill_event_id, "finding": finding, "note": note}, "data")
    event = validate(EventIn, {"device_serial": serial, "occurred_on": occurred_on or today, "author": author,
                               "data": data.model_dump()})
    return record_event(session=session, event=event, today=today, settings=settings)


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
    if isinstance(data, RefillReviewData) and data.refill_event_id != (original.data or {}).get("refill_event_id"):
        raise InputError([Problem("data.refill_event_id", data.refill_event_id,
                                  f"the amended review is of refill entry {(original.data or {}).get('refill_event_id')}")])
    device = session.get(tables.Device, original.device_id)
    candidate = EventIn(device_serial=device.serial, occurred_on=occurred_on, author=author, data=data)
    _, problems = check_event(session=session, event=candidate, today=today, settings=settings)
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


# --------------------------------------------------------------------- following a due item through (issue 14.2)


def find_due_item(session: Session, item_key: Any, settings: Settings | None = None):
    """The listed due item with this key (``DueItem.key``, as ``devicelog due --format json``
    shows it in ``item_key``); ``InputError`` naming ``item`` when there is none."""
    from devicelog.store import due

    key = str(item_key or "").strip()
    device_part = key.split(":", 1)[0]
    if key.count(":") != 2 or not device_part.isdigit():
        raise InputError([Problem("item", key, "is not an item key (DEVICE:CODE:EVENT, as item_key in devicelog due --format json)")])
    forecast = due.device_forecast(session, device_id=int(device_part), settings=settings or Settings())
    for item in forecast.items:
        if item.key == key:
            return item
    raise InputError([Problem("item", key, "no due item on the list has this key (it may have been done, or its inputs changed)")])


def _ack_row(session: Session, item, *, kind: str, reason: str, author: str, until: dt.date | None = None,
             withdraws_id: int | None = None) -> int:
    from devicelog.clinic.acks import MAX_REASON_CHARS, fingerprint

    text = (reason or "").strip()
    if not text:
        raise InputError([Problem("reason", reason, "say why (it stays on the device's record)")])
    if len(text) > MAX_REASON_CHARS:
        raise InputError([Problem("reason", text[:40] + "…", f"at most {MAX_REASON_CHARS} characters")])
    values = {
        "device_id": item.device_id,
        "item_key": item.key,
        "fingerprint": fingerprint(item),
        "kind": kind,
        "until": until,
        "withdraws_id": withdraws_id,
        "what": item.what,
        "due_on": item.due_on,
        "reason": text,
        "author": author,
        "recorded_at": tables.utcnow(),
    }
    return _append_ack(session, values)


def _append_ack(session: Session, values: dict) -> int:
    """Insert one ``due_ack`` row and its audit entry (the caller's transaction)."""
    from devicelog.store import acks

    new_id = acks.insert(session, values)
    row = session.execute(select(acks.due_ack).where(acks.due_ack.c.id == new_id)).first()
    audit.append(session, action=f"{values['kind']} due item {values['item_key']}", author=values["author"],
                 changes=[audit.Change("due_ack", new_id, None, audit.row_values(row))])
    return new_id


def acknowledge_item(*, session: Session, item_key: Any, reason: str, author: str, settings: Settings | None = None) -> int:
    """Record that a person dealt with a due item, and why: it leaves the active list
    while its inputs stay as they are (``clinic.acks``).  Returns the record's id."""
    item = find_due_item(session, item_key, settings)
    if item.code.startswith("advisory_"):
        notice = item.code.removeprefix("advisory_")
        raise InputError([Problem(
            "item", item.key,
            f"a safety notice is closed with what was done: devicelog advisory ack {notice} {item.device_serial} "
            "--done … (or k on the safety notices screen, F7)",
        )])
    return _ack_row(session, item, kind="acknowledge", reason=reason, author=author)


def snooze_item(*, session: Session, item_key: Any, until: dt.date, reason: str, author: str, today: dt.date,
                settings: Settings | None = None) -> int:
    """Put a due item off until ``until`` (it is back on that day), with a reason; refused
    for a critical item, past its latest safe date, or for a refill up to its pump's
    low-reservoir alarm date (``clinic.acks.snooze_refusals``).  Returns the record's id."""
    from devicelog.clinic.acks import snooze_refusals

    settings = settings or Settings()
    item = find_due_item(session, item_key, settings)
    if not isinstance(until, dt.date):
        raise InputError([Problem("until", until, "give a date (YYYY-MM-DD)")])
    alarm_on = _refill_alarm_on(session, item, settings) if item.code == "refill" else None
    refused = snooze_refusals(item, until, today, alarm_on=alarm_on)
    if not (reason or "").strip():
        refused.append(("reason", reason, "say why (it stays on the device's record)"))
    if refused:
        raise InputError([Problem(*r) for r in refused])
    return _ack_row(session, item, kind="snooze", reason=reason, author=author, until=until)


def withdraw_ack(*, session: Session, item_key: Any, reason: str, author: str) -> int:
    """Take back the acknowledgement or snooze in force for an item (an amendment: both
    records stay); the item is active again.  Returns the withdrawal's id."""
    from devicelog.store import acks

    key = str(item_key or "").strip()
    device_part = key.split(":", 1)[0]
    record = acks.in_force(session, device_ids=[int(device_part)]).get(key) if device_part.isdigit() else None
    if record is None:
        raise InputError([Problem("item", key, "has no acknowledgement or snooze in force to withdraw")])
    text = (reason or "").strip()
    if not text:
        raise InputError([Problem("reason", reason, "say why (it stays on the device's record)")])
    values = {
        "device_id": record.device_id, "item_key": key, "fingerprint": record.fingerprint, "kind": "withdraw",
        "until": None, "withdraws_id": record.id, "what": record.what, "due_on": record.due_on, "reason": text,
        "author": author, "recorded_at": tables.utcnow(),
    }
    return _append_ack(session, values)


def _refill_alarm_on(session: Session, item, settings: Settings) -> dt.date | None:
    """The pump's low-reservoir alarm date as the refill item was computed (rule 2)."""
    from devicelog.clinic.acks import refill_alarm_on

    history = next(queries.load_histories(session, [item.device_id]), None)
    if history is None:
        return None
    return refill_alarm_on(history, settings, queries.drugs_by_code(session))
