"""The maintained next-due table: every device's forecast, stored (issue 8.2).

Why
---
A device's forecast depends only on its record (``devicelog.clinic.due``), never on
today's date, so it can be computed when the record changes instead of every time a
list is read.  With 100,000 patients (≈ 137,000 devices, 3.6 M events) computing
every forecast takes minutes; reading the stored items due in the next 30 days is one
indexed query.

What is stored
--------------
* ``due_item``: one row per item of ``Forecast.items`` (``suppressed_reason`` NULL) and
  per item rule 24 suppressed (``suppressed_reason`` its reason), in the forecast's
  order (``seq``), with the patient's MRN and name and the device's serial, model label
  and kind copied in, so a due list is rendered without a join.  Indexed on
  ``(suppressed_reason, due_on)`` (the clinic's overdue warnings), ``(severity,
  due_on)`` (its critical warnings, whatever their date) and ``device_id`` (replacing
  a device's rows, one device's forecast, the most urgent item of the patients on a
  screen).  The due list itself reads the table in one pass (:func:`read_range`).
* ``device_note``: the forecast's warnings per device (``Forecast.warnings``), with the
  same copied names, so a list never drops them.
* ``forecast_cache``: one row saying what the rows were computed with: the settings
  (their JSON, kept so a write can refresh a device with the *same* settings as every
  other row), and three hashes: of the settings that change a forecast, of the
  forecast code (:data:`FORECAST_VERSION`), and of the catalogue rows.

It is a derived cache, not a clinical record: a device's rows are replaced when its
record changes; they are not append-only and not audited
(``store.audit.AUDITED_TABLES``).  ``devicelog verify`` and ``restore`` recompute it
from the records and name every device whose stored rows differ
(:func:`table_problems`).

When it is written
------------------
* In the same transaction as every write that can change a forecast:
  ``services.record_event`` / ``amend_event`` / ``void_event`` / ``add_device`` (the
  new device and the one it replaces), ``transfer.import_document`` and the demo's bulk
  build (computed in batches after the rows are inserted), and the safety-notice writes
  of ``store.advisories`` (an import refreshes every device it matched, an
  acknowledgement its device: their due items come from ``advisory_match`` and
  ``advisory_action``) — :func:`refresh_devices`.
  A write uses the cache's own settings, so the table stays one consistent forecast.
* Whole, when it is stale: ``store.schema.prepare(engine, settings=...)`` (every
  command opening the database) compares the fingerprint of its settings, the code
  and the catalogue with the stored one and, if they differ (or the table was never
  filled, as right after migration 0003), rebuilds every device's rows in one
  transaction, in batches, with a progress bar on a terminal (:func:`ensure_fresh`).
  Adding catalogue entries (the shipped ones on upgrade, or an import's) cannot change
  an existing device's forecast, so it only re-stamps the catalogue hash.

Reading
-------
``store.due.due_list`` (and ``most_urgent``, ``clinic_warnings``, ``device_forecast``)
read the table when :func:`is_fresh` says it was computed with the reader's settings,
code and catalogue; otherwise (a read-only database that could not be rebuilt, a
caller with other settings) they compute on the fly (``store.due.ComputedForecasts``,
the reference implementation the tests compare the table with).

This module imports no sqlmodel at import time: the tables are SQLAlchemy Core, so
``devicelog due`` starts without paying for the ORM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable, Iterator

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    select,
    text,
    type_coerce,
)

#: The longest range a due list is read over (days after its as-of date).  Here, not in
#: ``store.due``, so that ``devicelog due --within`` checks it without importing the
#: forecast vocabulary (``store.due`` re-exports it).
MAX_WITHIN_DAYS = 3660
#: The forecast's version, bumped by hand whenever what it stores for a record changes
#: (a rule, a due item's wording, the history loader, :func:`rows_for`): a stored table
#: computed by another version is rebuilt on the next open.  A docstring edit changes
#: nothing.  ``tests/test_forecast_version.py`` fails when the demo clinic's forecast
#: changes while this number did not.
FORECAST_VERSION = 5
#: Devices whose histories are loaded at once (their validated events are the memory
#: a rebuild holds: about 50 MB per 500 devices of the demo clinic).
BATCH_DEVICES = 500
#: Settings that change only how a list is shown or when an item counts as "due",
#: never a stored due date; changing them does not rebuild the table.
DISPLAY_ONLY_SETTINGS = frozenset(
    {"clinic_name", "lead_time_days", "calendar_reminder_days", "print_command", "page_size", "due_pdf_max_pages"}
)
_PG_LOCK_KEY = 0x6465_7666  # "devf"
#: ``session.info`` key: while it holds a set, :func:`refresh_devices` only collects the
#: device ids (a bulk writer such as the importer refreshes them all at its end).
DEFER_KEY = "devicelog_defer_forecasts"

metadata = MetaData()

due_item = Table(
    "due_item",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("device_id", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("patient_id", Integer, nullable=False),
    Column("patient_mrn", Text, nullable=False),
    Column("patient_name", Text, nullable=False),
    Column("device_serial", Text, nullable=False),
    Column("device_model", Text, nullable=False),
    Column("device_kind", String(40), nullable=False),
    Column("what", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("latest_safe_on", Date, nullable=True),
    Column("severity", String(10), nullable=False),
    Column("rule", Text, nullable=False),
    Column("why", Text, nullable=False),
    Column("source_event_id", Integer, nullable=True),
    Column("elective", Boolean, nullable=False),
    Column("suppressed_reason", Text, nullable=True),
    Index("ix_due_item_listed", "suppressed_reason", "due_on"),
    Index("ix_due_item_severity", "severity", "due_on"),
    Index("ix_due_item_device", "device_id"),
)

device_note = Table(
    "device_note",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("device_id", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("patient_mrn", Text, nullable=False),
    Column("patient_name", Text, nullable=False),
    Column("device_serial", Text, nullable=False),
    Column("device_model", Text, nullable=False),
    Column("device_kind", String(40), nullable=False),
    Column("level", String(10), nullable=False),
    Column("code", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_device_note_device", "device_id"),
)

forecast_cache = Table(
    "forecast_cache",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("settings_json", Text, nullable=False),
    Column("settings_hash", String(64), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("catalogue_hash", String(64), nullable=False),
    Column("built_at", Text, nullable=False),
)

#: The item columns in ``DueItem``'s field order.
ITEM_COLUMNS = (
    "patient_id",
    "patient_mrn",
    "patient_name",
    "device_id",
    "device_serial",
    "device_model",
    "device_kind",
    "what",
    "code",
    "due_on",
    "latest_safe_on",
    "severity",
    "rule",
    "why",
    "source_event_id",
    "elective",
)


# --------------------------------------------------------------------- the fingerprint


def forecast_settings(settings) -> dict[str, Any]:
    """The settings that can change a stored due item, as JSON values."""
    return settings.model_dump(mode="json", exclude=set(DISPLAY_ONLY_SETTINGS))


def settings_hash(settings) -> str:
    return _sha(json.dumps(forecast_settings(settings), sort_keys=True, separators=(",", ":")))


def code_hash() -> str:
    """The forecast code, as :data:`FORECAST_VERSION` names it."""
    return _sha(f"devicelog forecast v{FORECAST_VERSION}")


_CATALOGUE_SQL = (
    "SELECT code, maker, model, kind, power, reservoir_ml, low_alarm_ml, constant_flow, battery_life_years, "
    "eri_to_eos_days, planned_replacement_months, lead_removal_day, mr_status FROM device_model ORDER BY code",
    "SELECT code, name, display_unit, stability_days, max_concentration_mg_per_ml, max_dose_mg_per_day, "
    "caution_dose_mg_per_day, is_ziconotide, is_opioid, labelled_concentrations_mg_per_ml, limits, boxed_warning "
    "FROM drug ORDER BY code",
)


def catalogue_hash(conn) -> str:
    """The catalogue rows the forecast reads (booleans as 0/1, so SQLite and PostgreSQL agree)."""
    h = hashlib.sha256()
    for sql in _CATALOGUE_SQL:
        for row in conn.execute(text(sql)):
            values = [float(v) if isinstance(v, (bool, int, float)) else v for v in row]
            h.update(json.dumps(values, separators=(",", ":")).encode())
        h.update(b"|")
    return h.hexdigest()


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class CacheState:
    """The ``forecast_cache`` row: what the stored rows were computed with."""

    settings_json: str
    settings_hash: str
    code_hash: str
    catalogue_hash: str
    built_at: str

    def settings(self):
        from devicelog.settings import Settings

        return Settings.model_validate_json(self.settings_json)


def cache_state(conn) -> CacheState | None:
    """The stored fingerprint, or None when the table was never filled (or does not exist yet)."""
    c = forecast_cache.c
    row = conn.execute(
        select(c.settings_json, c.settings_hash, c.code_hash, c.catalogue_hash, c.built_at).where(c.id == 1)
    ).first()
    return None if row is None else CacheState(*row)


def staleness(conn, settings=None) -> str | None:
    """Why the stored rows cannot be read for ``settings`` (None: they can).

    With ``settings`` None, only whether the rows match the code and catalogue they
    were computed with, whatever their settings.
    """
    state = cache_state(conn)
    if state is None:
        return "the due table was never filled"
    if settings is not None and state.settings_hash != settings_hash(settings):
        return "the clinic settings changed"
    if state.code_hash != code_hash():
        return "devicelog's forecast changed"
    if state.catalogue_hash != catalogue_hash(conn):
        return "the catalogue changed"
    return None


def is_fresh(conn, settings) -> bool:
    """The stored rows are what the forecast gives with these settings, code and catalogue."""
    return staleness(conn, settings) is None


# --------------------------------------------------------------------- writing


def rows_for(history, forecast) -> tuple[list[dict], list[dict]]:
    """(due_item rows, device_note rows) of one device's forecast."""
    p, d = history.patient, history.device
    items = [(i, None) for i in forecast.items] + [(s.item, s.reason) for s in forecast.suppressed]
    item_rows = [
        {
            "device_id": d.id,
            "seq": seq,
            "patient_id": i.patient_id,
            "patient_mrn": i.patient_mrn,
            "patient_name": i.patient_name,
            "device_serial": i.device_serial,
            "device_model": i.device_model,
            "device_kind": i.device_kind.value,
            "what": i.what,
            "code": i.code,
            "due_on": i.due_on,
            "latest_safe_on": i.latest_safe_on,
            "severity": i.severity,
            "rule": i.rule,
            "why": i.why,
            "source_event_id": i.source_event_id,
            "elective": bool(i.elective),
            "suppressed_reason": reason,
        }
        for seq, (i, reason) in enumerate(items)
    ]
    note_rows = [
        {
            "device_id": d.id,
            "seq": seq,
            "patient_mrn": p.mrn,
            "patient_name": p.name,
            "device_serial": d.serial,
            "device_model": d.model.label,
            "device_kind": d.model.kind.value,
            "level": w.level,
            "code": w.code,
            "rule": w.rule,
            "message": w.message,
        }
        for seq, w in enumerate(forecast.warnings)
    ]
    return item_rows, note_rows


def _orm_session(session):
    """A sqlmodel Session over ``session`` (a Session already, or a Connection)."""
    if hasattr(session, "exec"):
        return session
    from sqlmodel import Session

    return Session(bind=session)


def _compute(session, device_ids: list[int], settings, drugs) -> Iterator[tuple[Any, Any]]:
    from devicelog.clinic.forecast import forecast_device
    from devicelog.store import queries

    orm = _orm_session(session)
    for start in range(0, len(device_ids), BATCH_DEVICES):
        for history in queries.load_histories(orm, device_ids[start : start + BATCH_DEVICES]):
            yield history, forecast_device(history, settings, drugs)


def _replace(session, device_ids: list[int], computed: Iterable[tuple[Any, Any]], tick: Callable[[int], None]) -> None:
    for start in range(0, len(device_ids), 500):
        chunk = device_ids[start : start + 500]
        session.execute(delete(due_item).where(due_item.c.device_id.in_(chunk)))
        session.execute(delete(device_note).where(device_note.c.device_id.in_(chunk)))
    items: list[dict] = []
    notes: list[dict] = []

    def flush() -> None:
        if items:
            session.execute(due_item.insert(), items)
            items.clear()
        if notes:
            session.execute(device_note.insert(), notes)
            notes.clear()

    for n, (history, forecast) in enumerate(computed, start=1):
        i, w = rows_for(history, forecast)
        items += i
        notes += w
        if n % BATCH_DEVICES == 0:
            flush()
            tick(BATCH_DEVICES)
    flush()
    tick(len(device_ids) % BATCH_DEVICES)


def refresh_devices(session, device_ids: Iterable[int], *, tick: Callable[[int], None] = lambda n: None) -> None:
    """Recompute these devices' rows, in the caller's transaction, with the cache's settings.

    Does nothing while the table was never filled (the next open fills it whole).
    """
    ids = sorted({int(i) for i in device_ids if i is not None})
    if not ids:
        return
    deferred = session.info.get(DEFER_KEY)
    if deferred is not None:
        deferred.update(ids)
        return
    state = cache_state(session)
    if state is None:
        return
    from devicelog.store import queries

    drugs = queries.drugs_by_code(_orm_session(session))
    _replace(session, ids, _compute(session, ids, state.settings(), drugs), tick)


def catalogue_added(session, hash_before: str) -> None:
    """Record the catalogue as it now is, after entries were *added* to it: that cannot
    change an existing device's forecast (new devices are computed as they are written).

    Only when the rows were in step with the catalogue before (``hash_before``), so a
    catalogue changed some other way still makes the table stale.
    """
    state = cache_state(session)
    if state is not None and state.catalogue_hash == hash_before:
        session.execute(
            forecast_cache.update().where(forecast_cache.c.id == 1).values(catalogue_hash=catalogue_hash(session))
        )


def rebuild(session, settings, *, tick: Callable[[int], None] = lambda n: None) -> int:
    """Replace the whole table with every device's forecast under ``settings``; returns the device count."""
    from devicelog.store import queries

    session.execute(delete(due_item))
    session.execute(delete(device_note))
    session.execute(delete(forecast_cache))
    session.execute(
        forecast_cache.insert().values(
            id=1,
            settings_json=settings.model_dump_json(),
            settings_hash=settings_hash(settings),
            code_hash=code_hash(),
            catalogue_hash=catalogue_hash(session),
            built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
    )
    ids = [r[0] for r in session.execute(text("SELECT id FROM device ORDER BY id"))]
    drugs = queries.drugs_by_code(_orm_session(session))
    _replace(session, ids, _compute(session, ids, settings, drugs), tick)
    return len(ids)


def ensure_fresh(engine, settings=None, *, show_progress: bool = True) -> str:
    """Rebuild the table when it is stale for ``settings`` (None: for its own settings).

    Returns "fresh" (nothing to do), "rebuilt", or "stale" when it could not be
    written (a read-only file, a locked database, rows the forecast cannot read):
    readers then compute on the fly, and meet any such error themselves.
    """
    from sqlalchemy.exc import OperationalError

    with engine.connect() as conn:
        if staleness(conn, settings) is None:
            return "fresh"
    try:
        with engine.execution_options(devicelog_write=True).begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            why = staleness(conn, settings)  # again, under the write lock
            if why is None:
                return "fresh"
            if settings is None:
                state = cache_state(conn)
                if state is not None:
                    settings = state.settings()
                else:
                    from devicelog.settings import Settings

                    settings = Settings()
            total = conn.execute(text("SELECT count(*) FROM device")).scalar() or 0
            if show_progress and total > BATCH_DEVICES:
                from devicelog.progress import progress

                with progress(total, f"Updating the due list ({why})") as tick:
                    rebuild(conn, settings, tick=tick)
            else:
                rebuild(conn, settings)
        return "rebuilt"
    except (OperationalError, ValueError):  # ValueError: a pydantic ValidationError of a bad row
        return "stale"


# --------------------------------------------------------------------- reading


def _item_select(columns=ITEM_COLUMNS, *, raw_dates: bool = False):
    """``select`` of ``columns``; with ``raw_dates`` the dates come as the driver gives
    them (ISO text from SQLite, ``date`` from PostgreSQL), for a caller that converts
    them itself in the loop it runs anyway (``as_date``): SQLAlchemy's own conversion
    cost a third of reading a 60,000-item list."""
    cols = [due_item.c[name] for name in columns]
    if raw_dates:
        cols = [type_coerce(c, String).label(c.name) if isinstance(c.type, Date) else c for c in cols]
    return select(*cols)


def as_date(value) -> dt.date | None:
    """A date from a ``raw_dates`` column (ISO text, a ``date``, or NULL)."""
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


def _filtered(query, table, kinds: Collection[str], device_ids: list[int] | None):
    if kinds:
        query = query.where(table.c.device_kind.in_(sorted(kinds)))
    if device_ids is not None:
        query = query.where(table.c.device_id.in_(bindparam("ids", expanding=True)))
    return query


def _run(session, query, device_ids: list[int] | None, params: dict | None = None) -> list:
    params = dict(params or {})
    if device_ids is None:
        return session.execute(query, params).all()
    rows: list = []
    for start in range(0, len(device_ids), 500):
        rows += session.execute(query, {**params, "ids": device_ids[start : start + 500]}).all()
    return rows


def read_range(
    session,
    *,
    until: dt.date | None,
    kinds: Collection[str] = (),
    device_ids: Collection[int] | None = None,
) -> Iterable:
    """Rows (``ITEM_COLUMNS`` + ``suppressed_reason``, dates as :func:`as_date` reads
    them) of every item due by ``until``, listed and suppressed alike (the caller splits
    them on the last column).

    Why one pass and no index: the range is every overdue item plus the weeks ahead,
    about 30 % of the table at 100,000 patients (63,000 of 218,000 rows for 30 days).
    Reading the table once costs less than walking an index and fetching each of those
    rows from a different page (two index walks, listed then suppressed, took 0.55 s
    where one scan takes 0.35 s; found by bench/).  For a few devices the planner takes
    ``ix_due_item_device`` (no other index starts with a column this query tests).

    Without ``device_ids`` the rows come as the cursor yields them (an iterable, to be
    read before the session is used again): a whole list at 100,000 patients is
    218,000 rows, ~300 MB as one list of rows beside the items made from them.
    """
    c = due_item.c
    ids = None if device_ids is None else sorted(set(device_ids))
    query = _item_select(ITEM_COLUMNS + ("suppressed_reason",), raw_dates=True)
    if until is not None:
        query = query.where(c.due_on <= until)
    query = _filtered(query, due_item, kinds, ids)
    if ids is None:
        return session.execute(query)
    return _run(session, query, ids)


def read_warnings(session, *, as_of: dt.date, limit: int) -> tuple[list, int]:
    """(rows of the first ``limit`` listed items that are critical, whatever their date,
    or overdue on ``as_of``: critical first, then by due date; how many there are in all).

    The clinic's warnings open the TUI, so they are counted and cut in SQL, in two parts
    that each walk an index in order: the critical items (``ix_due_item_severity``) and
    the other overdue ones (``ix_due_item_listed``).  At 100,000 patients about 20,000
    items qualify; reading them all to show 200 took 0.4 s.  The order here only decides
    where the list is cut; rows tied with the last one kept (same group, same date) are
    all returned, so the caller's full sort (``store.due.warnings_key``) decides
    between them.
    """
    c = due_item.c
    listed = c.suppressed_reason.is_(None)
    critical = and_(listed, c.severity == "critical")
    other_overdue = and_(listed, c.due_on < as_of, c.severity != "critical")

    def count(where) -> int:
        return session.execute(select(func.count()).select_from(due_item).where(where)).scalar_one()

    # The other overdue items are counted as (every listed overdue item) - (the critical
    # ones): both counts are read from an index alone, where testing the severity of
    # each of ~18,000 overdue rows took 30 ms.
    n_critical = count(critical)
    n_other = count(and_(listed, c.due_on < as_of)) - count(and_(critical, c.due_on < as_of))
    rows: list = []
    for where, n in ((critical, n_critical), (other_overdue, n_other)):
        room = limit - len(rows)
        if room <= 0 or not n:
            continue
        query = _item_select().where(where)
        if n > room:
            last = session.execute(select(c.due_on).where(where).order_by(c.due_on).offset(room - 1).limit(1)).scalar_one()
            query = query.where(c.due_on <= last)
        rows += session.execute(query).all()
    return rows, n_critical + n_other


def read_notes(session, *, kinds: Collection[str] = (), device_ids: Collection[int] | None = None) -> list:
    """Rows (mrn, name, serial, model, level, code, rule, message) in device and forecast order."""
    c = device_note.c
    query = select(c.patient_name, c.patient_mrn, c.device_serial, c.device_model, c.level, c.code, c.rule, c.message)
    ids = None if device_ids is None else sorted(set(device_ids))
    query = _filtered(query, device_note, kinds, ids).order_by(c.device_id, c.seq)
    return _run(session, query, ids)


def read_device(session, device_id: int) -> tuple[list[tuple], list[tuple]]:
    """(item rows with reason, in forecast order; note rows) of one device."""
    c = due_item.c
    items = list(
        session.execute(_item_select(ITEM_COLUMNS + ("suppressed_reason",)).where(c.device_id == device_id).order_by(c.seq))
    )
    n = device_note.c
    notes = list(
        session.execute(select(n.level, n.code, n.rule, n.message).where(n.device_id == device_id).order_by(n.seq))
    )
    return items, notes


# --------------------------------------------------------------------- checking (devicelog verify)


def table_problems(conn, tick: Callable[[int], None] = lambda n: None) -> list[tuple[str, str]]:
    """Where the stored table differs from the forecast recomputed from the records
    (issue 15, section 4): (device serial, what differs).  Empty when it matches.

    The table is a derived cache, not audited, so someone with write access to the
    file could delete overdue rows or move a refill to 2030 and every list would
    repeat it; ``devicelog verify`` and ``restore`` call this to catch that.  Each
    device is recomputed with the settings the table says it was built with; a table
    that is stale or was never filled is rebuilt on the next open instead, so it is
    reported as that and not compared.  Time: one forecast of every device (as a
    rebuild), in batches of :data:`BATCH_DEVICES`."""
    from devicelog.store import queries

    why = staleness(conn)
    if why is not None:
        return [] if cache_state(conn) is None else [("due table", f"stale ({why}): it is rebuilt on the next open")]
    state = cache_state(conn)
    settings = state.settings()
    orm = _orm_session(conn)
    drugs = queries.drugs_by_code(orm)
    ids = [r[0] for r in conn.execute(text("SELECT id FROM device ORDER BY id"))]
    item_cols = [c for c in due_item.c if c.name != "id"]
    note_cols = [c for c in device_note.c if c.name != "id"]
    found: list[tuple[str, str]] = []
    listed = {r[0] for r in conn.execute(select(due_item.c.device_id).distinct())}
    listed |= {r[0] for r in conn.execute(select(device_note.c.device_id).distinct())}
    for start in range(0, len(ids), BATCH_DEVICES):
        chunk = ids[start : start + BATCH_DEVICES]
        stored_items = _stored_by_device(conn, due_item, item_cols, chunk)
        stored_notes = _stored_by_device(conn, device_note, note_cols, chunk)
        for history, forecast in _compute_each(conn, chunk, settings, drugs, found):
            items, notes = rows_for(history, forecast)
            device_id, serial = history.device.id, history.device.serial
            for label, rows, stored, cols in (
                ("due item", items, stored_items.get(device_id, []), item_cols),
                ("forecast note", notes, stored_notes.get(device_id, []), note_cols),
            ):
                expected = [tuple(r[c.name] for c in cols) for r in rows]
                if expected != stored:
                    found.append((serial, _first_difference(label, [c.name for c in cols], expected, stored)))
        tick(len(chunk))
    for device_id in sorted(listed - set(ids)):
        found.append((f"device {device_id}", "stored due items for a device that does not exist"))
    return found


def _compute_each(conn, device_ids: list[int], settings, drugs, found: list) -> Iterator[tuple[Any, Any]]:
    """:func:`_compute` for a batch; when a record cannot be read (a row changed outside
    devicelog so that it no longer validates), one device at a time, naming each such
    device in ``found`` instead of failing the whole check."""
    try:
        yield from list(_compute(conn, device_ids, settings, drugs))
        return
    except Exception:  # noqa: BLE001 - located below, device by device
        pass
    for device_id in device_ids:
        try:
            yield from list(_compute(conn, [device_id], settings, drugs))
        except Exception as exc:  # noqa: BLE001 - verify names it and goes on
            found.append((f"device {device_id}", f"its records cannot be read to recompute its forecast ({type(exc).__name__})"))


def _stored_by_device(conn, table, cols, device_ids: list[int]) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    query = select(*cols).where(table.c.device_id.in_(device_ids)).order_by(table.c.device_id, table.c.seq)
    for row in conn.execute(query):
        out.setdefault(row.device_id, []).append(tuple(row))
    return out


def _first_difference(label: str, names: list[str], expected: list[tuple], stored: list[tuple]) -> str:
    """The first thing a person would look at: a missing or extra row, or a changed field."""
    if len(expected) != len(stored):
        return f"{label}s: {len(stored)} stored, the records give {len(expected)} (rows added or deleted outside devicelog)"
    named_by = names.index("what" if "what" in names else "code")
    for want, have in zip(expected, stored):
        for name, a, b in zip(names, want, have):
            if a != b:
                return f"{label} {want[named_by]!r}: {name} stored {b!s}, the records give {a!s}"
    return f"{label}s differ"
