"""Reading rows and turning them into the plain values of ``devicelog.clinic``.

Rows never leave the store: callers get ``DeviceHistory``, ``DeviceModel``, ``Drug``
and ``Event`` values, which the forecast and the reports use as they are.

The first screen of the TUI is read with SQLAlchemy Core only (:func:`catalogue`,
:func:`search_patient_ids`, :func:`patients_by_id`, :func:`devices_of_patients`, on a
``Connection`` or a ``Session``), so that ``devicelog tui`` paints without importing
the ORM (sqlalchemy.orm, sqlmodel and ``store.tables``: ~110 ms of CPU).  This module
therefore imports them only inside the functions that build ORM queries.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from sqlalchemy import JSON, Date, String, Text, cast, column, func, or_, table, type_coerce, union
from sqlalchemy import select as sa_select
from sqlalchemy import text as sa_text

from devicelog.clinic.catalogue import Catalogue, DeviceModel, Drug
from devicelog.clinic.history import DeviceHistory, DeviceInfo, PatientInfo, effective_events
from devicelog.clinic.records import STORED, Event
from devicelog.store.folding import fold

if TYPE_CHECKING:
    from sqlmodel import Session

    from devicelog.store import tables


def _tables():
    from devicelog.store import tables

    return tables


def _columns(names: Iterable[str], dates: Iterable[str] = ()) -> list:
    """Core columns by name (the ``Date`` ones typed, so SQLite's text reads as dates)."""
    dates = set(dates)
    return [column(n, Date) if n in dates else column(n) for n in names]


# Lightweight Core views of the tables the first screen reads (no ORM import): the
# columns of the clinical values they become, named as ``store.tables`` names them.
_MODEL_T = table(
    "device_model", *(column(n, JSON) if n == "device_identifiers" else column(n) for n in DeviceModel.model_fields)
)
_DRUG_JSON = ("labelled_concentrations_mg_per_ml", "limits")
_DRUG_T = table("drug", *(column(n, JSON) if n in _DRUG_JSON else column(n) for n in Drug.model_fields))
_PATIENT_T = table("patient", *_columns(PatientInfo.model_fields, dates=("birth_date", "died_on")))
#: The columns of ``DeviceInfo`` that ``device`` holds as they are (the model, and the
#: serials of the devices replaced and replacing, come from elsewhere).
_DEVICE_FIELDS = tuple(n for n in DeviceInfo.model_fields if n not in ("model", "replaced_by_serial", "replaces_serial"))
_DEVICE_T = table(
    "device",
    column("patient_id"),
    column("model_code"),
    *_columns(_DEVICE_FIELDS, dates=("implanted_on", "udi_expiry", "udi_manufactured")),
)


def to_device_model(row: tables.DeviceModelRow) -> DeviceModel:
    return DeviceModel.model_validate(row.model_dump(), context=STORED)


def catalogue(session) -> Catalogue:
    """The device models and drugs (a ``Session`` or a Core ``Connection``; no ORM)."""
    return Catalogue(device_models=device_models(session), drugs=_drugs(session))


def device_models(session, codes: Iterable[str] | None = None) -> list[DeviceModel]:
    """The device models of the catalogue (only those of ``codes`` when given; Core)."""
    query = sa_select(*_MODEL_T.c)
    if codes is not None:
        query = query.where(_MODEL_T.c.code.in_(sorted(set(codes))))
    return [DeviceModel.model_validate(r._asdict(), context=STORED) for r in session.execute(query)]


def _drugs(session) -> list[Drug]:
    return [Drug.model_validate(r._asdict(), context=STORED) for r in session.execute(sa_select(*_DRUG_T.c))]


def drugs_by_code(session: Session) -> dict[str, Drug]:
    """The drugs of the catalogue by code (the device models are not read)."""
    return {d.code: d for d in _drugs(session)}


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
        },
        context=STORED,
    )


def to_patient(row: tables.Patient) -> PatientInfo:
    return PatientInfo.model_validate(row.model_dump(include=set(PatientInfo.model_fields)), context=STORED)


def to_device(row: tables.Device, model: DeviceModel, serials: dict[int, str] | None = None) -> DeviceInfo:
    values = row.model_dump(exclude={"model_code", "patient_id", "replaced_by_id", "author", "recorded_at"})
    serials = serials or {}
    values["model"] = model
    values["replaced_by_serial"] = serials.get(row.replaced_by_id) if row.replaced_by_id else None
    return DeviceInfo.model_validate(values, context=STORED)


@functools.cache
def _event_data():
    """``EventData`` (the union of the eight kinds' Create models) as a validator of JSON
    text; built on first use (a few ms), not at import."""
    from pydantic import TypeAdapter

    from devicelog.clinic.records import EventData

    return TypeAdapter(EventData)


def _event_columns() -> list:
    """The ``event`` columns an ``Event`` is made of, in the order ``_read_events``
    takes them, read so that pydantic, not Python code in SQLAlchemy, does the
    parsing: ``data`` as its JSON text (``CAST … AS TEXT``: the stored text on SQLite,
    the JSON value's text on PostgreSQL) instead of SQLAlchemy's ``json.loads``, and
    ``occurred_on`` as the driver gives it (ISO text on SQLite, a ``date`` on
    PostgreSQL) instead of SQLAlchemy's regular expression.  ``recorded_at`` keeps its
    column type, which makes SQLite's naive text UTC-aware."""
    E = _tables().EventRow.__table__
    return [
        E.c.id,
        E.c.device_id,
        type_coerce(E.c.occurred_on, String).label("occurred_on"),
        E.c.author,
        E.c.recorded_at,
        cast(E.c.data, Text).label("data"),
        E.c.amends_id,
        E.c.amendment_reason,
        E.c.voided,
    ]


def _read_events(session, where) -> Iterator[Event]:
    """``Event`` values of the event rows that match ``where``, in id order.

    Every row is validated again on reading, as ``to_event`` does (the same ``Event``
    and the same Create models, so a row that would not validate is refused, not
    shown), but faster: ``data`` goes from its JSON text straight into the kind's
    model (``TypeAdapter.validate_json``, parsing and validating in pydantic-core) and
    ``Event`` then takes that validated value as it is.  ``model_construct`` (no
    validation) was not used: ``data`` holds enums, dates and nested models that only
    validation builds, and ``author`` of an amendment is stored as typed (``Event``
    trims it).  The 796 rows of the largest history at 100,000 patients: JSON and
    validation 14.5 ms → 10.6 ms on a quiet machine, and SQLAlchemy's JSON and date
    processing is skipped (tests/test_history_load.py pins the result to
    ``to_event``'s)."""
    E = _tables().EventRow.__table__
    rows = session.execute(sa_select(*_event_columns()).where(where).order_by(E.c.id)).all()
    # Rows fetched first, then validated (~20 % faster than one by one as they come),
    # by ``Event``'s own validator (``model_validate`` is this call and a wrapper).
    validate = Event.__pydantic_validator__.validate_python
    data_of = _event_data().validate_json
    for r in rows:
        yield validate(
            {
                "id": r[0],
                "device_id": r[1],
                "occurred_on": r[2],
                "author": r[3],
                "recorded_at": r[4],
                "data": data_of(r[5], context=STORED),
                "amends_id": r[6],
                "amendment_reason": r[7],
                "voided": r[8],
            },
            context=STORED,
        )


def raw_events(session: Session, device_ids: Iterable[int]) -> dict[int, list[Event]]:
    """Every event row (originals and amendments) of these devices, by device id, in
    id order (see ``_read_events``: plain rows, validated once, no ORM objects)."""
    ids = list(device_ids)
    by_device: dict[int, list[Event]] = defaultdict(list)
    E = _tables().EventRow.__table__
    for start in range(0, len(ids), 500):
        for event in _read_events(session, E.c.device_id.in_(ids[start : start + 500])):
            by_device[event.device_id].append(event)
    return by_device


def corrections(session: Session, device_ids: Sequence[int]) -> dict[int, list[Event]]:
    """The amendment rows of these devices and the originals they amend, by device id
    (amendments first, then originals, each in id order).  Two queries per 500 devices
    or amended events, whatever the number of events."""
    E = _tables().EventRow.__table__
    found: dict[int, list[Event]] = defaultdict(list)
    ids = list(device_ids)
    amended: set[int] = set()
    for start in range(0, len(ids), 500):
        where = E.c.device_id.in_(ids[start : start + 500]) & E.c.amends_id.is_not(None)
        for event in _read_events(session, where):
            found[event.device_id].append(event)
            amended.add(event.amends_id)
    wanted = sorted(amended)
    for start in range(0, len(wanted), 500):
        for event in _read_events(session, E.c.id.in_(wanted[start : start + 500])):
            found[event.device_id].append(event)
    return found


#: ``device`` columns for ``load_histories`` (``_DEVICE_T`` and the replacing device's id).
_HISTORY_DEVICE_T = table(
    "device",
    column("patient_id"),
    column("model_code"),
    column("replaced_by_id"),
    *_columns(_DEVICE_FIELDS, dates=("implanted_on", "udi_expiry", "udi_manufactured")),
)


def load_histories(session: Session, device_ids: Iterable[int] | None = None) -> Iterator[DeviceHistory]:
    """The history of each device (all devices when ``device_ids`` is None), by device id.

    Read in Core (devices joined to their patients, the models they use, their event
    rows): ORM objects were a third of the time of opening a device's history.  A
    device's ``replaces_serial`` is filled when the device it replaces is among
    ``device_ids``; ``replaced_by_serial`` always."""
    D = _HISTORY_DEVICE_T.c
    P = _PATIENT_T.c
    patient_columns = [c.label(f"p_{c.name}") for c in _PATIENT_T.c]
    query = sa_select(*_HISTORY_DEVICE_T.c, *patient_columns).join_from(_HISTORY_DEVICE_T, _PATIENT_T, P.id == D.patient_id)
    if device_ids is not None:
        ids = list(device_ids)
        rows = []
        for start in range(0, len(ids), 500):
            rows += session.execute(query.where(D.id.in_(ids[start : start + 500]))).all()
        rows.sort(key=lambda r: r.id)
    else:
        rows = session.execute(query.order_by(D.id)).all()
    models = {m.code: m for m in device_models(session, {r.model_code for r in rows})} if rows else {}
    serials = {r.id: r.serial for r in rows}
    missing = sorted({r.replaced_by_id for r in rows if r.replaced_by_id and r.replaced_by_id not in serials})
    for start in range(0, len(missing), 500):
        for r in session.execute(sa_select(D.id, D.serial).where(D.id.in_(missing[start : start + 500]))):
            serials[r.id] = r.serial
    replaces = {r.replaced_by_id: r.serial for r in rows if r.replaced_by_id}
    events = raw_events(session, [r.id for r in rows])
    from devicelog.store.advisories import flags_by_device

    flags = flags_by_device(session, [r.id for r in rows])
    patient_names = [f"p_{c.name}" for c in _PATIENT_T.c]
    patients: dict[int, PatientInfo] = {}
    for r in rows:
        values = r._asdict()
        patient_id = values["patient_id"]
        patient = patients.get(patient_id)
        if patient is None:
            patient = patients[patient_id] = PatientInfo.model_validate({n[2:]: values[n] for n in patient_names}, context=STORED)
        device = {n: values[n] for n in _DEVICE_FIELDS}
        device["model"] = models[r.model_code]
        device["replaced_by_serial"] = serials.get(r.replaced_by_id) if r.replaced_by_id else None
        if r.id in replaces:
            device["replaces_serial"] = replaces[r.id]
        yield DeviceHistory(
            patient=patient,
            device=DeviceInfo.model_validate(device, context=STORED),
            events=tuple(effective_events(events.get(r.id, []))),
            advisories=tuple(flags.get(r.id, ())),
        )


def device_by_serial(session: Session, serial: str) -> tables.Device | None:
    from sqlmodel import select

    tables = _tables()
    return session.exec(select(tables.Device).where(tables.Device.serial == serial)).first()


def patient_by_mrn(session: Session, mrn: str) -> tables.Patient | None:
    from sqlmodel import select

    tables = _tables()
    return session.exec(select(tables.Patient).where(tables.Patient.mrn == mrn)).first()


def history_by_serial(session: Session, serial: str) -> DeviceHistory | None:
    device = device_by_serial(session, serial)
    if device is None:
        return None
    return next(load_histories(session, [device.id]), None)


def search_patients(session: Session, text: str, limit: int = 50) -> list[tables.Patient]:
    """Patients whose MRN, name or a device serial contains ``text``, ignoring case
    (Ö/ö and É/é too, on both databases), by name (then id), at most ``limit``.  ``%``
    and ``_`` are plain characters; ``text`` is stripped, and an empty one lists by name.

    The TUI calls this on every keystroke, so at 100,000 patients it must answer in a
    few ms whether the term matches almost everyone (``D``, ``DEMO-0``) or one patient
    (``DEMO-091205``).  No single plan does both:

    - walking ``patient_search`` in name order (covering index ``ix_patient_search_name``)
      and testing each row stops at the ``limit``-th match: well under 1 ms when many
      match evenly, a read of every row (~17 ms; ~220 ms without the covering index)
      when few do;
    - the trigram index (``patient_search_fts``, revision 0005) finds the matches of a
      term of 3 characters or more directly, but they must then be sorted by name:
      ~0.03 ms for none, ~4 ms for 4,000, ~55 ms when all 100,000 match.

    So a term of 3+ characters first counts its matches in the index, stopping at
    :data:`FTS_SORT_MAX` + 1; up to that many are fetched and sorted, more means they
    are common enough for the walk to find ``limit`` of them soon.  A 1-2 character
    term (the index has no trigram for it) always walks.

    Accents and case: the term and the stored values are compared folded
    (``store.folding``: "nunez" finds Núñez, "ÖZ" finds Özil).  On SQLite the haystack
    holds each value folded (the search triggers call ``devicelog_fold``), the term is
    folded in Python, and both the index (the term passed as one quoted FTS5 string, so
    it is matched as a substring, nothing in it is syntax) and the walk (``instr``)
    look for it as it is.  A term with a line break finds no one (the haystack
    separates values by line breaks; names are typed on one line).

    PostgreSQL: ``devicelog_fold(column) LIKE`` the folded term over the clinical
    tables, a term of 3+ characters as a union of three lookups that the optional
    trigram indexes of revision 0008 (on the folded columns) serve; the same patients
    as :func:`search_patients_like`.
    """
    from sqlmodel import select

    P = _tables().Patient
    ids = search_patient_ids(session, text, limit)
    if not ids:
        return []
    found = {p.id: p for p in session.exec(select(P).where(P.id.in_(ids))).all()}
    return [found[i] for i in ids if i in found]


def search_patient_ids(conn, text: str, limit: int = 50) -> list[int]:
    """The ids of the patients :func:`search_patients` finds, in its order: the part of
    it that finds them, in Core (a ``Session`` or a ``Connection``; no ORM import, so
    the TUI's first screen reads it before the ORM is imported)."""
    text = fold(text.strip())
    P = _PATIENT_T.c
    if not text:
        return [r[0] for r in conn.execute(sa_select(P.id).order_by(P.name, P.id).limit(limit))]
    dialect = conn.dialect if hasattr(conn, "dialect") else conn.get_bind().dialect
    if dialect.name != "sqlite":
        # A 1-2 character term: LIKE scans (no trigram to look up), one pass with OR.
        found = _like_condition(text) if len(text) < 3 else P.id.in_(_union_matches(text))
        query = sa_select(P.id).where(found).order_by(P.name, P.id).limit(limit)
        return [r[0] for r in conn.execute(query)]
    return _search_ids_sqlite(conn, text, limit)


def patients_by_id(conn, ids: Sequence[int]) -> list[PatientInfo]:
    """These patients, in the order of ``ids`` (unknown ids left out), read in Core."""
    if not ids:
        return []
    rows = conn.execute(sa_select(*_PATIENT_T.c).where(_PATIENT_T.c.id.in_(list(ids))))
    found = {r.id: PatientInfo.model_validate(r._asdict(), context=STORED) for r in rows}
    return [found[i] for i in ids if i in found]


def devices_of_patients(conn, patient_ids: Sequence[int], models: dict[str, DeviceModel]) -> list[tuple[int, DeviceInfo]]:
    """(patient id, device) for every device of these patients, read in Core.

    As :func:`to_device` without ``serials``: ``replaced_by_serial`` is left empty."""
    if not patient_ids:
        return []
    D = _DEVICE_T.c
    rows = conn.execute(sa_select(*_DEVICE_T.c).where(D.patient_id.in_(list(patient_ids))))
    out = []
    validate = DeviceInfo.model_validate
    for r in rows:
        values = r._asdict()
        patient_id = values.pop("patient_id")
        values["model"] = models[values.pop("model_code")]
        out.append((patient_id, validate(values, context=STORED)))
    return out


#: Most trigram-index matches that are fetched and sorted by name (~5 ms for 5,000 at
#: 100,000 patients).  With more, the name walk meets ``limit`` of them within about
#: limit × patients / FTS_SORT_MAX rows when they are spread over the alphabet, and
#: within one full walk (~17 ms) however they are bunched (a first name shared by
#: 4,000 patients, ``Yara``, is not: it is sorted, 5 ms instead of a 16 ms walk to Y).
FTS_SORT_MAX = 5000

_FTS_COUNT = (
    "SELECT count(*) FROM (SELECT 1 FROM patient_search_fts WHERE patient_search_fts MATCH :q LIMIT :cap)"
)
_FTS_SORTED = (
    "SELECT s.patient_id FROM patient_search_fts JOIN patient_search s ON s.patient_id = patient_search_fts.rowid "
    "WHERE patient_search_fts MATCH :q ORDER BY s.name, s.patient_id LIMIT :n"
)
_NAME_WALK = "SELECT patient_id FROM patient_search WHERE instr(haystack, :term) > 0 ORDER BY name, patient_id LIMIT :n"
def _search_ids_sqlite(session, text: str, limit: int) -> list[int]:
    if "\n" in text:
        return []
    if len(text) >= 3:
        phrase = '"' + text.replace('"', '""') + '"'
        found = session.execute(sa_text(_FTS_COUNT), {"q": phrase, "cap": FTS_SORT_MAX + 1}).scalar()
        if found <= FTS_SORT_MAX:
            return [r[0] for r in session.execute(sa_text(_FTS_SORTED), {"q": phrase, "n": limit})] if found else []
    return [r[0] for r in session.execute(sa_text(_NAME_WALK), {"term": text, "n": limit})]


def _like(text: str) -> str:
    """An ILIKE pattern (escape ``\\``) for values containing ``text``, ``%`` and ``_`` plain."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _folded_like(col, term: str):
    """``devicelog_fold(col) LIKE %term%`` (PostgreSQL; ``term`` already folded)."""
    return func.devicelog_fold(col).like(_like(term), escape="\\")


def _union_matches(text: str):
    """The ids of the patients whose MRN, name or a device serial contains the folded
    ``text``, as three lookups in a union, each of which a GIN trigram index on the
    folded column serves (``OR`` with a sub-query would keep PostgreSQL from using them)."""
    P, D = _PATIENT_T.c, _DEVICE_T.c
    return union(
        sa_select(P.id).where(_folded_like(P.mrn, text)),
        sa_select(P.id).where(_folded_like(P.name, text)),
        sa_select(D.patient_id).where(_folded_like(D.serial, text)),
    )


def _like_condition(text: str):
    """The same patients as :func:`_union_matches`, as one condition with ``OR``."""
    P, D = _PATIENT_T.c, _DEVICE_T.c
    serial_match = sa_select(D.patient_id).where(_folded_like(D.serial, text))
    return or_(_folded_like(P.mrn, text), _folded_like(P.name, text), P.id.in_(serial_match))


def search_patients_like(session: Session, text: str, limit: int = 50) -> list[tables.Patient]:
    """What ``search_patients`` must find, worked out apart from it: every patient read
    in name order (the database's), kept when its MRN, name or a device serial contains
    ``text``, each folded in Python (``store.folding.fold``).  The reference the tests
    hold it to; a full read, for tests only."""
    from sqlmodel import select

    tables = _tables()
    P, D = tables.Patient, tables.Device
    term = fold(text)
    serials: dict[int, list[str]] = {}
    for patient_id, serial in session.exec(select(D.patient_id, D.serial)).all():
        serials.setdefault(patient_id, []).append(serial)
    found = []
    for p in session.exec(select(P).order_by(P.name, P.id)).all():
        if any(term in fold(v) for v in (p.mrn, p.name, *serials.get(p.id, ()))):
            found.append(p)
            if len(found) == limit:
                break
    return found


def devices_of_patient(session: Session, patient_id: int) -> list[tables.Device]:
    from sqlmodel import select

    tables = _tables()
    return list(
        session.exec(
            select(tables.Device).where(tables.Device.patient_id == patient_id).order_by(tables.Device.implanted_on)
        ).all()
    )
