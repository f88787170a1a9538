"""The import/export document: a whole clinic as one JSON file.

Shape (``schemas/document.schema.json`` is generated from :class:`Document`)::

    {"format": "devicelog", "version": 1,
     "catalogue": {"device_models": [...], "drugs": [...]},   # entries beyond the shipped catalogue
     "patients": [PatientIn + author, recorded_at],
     "devices":  [DeviceIn + author, recorded_at],             # patient by MRN, replacement by serial
     "events":   [EventIn + ref, amends, amendment_reason, voided, recorded_at]}

Devices name their patient by MRN, events their device by serial, and an amendment
names the event it corrects by that event's ``ref`` (an id that only means something
inside the document).

Import goes through the same records and the same use cases as a person at the
keyboard (``services.add_patient`` / ``add_device`` / ``record_event`` /
``amend_event`` / ``void_event``), replayed in clinical order inside one
transaction: every refusal is collected with its JSON path
(``$.events[12].data.volume_added_ml = -3: …``) and if there is any, the whole
import is rolled back.  Export writes the whole database in the same shape, in an
order that depends only on the content (never on row ids), so export → import into
an empty database → export gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import IO, Annotated, Any, Callable, Iterable, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from devicelog import services
from devicelog.clinic.catalogue import DeviceModel, Drug, shipped_catalogue
from devicelog.clinic.records import (
    DeviceIn,
    DeviceStatus,
    EventIn,
    EventKind,
    PatientIn,
    Record,
)
from devicelog.services import InputError, Problem
from devicelog.store import queries, tables

FORMAT = "devicelog"
VERSION = 1

Author = Annotated[str, Field(min_length=1, max_length=80)]
Ref = Annotated[str, Field(min_length=1, max_length=40)]


# --------------------------------------------------------------------------- the document


class DocPatient(PatientIn):
    """A patient; ``author`` and ``recorded_at`` default to the importing user and now."""

    author: Author | None = None
    recorded_at: AwareDatetime | None = None


class DocDevice(DeviceIn):
    """A device of a patient (by MRN); ``status`` is its status now, after its events."""

    author: Author | None = None
    recorded_at: AwareDatetime | None = None


class DocEvent(EventIn):
    """An event of a device (by serial); an amendment names the event it corrects by ``ref``."""

    ref: Ref | None = None
    amends: Ref | None = None
    amendment_reason: Annotated[str, Field(max_length=500)] | None = None
    voided: bool = False
    recorded_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _amendment(self) -> "DocEvent":
        if self.voided and self.amends is None:
            raise ValueError("voided: only an amendment (with amends) can void an event")
        if self.amendment_reason is not None and self.amends is None:
            raise ValueError("amendment_reason: only an amendment (with amends) has a reason")
        return self


class DocCatalogue(BaseModel):
    """Device models and drugs to add to the catalogue before the records that use them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    device_models: list[DeviceModel] = []
    drugs: list[Drug] = []


class Document(Record):
    """The devicelog import/export document, version 1."""

    format: Literal["devicelog"]
    version: Literal[1]
    catalogue: DocCatalogue = DocCatalogue()
    patients: list[DocPatient] = []
    devices: list[DocDevice] = []
    events: list[DocEvent] = []


# --------------------------------------------------------------------------- JSON paths


def json_path(prefix: str, field: str | Iterable[Any] = "") -> str:
    """``$.events[12]`` + ``data.program.drugs.0.drug`` -> ``$.events[12].data.program.drugs[0].drug``."""
    parts = field.split(".") if isinstance(field, str) else list(field)
    path = prefix
    for p in parts:
        if p == "" or p is None:
            continue
        if isinstance(p, int) or (isinstance(p, str) and p.isdigit()):
            path += f"[{p}]"
        else:
            path += f".{p}"
    return path


_KINDS = {k.value for k in EventKind}


def _validation_problems(error: ValidationError, prefix: str) -> list[Problem]:
    found = []
    for e in error.errors():
        loc = list(e["loc"])
        # A discriminated union puts the chosen tag into the location: data.refill.volume_ml.
        loc = [p for i, p in enumerate(loc) if not (i > 0 and loc[i - 1] == "data" and p in _KINDS)]
        message = e["msg"].removeprefix("Value error, ")
        found.append(Problem(json_path(prefix, loc), e.get("input"), message))
    return found


def _prefixed(problems: Iterable[Problem], prefix: str) -> list[Problem]:
    return [Problem(json_path(prefix, p.field), p.value, p.message) for p in problems]


# --------------------------------------------------------------------------- reading


def parse_text(text: str, source: str = "the file") -> Any:
    """JSON text to values; a truncated or non-JSON file is refused with where it broke."""
    if not text.strip():
        raise InputError([Problem("$", None, f"{source} is empty; expected a devicelog JSON document")])
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at_end = exc.pos >= len(text.rstrip())
        why = (
            "the file ends in the middle of the document (truncated?)"
            if at_end
            else f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        )
        raise InputError([Problem("$", None, f"{source}: {why}")]) from None


def _check_header(raw: Any) -> None:
    if not isinstance(raw, dict):
        raise InputError([Problem("$", None, "a devicelog document is a JSON object {\"format\": \"devicelog\", ...}")])
    problems = []
    if raw.get("format") != FORMAT:
        problems.append(Problem("$.format", raw.get("format"), f"must be {FORMAT!r}: this is not a devicelog document"))
    elif raw.get("version") != VERSION:
        problems.append(
            Problem("$.version", raw.get("version"), f"this devicelog reads version {VERSION} documents only")
        )
    unknown = sorted(set(raw) - set(Document.model_fields))
    for key in unknown:
        problems.append(Problem(f"$.{key}", None, "unknown top-level field"))
    for key in ("patients", "devices", "events"):
        if key in raw and not isinstance(raw[key], list):
            problems.append(Problem(f"$.{key}", None, "must be a list"))
    if "catalogue" in raw and not isinstance(raw["catalogue"], dict):
        problems.append(Problem("$.catalogue", None, "must be an object"))
    if problems:
        raise InputError(problems)


def _validate_items(model, items: list, prefix: str, problems: list[Problem], tick) -> dict[int, Any]:
    valid = {}
    for i, item in enumerate(items):
        try:
            valid[i] = model.model_validate(item)
        except ValidationError as exc:
            problems += _validation_problems(exc, f"{prefix}[{i}]")
        tick(1)
    return valid


# --------------------------------------------------------------------------- import


@dataclass(frozen=True)
class ImportSummary:
    patients: int
    devices: int
    events: int
    catalogue_entries: int


def _noop(_n: int = 1) -> None:
    return None


def import_document(
    session: Session,
    raw: Any,
    *,
    author: str,
    today: dt.date,
    tick: Callable[[int], None] = _noop,
    audit_action: str = "import",
) -> ImportSummary:
    """Add a parsed document to the database in ``session``; ``InputError`` lists every refusal.

    Call inside ``store.db.write_session`` so that a refusal rolls everything back.
    ``tick(n)`` is called as items are checked (twice per item: validation, then writing).
    The due table (``store.forecasts``) is refreshed at the end, in bulk, for every
    device the document added or gave events to.
    """
    from devicelog.store import forecasts

    try:
        return _import(session, raw, author=author, today=today, tick=tick, audit_action=audit_action)
    finally:
        session.info.pop(forecasts.DEFER_KEY, None)


def _import(session: Session, raw: Any, *, author: str, today: dt.date, tick, audit_action: str) -> ImportSummary:
    _check_header(raw)
    problems: list[Problem] = []

    # 1. Every item through its record model.
    catalogue = None
    try:
        catalogue = DocCatalogue.model_validate(raw.get("catalogue", {}))
    except ValidationError as exc:
        problems += _validation_problems(exc, "$.catalogue")
    patients = _validate_items(DocPatient, raw.get("patients", []), "$.patients", problems, tick)
    devices = _validate_items(DocDevice, raw.get("devices", []), "$.devices", problems, tick)
    events = _validate_items(DocEvent, raw.get("events", []), "$.events", problems, tick)

    # 2. Refs: unique, and every amendment names an original in the document.
    ref_index: dict[str, int] = {}
    for i, e in events.items():
        if e.ref is None:
            continue
        if e.ref in ref_index:
            problems.append(Problem(f"$.events[{i}].ref", e.ref, f"is also the ref of $.events[{ref_index[e.ref]}]"))
        else:
            ref_index[e.ref] = i
    refused_refs = _raw_keys(raw, "events", "ref", events)
    for i, e in events.items():
        if e.amends is None:
            continue
        target = ref_index.get(e.amends)
        if target is None and e.amends not in refused_refs:
            problems.append(Problem(f"$.events[{i}].amends", e.amends, "no event in the document has this ref"))
        elif target is not None and events[target].amends is not None:
            problems.append(
                Problem(f"$.events[{i}].amends", e.amends, "names an amendment; amend the original event instead")
            )

    # 3. Catalogue additions.
    from devicelog.store import forecasts

    changes: list[tuple[str, Any]] = []  # (table, row) written, for the audit trail
    added_catalogue = 0
    catalogue_before = forecasts.catalogue_hash(session)
    session.info[forecasts.DEFER_KEY] = set()  # the use cases below leave the due table to the end
    if catalogue is not None:
        added_catalogue = _add_catalogue(session, catalogue, problems, changes)

    # 4. Patients, then devices and original events replayed in clinical order, then amendments.
    patient_rows = {}
    refused_mrns = set()
    for i, p in patients.items():
        values = p.model_dump(exclude={"author", "recorded_at"})
        try:
            row = services.add_patient(session=session, patient=PatientIn(**values), author=p.author or author)
        except InputError as exc:
            problems += _prefixed(exc.problems, f"$.patients[{i}]")
            refused_mrns.add(p.mrn)
            continue
        finally:
            tick(1)
        if p.recorded_at is not None:
            row.recorded_at = p.recorded_at
        patient_rows[i] = row
        changes.append(("patient", row))
    refused_mrns |= _raw_keys(raw, "patients", "mrn", patients)
    refused_mrns -= {patients[i].mrn for i in patient_rows}  # a refused duplicate leaves the first one standing

    device_rows: dict[int, tables.Device] = {}
    device_by_serial_index = {d.serial: i for i, d in devices.items()}
    unchecked_serials = _raw_keys(raw, "devices", "serial", devices)
    timeline = []
    for i, d in devices.items():
        timeline.append(((d.implanted_on, 1, d.replaces_serial is not None, _instant(d.recorded_at), i), "device", i))
    for i, e in events.items():
        if e.amends is not None:
            continue
        d_index = device_by_serial_index.get(e.device_serial)
        implanted = devices[d_index].implanted_on if d_index is not None else None
        if implanted is not None and implanted >= e.occurred_on:
            # On (or, refused by check_event, before) its implant day: just after the device is added.
            timeline.append(((implanted, 2, False, _instant(e.recorded_at), i), "event", i))
        else:
            timeline.append(((e.occurred_on, 0, False, _instant(e.recorded_at), i), "event", i))
    timeline.sort(key=lambda t: t[0])

    skipped = 0
    lookups = services.Lookups()  # devices, models and drug codes read once for the whole import
    checked: dict[int, tuple[int, EventIn]] = {}  # doc index -> (device id, event) passed the checks
    for _, what, i in timeline:
        tick(1)
        if what == "device":
            d = devices[i]
            if d.patient_mrn in refused_mrns:
                skipped += 1
                unchecked_serials.add(d.serial)
                continue
            values = d.model_dump(exclude={"author", "recorded_at"})
            if values["status"] in (DeviceStatus.explanted, DeviceStatus.replaced):
                values["status"] = DeviceStatus.active  # its events below bring it to its present status
            try:
                row = services.add_device(session=session, device=DeviceIn(**values), author=d.author or author, today=today)
            except InputError as exc:
                problems += _prefixed(exc.problems, f"$.devices[{i}]")
                unchecked_serials.add(d.serial)
                continue
            if d.recorded_at is not None:
                row.recorded_at = d.recorded_at
            device_rows[i] = row
            continue
        e = events[i]
        if e.device_serial in unchecked_serials:
            skipped += 1
            continue
        event = _event_in(e)
        device, found = services.check_event(session=session, event=event, today=today, lookups=lookups)
        if found:
            problems += _prefixed(found, f"$.events[{i}]")
            continue
        # An explant or lead removal ends the device's service, as when it is recorded by hand,
        # so a later refill on it is refused.  (The audit entry is written below, for the final rows.)
        services._apply_to_device(session, device, event)
        checked[i] = (device.id, event)

    # Amendments and voids, in the order they were recorded: the checks of services.amend_event
    # and void_event (a reason; the same kind; the event's own checks but the device's status).
    amendments = sorted(
        (i for i, e in events.items() if e.amends is not None),
        key=lambda i: (_instant(events[i].recorded_at), i),
    )
    for i in amendments:
        e = events[i]
        target = ref_index.get(e.amends)
        tick(1)
        if target is None or target not in checked:
            skipped += target is not None or e.amends in refused_refs  # the original was refused and reported
            continue
        device_id, original = checked[target]
        where = f"$.events[{i}]"
        if e.device_serial != original.device_serial:
            problems.append(Problem(f"{where}.device_serial", e.device_serial, f"the amended event is on device {original.device_serial!r}"))
            continue
        if not (e.amendment_reason or "").strip():
            what = "say why the entry is void" if e.voided else "an amendment must say why"
            problems.append(Problem(f"{where}.amendment_reason", e.amendment_reason, what))
            continue
        if e.data.kind != original.data.kind:
            problems.append(Problem(f"{where}.data.kind", e.data.kind, f"the amended event is a {original.data.kind}"))
            continue
        if e.voided:
            event = original  # a void keeps the original's date and values (services.void_event)
        else:
            event = _event_in(e)
            _, found = services.check_event(session=session, event=event, today=today, lookups=lookups)
            found = [p for p in found if p.field != "device_serial"]  # a since-explanted device may be amended
            if found:
                problems += _prefixed(found, where)
                continue
        checked[i] = (device_id, event)

    # 5. Each device's present status: its events decide explanted/replaced; the document may
    #    say explanted or replaced without such an event (recorded so when it was added).
    for i, row in device_rows.items():
        wanted = devices[i].status.value
        if wanted != row.status:
            if row.status in (DeviceStatus.explanted.value, DeviceStatus.replaced.value):
                problems.append(
                    Problem(f"$.devices[{i}].status", wanted, f"contradicts the device's record, which makes it {row.status}")
                )
                continue
            row.status = wanted
            session.add(row)

    if problems:
        if skipped:
            problems.append(
                Problem("$", None, f"{skipped} more items were not checked because the patient, device or event they depend on was refused")
            )
        raise InputError(problems)

    session.flush()
    event_ids = _insert_events(session, events, checked, amendments, ref_index)
    changes += [("device", r) for r in device_rows.values()]
    _audit(session, audit_action, author, changes, event_ids)
    # The due table, in this same transaction: every device added or given events.
    if added_catalogue:
        forecasts.catalogue_added(session, catalogue_before)
    touched = {r.id for r in device_rows.values()} | {device_id for device_id, _ in checked.values()}
    touched |= session.info.pop(forecasts.DEFER_KEY, set())  # devices the use cases above changed
    forecasts.refresh_devices(session, touched)
    return ImportSummary(len(patient_rows), len(device_rows), len(event_ids), added_catalogue)


def _raw_keys(raw: dict, section: str, key: str, valid: dict) -> set[str]:
    """The MRNs / serials / refs of a section's items that failed validation (others depend on them)."""
    return {
        item[key]
        for j, item in enumerate(raw.get(section, []))
        if j not in valid and isinstance(item, dict) and isinstance(item.get(key), str)
    }


_FAR = dt.datetime.max.replace(tzinfo=dt.timezone.utc)


def _instant(value: dt.datetime | None) -> dt.datetime:
    return _FAR if value is None else value.astimezone(dt.timezone.utc)


def _event_in(e: DocEvent) -> EventIn:
    return EventIn.model_construct(device_serial=e.device_serial, occurred_on=e.occurred_on, author=e.author, data=e.data)


def _add_catalogue(session: Session, catalogue: DocCatalogue, problems: list[Problem], changes: list) -> int:
    added = 0
    for name, items, row_type, model in (
        ("device_models", catalogue.device_models, tables.DeviceModelRow, DeviceModel),
        ("drugs", catalogue.drugs, tables.DrugRow, Drug),
    ):
        seen = {}
        for i, entry in enumerate(items):
            where = f"$.catalogue.{name}[{i}]"
            if entry.code in seen:
                problems.append(Problem(f"{where}.code", entry.code, f"is also the code of $.catalogue.{name}[{seen[entry.code]}]"))
                continue
            seen[entry.code] = i
            existing = session.get(row_type, entry.code)
            if existing is not None:
                if model.model_validate(existing.model_dump()) != entry:
                    problems.append(
                        Problem(f"{where}.code", entry.code, "is already in the catalogue with other values; give it a new code")
                    )
                continue
            row = row_type(**entry.model_dump(mode="json"))
            session.add(row)
            changes.append((row_type.__tablename__, row))
            added += 1
    session.flush()
    return added


def _insert_events(session: Session, events: dict, checked: dict, amendments: list[int], ref_index: dict) -> list[tuple[int, dict]]:
    """Insert the checked events (originals in clinical order, then amendments in recorded order)."""
    E = tables.EventRow.__table__
    now = tables.utcnow()
    conn = session.connection()
    inserted: list[tuple[int, dict]] = []
    id_of: dict[int, int] = {}
    originals = [i for i in checked if events[i].amends is None]
    for group in (originals, [i for i in amendments if i in checked]):
        rows = []
        for i in group:
            device_id, event = checked[i]
            e = events[i]
            rows.append(
                {
                    "device_id": device_id,
                    "kind": event.data.kind,
                    "occurred_on": event.occurred_on,
                    "author": e.author,
                    "recorded_at": e.recorded_at.astimezone(dt.timezone.utc) if e.recorded_at else now,
                    "data": event.data.model_dump(mode="json"),
                    "amends_id": id_of[ref_index[e.amends]] if e.amends is not None else None,
                    "amendment_reason": e.amendment_reason.strip() if e.amends is not None else None,
                    "voided": e.voided,
                }
            )
        for start in range(0, len(rows), 10_000):
            chunk = rows[start : start + 10_000]
            ids = conn.execute(E.insert().returning(E.c.id, sort_by_parameter_order=True), chunk).scalars().all()
            for i, new_id, row in zip(group[start : start + 10_000], ids, chunk):
                id_of[i] = new_id
                inserted.append((new_id, row))
    return inserted


def _audit(session: Session, action: str, author: str, changes: list[tuple[str, Any]], event_rows) -> None:
    from devicelog.store import audit

    found = [
        audit.Change(table, row.code if table in ("drug", "device_model") else row.id, None, audit.row_values(row))
        for table, row in changes
    ]
    found += [audit.Change("event", new_id, None, audit.row_values({"id": new_id, **row})) for new_id, row in event_rows]
    audit.append(session, action=action, author=author, changes=found)


def import_text(engine: Engine, text: str, *, author: str, today: dt.date, source: str = "the file", tick=_noop) -> ImportSummary:
    """Parse and import a document in one transaction (nothing is written on any refusal)."""
    from devicelog.store.db import write_session

    raw = parse_text(text, source)
    with write_session(engine) as session:
        return import_document(session, raw, author=author, today=today, tick=tick)


def count_items(raw: Any) -> int:
    """How many ticks :func:`import_document` will report for a parsed document."""
    if not isinstance(raw, dict):
        return 0
    n = sum(len(raw.get(k) or []) for k in ("patients", "devices", "events") if isinstance(raw.get(k), list))
    return 2 * n


# --------------------------------------------------------------------------- export


def _utc(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _drop_none(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def export_parts(session: Session) -> tuple[dict, list[dict], list[dict], list[dict]]:
    """(catalogue, patients, devices, events) of the whole database, in a content-defined order."""
    shipped = shipped_catalogue()
    shipped_models = {m.code: m for m in shipped.device_models}
    shipped_drugs = {d.code: d for d in shipped.drugs}
    cat = queries.catalogue(session)
    catalogue = {
        "device_models": [
            m.model_dump(mode="json") for m in sorted(cat.device_models, key=lambda m: m.code) if shipped_models.get(m.code) != m
        ],
        "drugs": [d.model_dump(mode="json") for d in sorted(cat.drugs, key=lambda d: d.code) if shipped_drugs.get(d.code) != d],
    }

    P, D, E = tables.Patient.__table__, tables.Device.__table__, tables.EventRow.__table__
    mrn_of: dict[int, str] = {}
    patients = []
    for r in session.execute(select(P).order_by(P.c.mrn)):
        mrn_of[r.id] = r.mrn
        patients.append(
            _drop_none(
                {
                    "mrn": r.mrn,
                    "name": r.name,
                    "birth_date": r.birth_date.isoformat(),
                    "goals_of_care": r.goals_of_care,
                    "status": r.status,
                    "died_on": r.died_on.isoformat() if r.died_on else None,
                    "author": r.author or None,
                    "recorded_at": _utc(r.recorded_at),
                }
            )
        )

    rows = list(session.execute(select(D)))
    serial_of = {r.id: r.serial for r in rows}
    replaces = {r.replaced_by_id: r.serial for r in rows if r.replaced_by_id is not None}
    devices = []
    for r in sorted(rows, key=lambda r: (mrn_of[r.patient_id], r.implanted_on, r.serial)):
        udi = None
        if r.udi_raw:
            udi = _drop_none(
                {
                    "raw": r.udi_raw,
                    "device_identifier": r.udi_di,
                    "lot": r.udi_lot,
                    "serial": r.udi_serial,
                    "expiry": r.udi_expiry.isoformat() if r.udi_expiry else None,
                    "manufactured": r.udi_manufactured.isoformat() if r.udi_manufactured else None,
                }
            )
        devices.append(
            _drop_none(
                {
                    "patient_mrn": mrn_of[r.patient_id],
                    "model": r.model_code,
                    "serial": r.serial,
                    "implanted_on": r.implanted_on.isoformat(),
                    "implant_type": r.implant_type,
                    "site": r.site,
                    "status": r.status,
                    "udi": udi,
                    "replaces_serial": replaces.get(r.id),
                    "recharge_interval_days": r.recharge_interval_days,
                    "author": r.author or None,
                    "recorded_at": _utc(r.recorded_at),
                }
            )
        )

    event_rows = list(
        session.execute(
            select(E.c.id, E.c.device_id, E.c.occurred_on, E.c.author, E.c.recorded_at, E.c.data, E.c.amends_id, E.c.amendment_reason, E.c.voided)
        )
    )

    def key(r):
        return (
            _utc(r.recorded_at),
            serial_of[r.device_id],
            r.occurred_on,
            r.amends_id is not None,
            json.dumps(r.data, sort_keys=True),
            r.id,
        )

    event_rows.sort(key=key)
    ref_of = {r.id: f"e{n}" for n, r in enumerate(event_rows, start=1)}
    events = []
    for r in event_rows:
        item = {
            "ref": ref_of[r.id],
            "device_serial": serial_of[r.device_id],
            "occurred_on": r.occurred_on.isoformat(),
            "author": r.author,
            "recorded_at": _utc(r.recorded_at),
            "data": r.data,
        }
        if r.amends_id is not None:
            item["amends"] = ref_of[r.amends_id]
            item["amendment_reason"] = r.amendment_reason
            if r.voided:
                item["voided"] = True
        events.append(item)
    return catalogue, patients, devices, events


def write_document(session: Session, out: IO[str], tick=_noop) -> int:
    """Write the whole database as a document to ``out``: one item per line; returns the item count."""
    catalogue, patients, devices, events = export_parts(session)
    dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=False, separators=(", ", ": ")).encode
    out.write('{"format": "devicelog", "version": 1,\n')
    out.write(f'"catalogue": {dumps(catalogue)},\n')
    for name, items, last in (("patients", patients, False), ("devices", devices, False), ("events", events, True)):
        out.write(f'"{name}": [')
        for n, item in enumerate(items):
            out.write("\n" if n == 0 else ",\n")
            out.write(dumps(item))
            tick(1)
        out.write("\n]" if items else "]")
        out.write("\n}\n" if last else ",\n")
    return len(patients) + len(devices) + len(events)


def export_text(engine: Engine) -> str:
    import io

    from devicelog.store.db import read_session

    buffer = io.StringIO()
    with read_session(engine) as session:
        write_document(session, buffer)
    return buffer.getvalue()


def holds_clinical_data(session: Session) -> bool:
    """True when the database has any patient, device or event."""
    for t in (tables.Patient, tables.Device, tables.EventRow):
        if session.execute(select(func.count()).select_from(t.__table__)).scalar():
            return True
    return False
