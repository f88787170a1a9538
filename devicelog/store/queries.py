"""Reading rows and turning them into the plain values of ``devicelog.clinic``.

Rows never leave the store: callers get ``DeviceHistory``, ``DeviceModel``, ``Drug``
and ``Event`` values, which the forecast and the reports use as they are.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator

from sqlalchemy import or_
from sqlalchemy import select as sa_select
from sqlalchemy import text as sa_text
from sqlmodel import Session, select

from devicelog.clinic.catalogue import Catalogue, DeviceModel, Drug
from devicelog.clinic.history import DeviceHistory, DeviceInfo, PatientInfo, effective_events
from devicelog.clinic.records import Event
from devicelog.store import tables


def to_device_model(row: tables.DeviceModelRow) -> DeviceModel:
    return DeviceModel.model_validate(row.model_dump())


def catalogue(session: Session) -> Catalogue:
    models = [to_device_model(r) for r in session.exec(select(tables.DeviceModelRow)).all()]
    drugs = [Drug.model_validate(r.model_dump()) for r in session.exec(select(tables.DrugRow)).all()]
    return Catalogue(device_models=models, drugs=drugs)


def drugs_by_code(session: Session) -> dict[str, Drug]:
    return {d.code: d for d in catalogue(session).drugs}


def to_event(row: tables.EventRow) -> Event:
    return Event.model_validate(
        {
            "id": row.id,
            "device_id": row.device_id,
            "occurred_on": row.occurred_on,
            "author": row.author,
            "recorded_at": row.recorded_at,
            "data": row.data,
            "amends_id": row.amends_id,
            "amendment_reason": row.amendment_reason,
            "voided": row.voided,
        }
    )


def to_patient(row: tables.Patient) -> PatientInfo:
    return PatientInfo.model_validate(row.model_dump(include=set(PatientInfo.model_fields)))


def to_device(row: tables.Device, model: DeviceModel, serials: dict[int, str] | None = None) -> DeviceInfo:
    values = row.model_dump(exclude={"model_code", "patient_id", "replaced_by_id", "author", "recorded_at"})
    serials = serials or {}
    values["model"] = model
    values["replaced_by_serial"] = serials.get(row.replaced_by_id) if row.replaced_by_id else None
    return DeviceInfo.model_validate(values)


_EVENT_FIELDS = ("id", "device_id", "occurred_on", "author", "recorded_at", "data", "amends_id", "amendment_reason", "voided")


def raw_events(session: Session, device_ids: Iterable[int]) -> dict[int, list[Event]]:
    """Every event row (originals and amendments) of these devices, by device id.

    Read as plain rows (no ORM objects), each validated once by ``Event``: the
    validation is most of the cost of loading a history."""
    ids = list(device_ids)
    by_device: dict[int, list[Event]] = defaultdict(list)
    E = tables.EventRow.__table__
    columns = [E.c[name] for name in _EVENT_FIELDS]
    validate = Event.model_validate
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for row in session.execute(sa_select(*columns).where(E.c.device_id.in_(chunk)).order_by(E.c.id)):
            by_device[row[1]].append(validate(dict(zip(_EVENT_FIELDS, row))))
    return by_device


def load_histories(session: Session, device_ids: Iterable[int] | None = None) -> Iterator[DeviceHistory]:
    """The history of each device (all devices when ``device_ids`` is None)."""
    cat = {m.code: m for m in catalogue(session).device_models}
    query = select(tables.Device, tables.Patient).join(tables.Patient)
    if device_ids is not None:
        query = query.where(tables.Device.id.in_(list(device_ids)))
    pairs = session.exec(query.order_by(tables.Device.id)).all()
    serials = {d.id: d.serial for d, _ in pairs}
    missing = {d.replaced_by_id for d, _ in pairs if d.replaced_by_id and d.replaced_by_id not in serials}
    if missing:
        for d in session.exec(select(tables.Device).where(tables.Device.id.in_(missing))).all():
            serials[d.id] = d.serial
    replaces = {d.replaced_by_id: d.serial for d, _ in pairs if d.replaced_by_id}
    events = raw_events(session, [d.id for d, _ in pairs])
    for device, patient in pairs:
        info = to_device(device, cat[device.model_code], serials)
        if device.id in replaces:
            info = info.model_copy(update={"replaces_serial": replaces[device.id]})
        yield DeviceHistory(
            patient=to_patient(patient),
            device=info,
            events=tuple(effective_events(events.get(device.id, []))),
        )


def device_by_serial(session: Session, serial: str) -> tables.Device | None:
    return session.exec(select(tables.Device).where(tables.Device.serial == serial)).first()


def patient_by_mrn(session: Session, mrn: str) -> tables.Patient | None:
    return session.exec(select(tables.Patient).where(tables.Patient.mrn == mrn)).first()


def history_by_serial(session: Session, serial: str) -> DeviceHistory | None:
    device = device_by_serial(session, serial)
    if device is None:
        return None
    return next(load_histories(session, [device.id]), None)


def search_patients(session: Session, text: str, limit: int = 50) -> list[tables.Patient]:
    """Patients whose MRN, name or a device serial contains ``text`` (case-insensitive),
    by name (then id), at most ``limit``.  ``%`` and ``_`` are plain characters.

    On SQLite one scan of the narrow ``patient_search`` table (revision 0004, kept by
    triggers); elsewhere ILIKE on the clinical tables.  Both give the same patients.
    """
    text = text.strip()
    P = tables.Patient
    if not text:
        return list(session.exec(select(P).order_by(P.name, P.id).limit(limit)).all())
    if session.get_bind().dialect.name == "sqlite":
        ids = [
            r[0]
            for r in session.execute(
                sa_text(
                    "SELECT patient_id FROM patient_search WHERE instr(haystack, lower(:t)) > 0 "
                    "ORDER BY name, patient_id LIMIT :n"
                ),
                {"t": text, "n": limit},
            )
        ]
        if not ids:
            return []
        found = {p.id: p for p in session.exec(select(P).where(P.id.in_(ids))).all()}
        return [found[i] for i in ids if i in found]
    return search_patients_like(session, text, limit)


def search_patients_like(session: Session, text: str, limit: int = 50) -> list[tables.Patient]:
    """``search_patients`` with ILIKE over ``patient`` and ``device`` (any database)."""
    P, D = tables.Patient, tables.Device
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = f"%{escaped}%"
    serial_match = select(D.patient_id).where(D.serial.ilike(like, escape="\\"))
    query = select(P).where(
        or_(P.mrn.ilike(like, escape="\\"), P.name.ilike(like, escape="\\"), P.id.in_(serial_match))
    )
    return list(session.exec(query.order_by(P.name, P.id).limit(limit)).all())


def devices_of_patient(session: Session, patient_id: int) -> list[tables.Device]:
    return list(
        session.exec(
            select(tables.Device).where(tables.Device.patient_id == patient_id).order_by(tables.Device.implanted_on)
        ).all()
    )
