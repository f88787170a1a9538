"""The tamper-evident audit trail: who changed what, when, with the values before and after.

Design
------
Every write devicelog makes (a create, an amendment, a device's status change, an
import, the catalogue seeding, a migration's baseline) calls :func:`append` inside
its own transaction with the list of rows it changed.  One call appends **one audit
entry per action** (one row of the ``audit`` table), or, for a very large action such
as an import of millions of events, one entry per :data:`CHANGES_PER_ENTRY` changes,
so that no single row grows past what SQLite and PostgreSQL store comfortably.

An entry holds ``at`` (UTC instant), ``author``, ``action`` (what the person did, in
words) and ``payload``: canonical JSON (sorted keys, no spaces) of
``{"changes": [{"table", "id", "before", "after"}, ...]}`` where ``before``/``after``
are the row's values (:func:`row_values`; ``None`` for "did not exist" / "deleted").
Storing the values, not only a row hash, is what lets ``devicelog verify`` say *what*
changed in a row altered outside devicelog ("event 12: data.volume_added_ml 20.0 →
30.0"), at the price of the audit table holding a second copy of the clinical rows.

Entries are chained: ``hash = SHA-256(prev_hash, at, author, action, payload)`` and
``prev_hash`` is the hash of the entry before (:data:`GENESIS` for the first), unique,
so a fork (two writers chaining to the same entry) fails instead of passing silently.
Changing, inserting or deleting an entry in the middle breaks the chain; changing a
clinical row outside devicelog makes it differ from the values its last entry
recorded (:func:`replay` / :func:`check_rows`).  Limits, said plainly: someone who
can write the file can drop the triggers, rewrite rows *and* recompute every hash
after them, or delete the newest entries together with their rows; the chain shows
tampering by anyone who does not, and backups (``devicelog backup``) keep an older
head to compare with.

Cost: appending reads one row (the chain head) and JSON-encodes the changed values;
an import of 3,000,000 events costs about one extra JSON encoding and hash of the
same data, in ``ceil(n / CHANGES_PER_ENTRY)`` entries.  Concurrent writers are
serialised by the write lock: ``BEGIN IMMEDIATE`` on SQLite (``store.db``), a
transaction-scoped advisory lock on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import Boolean, Float, Integer, select, text

from devicelog.store import tables
from devicelog.store.chain import GENESIS, append_read, canonical, entry_hash, log_read  # noqa: F401  (the trail's API)
from devicelog.store.chain import head as _head
from devicelog.store.chain import lock_chain as _lock_chain
from devicelog.store.chain import plain as _plain

CHANGES_PER_ENTRY = 20_000
#: The tables whose rows the trail accounts for: clinical records and the catalogue.
AUDITED_TABLES = ("device_model", "drug", "patient", "device", "event", "advisory", "advisory_match", "advisory_action", "due_ack")


@dataclass(frozen=True)
class Change:
    """One row changed by an action: ``before`` None for a new row, ``after`` None for a removed one.

    ``row_id`` is the primary key: an ``int`` for clinical rows, the ``code`` for
    catalogue rows (``device_model``, ``drug``).
    """

    table: str
    row_id: int
    before: dict | None
    after: dict | None


# --------------------------------------------------------------------- values


def row_values(row) -> dict:
    """Canonical JSON-able values of a table row (ORM object or Core row) or a mapping.

    Dates become ISO strings, datetimes UTC ISO strings (a naive one is taken as UTC),
    enums their value, floats stay as they are; JSON columns are converted inside.
    """
    if isinstance(row, Mapping):
        items = row.items()
    elif hasattr(row, "__table__"):
        items = ((c.key, getattr(row, c.key)) for c in row.__table__.columns)
    elif hasattr(row, "_mapping"):
        items = row._mapping.items()
    else:
        raise TypeError(f"cannot read values from {type(row).__name__}")
    return {str(k): _plain(v) for k, v in items}


_COERCE: dict[str, dict[str, Any]] = {}


def _coercions(table: str) -> dict[str, Any]:
    """Column name -> type to coerce to, so that 30 and 30.0 in a REAL column hash alike."""
    if table not in _COERCE:
        found: dict[str, Any] = {}
        t = tables.SQLModel.metadata.tables.get(table)
        for col in t.columns if t is not None else ():
            if isinstance(col.type, Boolean):
                found[col.key] = bool
            elif isinstance(col.type, Float):
                found[col.key] = float
            elif isinstance(col.type, Integer):
                found[col.key] = int
        _COERCE[table] = found
    return _COERCE[table]


def typed(table: str, values: dict | None) -> dict | None:
    """``values`` with numbers and booleans in their column's type."""
    if values is None:
        return None
    casts = _coercions(table)
    out = dict(values)
    for key, cast in casts.items():
        v = out.get(key)
        if v is not None and not isinstance(v, cast) and isinstance(v, (int, float, bool)):
            out[key] = cast(v)
    return out


def digest(values: dict | None) -> str | None:
    return None if values is None else hashlib.sha256(canonical(values).encode()).hexdigest()


# --------------------------------------------------------------------- writing


def append(session, *, action: str, author: str, changes: list[Change]) -> None:
    """Append the audit entry (or entries, for a very large action) for these changes.

    Call it inside the action's own transaction (``write_session``), after ``flush``
    so new rows have their ids.  Refuses a change without an id or an author.
    """
    if not author:
        raise ValueError("an audit entry needs an author")
    if not changes:
        return
    records = []
    for c in changes:
        if c.row_id is None:
            raise ValueError(f"{c.table}: a change needs the row's id (flush first)")
        records.append(
            {"table": c.table, "id": c.row_id, "before": typed(c.table, c.before), "after": typed(c.table, c.after)}
        )
    _lock_chain(session)
    prev = _head(session)
    at = tables.utcnow()
    for start in range(0, len(records), CHANGES_PER_ENTRY):
        payload = canonical({"changes": records[start : start + CHANGES_PER_ENTRY]})
        h = entry_hash(prev, at, author, action, payload)
        session.execute(
            tables.AuditEntry.__table__.insert().values(
                at=at, author=author, action=action, payload=payload, prev_hash=prev, hash=h
            )
        )
        prev = h


def baseline(conn, *, action: str, author: str, table_names: Iterable[str] = AUDITED_TABLES) -> int:
    """Record every row of these tables as it stands (for a migration that starts the trail).

    Reads the tables as the database has them (reflection), so it works at the revision
    the migration runs at, whatever later revisions add.  Returns the number of rows.
    """
    from sqlalchemy import MetaData

    meta = MetaData()
    meta.reflect(conn, only=list(table_names))
    changes = []
    for name in table_names:
        t = meta.tables[name]
        key = list(t.primary_key.columns)[0]
        for row in conn.execute(select(t).order_by(key)):
            values = row_values(row)
            changes.append(Change(name, values[key.key], None, values))
    append(conn, action=action, author=author, changes=changes)
    return len(changes)


# --------------------------------------------------------------------- checking


@dataclass
class Finding:
    """One thing wrong, named: where (table and id) and what."""

    table: str
    row_id: Any
    what: str

    def __str__(self) -> str:
        return f"{self.table} {self.row_id}: {self.what}"


#: Clinical rows read (and compared with the trail) per query: a page of rows, its
#: recorded digests and its findings are all ``check_rows`` holds at once.
ROWS_PER_PAGE = 5000
#: Most payload bytes fetched per query when walking the chain on a server database
#: (an import's entry holds ~12 MB of JSON; SQLite steps through the entries one by one).
PAYLOAD_BYTES_PER_FETCH = 16 * 1024 * 1024

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _digest_bytes(values: dict | None) -> bytes | None:
    return None if values is None else hashlib.sha256(_CANONICAL(values).encode()).digest()


class Expected:
    """What the trail says each audited row should hold: (table, id) -> (entry id, digest
    of the values its latest change recorded, NULL for a row the trail removed).

    Kept in a scratch SQLite database on disk (``sqlite3.connect("")``: private, deleted
    when closed, with a 16 MB page cache), not in a dict: at 100,000 patients the trail
    accounts for ~3.8 million rows, which as Python tuples and strings held ~1.5 GB.
    ``check_rows`` then reads it a page of ids at a time beside the clinical rows.
    Call :meth:`close` (or use ``with``) when done; ``check_rows`` does.
    """

    def __init__(self) -> None:
        import sqlite3

        self.db = sqlite3.connect("")
        self.db.execute("PRAGMA cache_size = -16384")
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        self.db.execute(
            "CREATE TABLE expected (tbl TEXT NOT NULL, id NOT NULL, entry INTEGER NOT NULL, digest BLOB,"
            " PRIMARY KEY (tbl, id)) WITHOUT ROWID"
        )
        self.entries = 0
        self.head = GENESIS
        self.head_seq = 0
        self._pending: list[tuple] = []

    def record(self, table: str, row_id: Any, entry_id: int, digest_: bytes | None) -> None:
        """The latest change of a row wins (recorded in chain order)."""
        self._pending.append((table, row_id, entry_id, digest_))
        if len(self._pending) >= 10_000:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.db.executemany("INSERT OR REPLACE INTO expected VALUES (?, ?, ?, ?)", self._pending)
            self._pending = []

    def between(self, table: str, low: Any = None, high: Any = None) -> dict[Any, tuple[int, bytes | None]]:
        """Recorded rows of ``table`` with ``low < id <= high`` (a bound None: open)."""
        self.flush()
        sql, params = "SELECT id, entry, digest FROM expected WHERE tbl = ?", [table]
        if low is not None:
            sql, params = sql + " AND id > ?", params + [low]
        if high is not None:
            sql, params = sql + " AND id <= ?", params + [high]
        return {row_id: (entry, d) for row_id, entry, d in self.db.execute(sql, params)}

    @property
    def rows(self) -> int:
        """How many rows the trail says exist (recorded, not removed)."""
        self.flush()
        return self.db.execute("SELECT count(*) FROM expected WHERE digest IS NOT NULL").fetchone()[0]

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Expected":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_CHANGES_PREFIX = '{"changes":['
#: An entry without changes: a read's (``append_read``), whose payload goes on with what was read.
_EMPTY_CHANGES = '{"changes":[]'


def payload_changes(payload: str) -> Iterator[dict]:
    """The changes of an entry's payload, one at a time.

    A payload written by :func:`append` is canonical JSON ``{"changes":[{...},...]}``:
    each change is decoded on its own (``raw_decode``), so a 20,000-change entry never
    exists as one Python structure.  Anything else is decoded whole.  Raises
    ``ValueError``/``KeyError``/``TypeError`` for a payload that is not a list of changes.
    """
    if not payload.startswith(_CHANGES_PREFIX) or payload.startswith(_EMPTY_CHANGES):
        yield from json.loads(payload)["changes"]  # (a read's entry: no changes, then what was read)
        return
    decode = json.JSONDecoder().raw_decode
    at = len(_CHANGES_PREFIX)
    while True:
        change, at = decode(payload, at)
        yield change
        if payload.startswith(",", at):
            at += 1
        elif payload[at:] == "]}":
            return
        else:
            raise ValueError(f"unexpected text at offset {at}")


def recorded_digests(payload: str) -> Iterator[tuple[str, Any, bytes | None]]:
    """(table, id, digest of the values recorded after the change) for each change.

    In a payload :func:`append` wrote, each change is canonical JSON with its keys in
    order (``after``, ``before``, ``id``, ``table``), so the text of ``after`` *is*
    ``canonical(after)``: it is hashed as it stands, not decoded and encoded again
    (a third of ``verify``'s JSON work).  A change in any other form is decoded and
    its ``after`` encoded canonically.  ``check_rows`` re-checks a row that differs
    through the decoded values, so a payload that is valid but not canonical never
    names a row wrongly.  Raises as :func:`payload_changes` does."""
    if not payload.startswith(_CHANGES_PREFIX) or payload.startswith(_EMPTY_CHANGES):
        for c in json.loads(payload)["changes"]:
            yield c["table"], c["id"], _digest_bytes(c["after"])
        return
    decode = json.JSONDecoder().raw_decode
    sha256 = hashlib.sha256
    at = len(_CHANGES_PREFIX)
    while True:
        found = None
        if payload.startswith('{"after":', at):
            a0 = at + 9
            after, a1 = decode(payload, a0)
            if payload.startswith(',"before":', a1):
                _, b1 = decode(payload, a1 + 10)
                if payload.startswith(',"id":', b1):
                    row_id, i1 = decode(payload, b1 + 6)
                    if payload.startswith(',"table":', i1):
                        table, t1 = decode(payload, i1 + 9)
                        if payload.startswith("}", t1) and type(table) is str:
                            found = (table, row_id, None if after is None else sha256(payload[a0:a1].encode()).digest())
                            at = t1 + 1
        if found is None:
            change, at = decode(payload, at)
            found = (change["table"], change["id"], _digest_bytes(change["after"]))
        yield found
        if payload.startswith(",", at):
            at += 1
        elif payload[at:] == "]}":
            return
        else:
            raise ValueError(f"unexpected text at offset {at}")


_ENTRY_COLUMNS = ("id", "at", "author", "action", "payload", "prev_hash", "hash")


def _entries(conn) -> Iterator[tuple]:
    """Audit entries in id order, holding one (SQLite) or a few (others) payloads at a time.

    SQLite: one query whose cursor steps row by row (SQLAlchemy's default fetch
    strategy asks the driver for one row at a time; ``yield_per`` would buffer them,
    and 200 import entries of 12 MB each were 2.4 GB).  Other databases send a whole
    result at once, so ids are read first with each payload's size (``octet_length``
    reads PostgreSQL's stored length, not the value) and payloads are fetched in runs
    of at most :data:`PAYLOAD_BYTES_PER_FETCH` bytes (at least one entry)."""
    from sqlalchemy import func

    t = tables.AuditEntry.__table__
    columns = [t.c[name] for name in _ENTRY_COLUMNS]
    if conn.dialect.name == "sqlite":
        yield from conn.execute(select(*columns).order_by(t.c.id))
        return
    last = None
    while True:
        query = select(t.c.id, func.octet_length(t.c.payload)).order_by(t.c.id).limit(ROWS_PER_PAGE)
        sizes = conn.execute(query if last is None else query.where(t.c.id > last)).all()
        if not sizes:
            return
        total, upto = 0, sizes[0][0]
        for entry_id, size in sizes:
            if total and total + (size or 0) > PAYLOAD_BYTES_PER_FETCH:
                break
            total += size or 0
            upto = entry_id
        run = select(*columns).where(t.c.id <= upto).order_by(t.c.id)
        yield from conn.execute(run if last is None else run.where(t.c.id > last)).all()
        last = upto


def check_chain(conn, tick: Callable[[int], None] = lambda n: None) -> tuple[list[Finding], Expected]:
    """Walk the chain in id order; return what is broken and the rows it accounts for
    (an :class:`Expected`, to pass to :func:`check_rows`, which closes it).

    Holds one entry's payload at a time and, of its changes, one at a time; what each
    row should hold goes to the on-disk :class:`Expected`."""
    findings: list[Finding] = []
    expected = Expected()
    prev = GENESIS
    for entry_id, at, author, action, payload, prev_hash, stored in _entries(conn):
        expected.entries += 1
        tick(1)
        if prev_hash != prev:
            findings.append(Finding("audit", entry_id, "does not follow the entry before it (an entry was inserted, deleted or reordered)"))
        if entry_hash(prev_hash, at, author, action, payload) != stored:
            findings.append(Finding("audit", entry_id, "its content does not match its hash (the entry was edited)"))
        prev = stored
        expected.head_seq = entry_id
        try:
            for table, row_id, recorded_digest in recorded_digests(payload):
                expected.record(table, row_id, entry_id, recorded_digest)
        except (ValueError, KeyError, TypeError):
            findings.append(Finding("audit", entry_id, "its payload is not a list of changes"))
    expected.head = prev
    expected.flush()
    return findings, expected


def recorded_values(conn, entry_id: int, table: str, row_id: Any) -> dict | None:
    """The values entry ``entry_id`` recorded for the row (its latest change there)."""
    t = tables.AuditEntry.__table__
    payload = conn.execute(select(t.c.payload).where(t.c.id == entry_id)).scalar()
    found = None
    for c in payload_changes(payload):
        if c["table"] == table and c["id"] == row_id:
            found = c["after"]
    return found


def _utc_iso(value: dt.datetime) -> str:
    if value.utcoffset() is None:
        return value.replace(tzinfo=dt.timezone.utc).isoformat()
    return value.astimezone(dt.timezone.utc).isoformat()


def _converter(column) -> Any:
    """``typed(table, row_values(row))`` for one column's value, without the generic
    walk: most of ``verify``'s time was ``_plain`` recursing through every event's JSON.
    A JSON column's value comes from ``json.loads`` and is plain already."""
    from sqlalchemy import JSON, Date, DateTime

    cast = _coercions(column.table.name).get(column.key)
    if isinstance(column.type, JSON):
        return lambda v: v if type(v) in (dict, list, str, int, float, bool) or v is None else _plain(v)
    if isinstance(column.type, DateTime):
        return lambda v: _utc_iso(v) if isinstance(v, dt.datetime) else _plain(v)
    if isinstance(column.type, Date):
        return lambda v: v.isoformat() if type(v) is dt.date else _plain(v)

    def convert(v, cast=cast):
        if v is None or type(v) is str or type(v) is cast:
            return v
        v = _plain(v)
        if cast is not None and not isinstance(v, cast) and isinstance(v, (int, float, bool)):
            v = cast(v)
        return v

    if cast is None:
        return lambda v: v if v is None or type(v) is str else _plain(v)
    return convert


def _reader(table: str):
    """(table object, primary key column, function: row -> canonical values)."""
    t = tables.SQLModel.metadata.tables[table]
    key = list(t.primary_key.columns)[0]
    pairs = [(c.key, _converter(c)) for c in t.columns]

    def values(row) -> dict:
        return {name: convert(v) for (name, convert), v in zip(pairs, row)}

    return t, key, values


def current_rows(conn, table: str) -> Iterator[tuple[Any, dict]]:
    """Every row of an audited table as (id, canonical values), in id order, a page at a time."""
    t, key, values = _reader(table)
    last = None
    while True:
        query = select(t).order_by(key).limit(ROWS_PER_PAGE)
        page = conn.execute(query if last is None else query.where(key > last)).all()
        for row in page:
            v = values(row)
            yield v[key.key], v
        if len(page) < ROWS_PER_PAGE:
            return
        last = page[-1]._mapping[key]


def check_rows(
    conn, expected: Expected, table_names: Iterable[str] = AUDITED_TABLES, tick: Callable[[int], None] = lambda n: None
) -> list[Finding]:
    """Every audited row that differs from what the trail recorded, and every row missing
    or unrecorded; closes ``expected``.

    Integer-keyed tables are read a page of :data:`ROWS_PER_PAGE` rows at a time in id
    order (keyset), each page beside the trail's rows of the same id range; a recorded
    row of that range the page lacks was deleted.  Text-keyed tables (the catalogue,
    a few dozen rows) are compared whole, since two databases may sort text differently.
    Rows changed or inserted are listed in id order, then every deleted one."""
    from sqlalchemy import Integer

    findings: list[Finding] = []
    deleted: list[Finding] = []
    cached: dict[int, dict] = {}

    def recorded(entry_id: int, table: str, row_id: Any) -> dict | None:
        if entry_id not in cached:  # one entry's payload decoded, however many of its rows changed
            cached.clear()
            t = tables.AuditEntry.__table__
            payload = conn.execute(select(t.c.payload).where(t.c.id == entry_id)).scalar()
            cached[entry_id] = {(c["table"], c["id"]): c["after"] for c in payload_changes(payload)}
        return cached[entry_id].get((table, row_id))

    def compare(table: str, page: list[tuple[Any, dict]], trail: dict) -> None:
        for row_id, values in page:
            wanted = trail.pop(row_id, None)
            if wanted is None or wanted[1] is None:
                findings.append(Finding(table, row_id, "inserted outside devicelog (no audit entry records it)"))
            elif (current := _digest_bytes(values)) != wanted[1]:
                before = recorded(wanted[0], table, row_id)
                if _digest_bytes(before) != current:  # (the trail's text was not canonical, its values are the same)
                    findings.append(Finding(table, row_id, "changed outside devicelog: " + describe_difference(before, values)))
        for row_id, (entry_id, d) in sorted(trail.items(), key=lambda item: (isinstance(item[0], str), item[0])):
            if d is not None:
                deleted.append(Finding(table, row_id, f"deleted outside devicelog (recorded by audit entry {entry_id})"))

    try:
        for table in table_names:
            t, key, values = _reader(table)
            if not isinstance(key.type, Integer):
                whole = list(current_rows(conn, table))
                compare(table, whole, expected.between(table))
                tick(len(whole))
                continue
            last = None
            while True:
                query = select(t).order_by(key).limit(ROWS_PER_PAGE)
                rows = conn.execute(query if last is None else query.where(key > last)).all()
                if not rows:
                    compare(table, [], expected.between(table, last))
                    break
                page = [(v[key.key], v) for v in map(values, rows)]
                compare(table, page, expected.between(table, last, page[-1][0]))
                tick(len(page))
                last = page[-1][0]
    finally:
        expected.close()
    return findings + deleted


def describe_difference(before: dict | None, after: dict | None, prefix: str = "") -> str:
    """``volume_ml 20.0 → 30.0; site '' → 'left'`` for the fields that differ."""
    before, after = before or {}, after or {}
    parts = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key, "(absent)"), after.get(key, "(absent)")
        if old == new and type(old) is type(new):
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            parts.append(describe_difference(old, new, f"{prefix}{key}."))
        else:
            parts.append(f"{prefix}{key} {old!r} → {new!r}")
    return "; ".join(p for p in parts if p)


# --------------------------------------------------------------------- examining the trail


@dataclass
class TrailEntry:
    """One entry as ``devicelog audit`` shows it: a read (what was seen) or a change."""

    seq: int
    at: dt.datetime
    author: str
    action: str
    kind: str  # "read" or "change"
    patients: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    scope: str = ""
    changes: list[str] = field(default_factory=list)  # "event 12", "device 4"

    def as_json(self) -> dict:
        return {
            "seq": self.seq, "at": _plain(self.at), "author": self.author, "action": self.action, "kind": self.kind,
            "patients": self.patients, "devices": self.devices, "scope": self.scope, "changes": self.changes,
        }


def trail(conn, *, patient_mrn: str | None = None, login: str | None = None,
          start: dt.date | None = None, end: dt.date | None = None) -> Iterator[TrailEntry]:
    """The entries a privacy officer asked for, oldest first: by patient (what was read of
    them, which of their rows changed, and reads of every patient), by login (the login
    part of the author: ``jdoe`` finds ``jdoe (Jane Doe)``), from ``start`` to ``end``
    (dates, UTC, both included).  Raises LookupError for an unknown MRN."""
    t = tables.AuditEntry.__table__
    query = select(t.c.id, t.c.at, t.c.author, t.c.action, t.c.payload).order_by(t.c.id)
    if login:
        query = query.where((t.c.author == login) | t.c.author.startswith(login + " (", autoescape=True))
    if start:
        query = query.where(t.c.at >= dt.datetime.combine(start, dt.time(), dt.timezone.utc))
    if end:
        query = query.where(t.c.at < dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.timezone.utc))
    pid, device_ids, serials = None, set(), set()
    if patient_mrn is not None:
        P, D = tables.Patient.__table__, tables.Device.__table__
        pid = conn.execute(select(P.c.id).where(P.c.mrn == patient_mrn)).scalar()
        if pid is None:
            raise LookupError("no patient has this MRN")
        for did, serial in conn.execute(select(D.c.id, D.c.serial).where(D.c.patient_id == pid)):
            device_ids.add(did)
            serials.add(serial)
    for seq, at, author, action, payload in conn.execute(query):
        body = json.loads(payload)
        read = body.get("read")
        if read is not None:
            entry = TrailEntry(seq, at, author, action, "read", read.get("patients", []), read.get("devices", []), read.get("scope", ""))
            if patient_mrn is not None and not (
                patient_mrn in entry.patients or serials & set(entry.devices) or entry.scope.startswith("every patient")
            ):
                continue
            yield entry
            continue
        changes = body.get("changes", [])
        if patient_mrn is not None:
            def concerns(c: dict) -> bool:
                values = c.get("after") or c.get("before") or {}
                return (
                    (c["table"] == "patient" and c["id"] == pid)
                    or (c["table"] == "device" and c["id"] in device_ids)
                    or (c["table"] in ("event", "due_ack") and values.get("device_id") in device_ids)
                )

            changes = [c for c in changes if concerns(c)]
            if not changes:
                continue
        yield TrailEntry(seq, at, author, action, "change", changes=[f"{c['table']} {c['id']}" for c in changes])


# --------------------------------------------------------------------- the whole check


@dataclass
class Report:
    """What ``devicelog verify`` found: empty ``problems`` means all is well."""

    problems: list[Finding]
    entries: int
    rows: int
    head: str
    file_checked: bool = True
    head_seq: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def anchor(self) -> "Anchor":
        """The chain's head as it stands: keep it to check a later verify against."""
        return Anchor(self.head_seq, self.head)

    def summary(self) -> str:
        if self.ok:
            return (
                f"ok: {self.entries} audit entries chain intact (anchor {self.anchor}), "
                f"{self.rows} rows match the trail, "
                + ("database integrity ok" if self.file_checked else "file integrity is the server's to check")
            )
        from devicelog.clinic.words import plural

        return (f"{plural(len(self.problems), 'problem')} found; {plural(self.entries, 'audit entry', 'audit entries')}, "
                f"{plural(self.rows, 'row')} checked")


def integrity_problems(conn) -> list[Finding]:
    """SQLite's own checks of the file (pages, indexes, foreign keys); nothing on other databases."""
    if conn.dialect.name != "sqlite":
        return []
    found = []
    for (message,) in conn.execute(text("PRAGMA integrity_check")):
        if message != "ok":
            found.append(Finding("database", "file", f"integrity check: {message}"))
    for table, rowid, parent, _ in conn.execute(text("PRAGMA foreign_key_check")):
        found.append(Finding(table, rowid, f"refers to a missing {parent} row"))
    return found


@dataclass(frozen=True)
class Anchor:
    """A point of the chain written down elsewhere: the entry's sequence number (its id)
    and its hash.  Because each hash covers the one before it, a chain that still holds
    this entry with this hash holds every earlier entry unchanged."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> "Anchor":
        """``SEQ:HASH`` as verify and backup print it; ValueError naming the value otherwise."""
        seq, sep, digest_ = text.strip().partition(":")
        if not (sep and seq.isdigit() and len(digest_) == 64 and all(c in "0123456789abcdef" for c in digest_)):
            shown = text if len(text) <= 80 else text[:77] + "..."
            raise ValueError(f"anchor {shown!r}: expected SEQ:HASH, a sequence number and 64 hex digits, as verify prints it")
        return cls(int(seq), digest_)


def head_anchor(conn) -> Anchor | None:
    """The newest entry of the chain, or None for an empty trail."""
    t = tables.AuditEntry.__table__
    row = conn.execute(select(t.c.id, t.c.hash).order_by(t.c.id.desc()).limit(1)).first()
    return Anchor(row[0], row[1]) if row else None


def anchor_problems(conn, anchors: Iterable[Anchor]) -> list[Finding]:
    """Each anchor the chain no longer holds: its entry deleted (with everything after
    it, or not), or the chain rewritten and re-hashed since it was taken."""
    t = tables.AuditEntry.__table__
    found = []
    for anchor in anchors:
        now = conn.execute(select(t.c.hash).where(t.c.id == anchor.seq)).scalar()
        if now is None:
            head = head_anchor(conn)
            ends = f"the chain now ends at entry {head.seq}" if head else "the trail is empty"
            found.append(Finding("anchor", anchor.seq, f"entry {anchor.seq} is gone ({ends}): entries were deleted since the anchor was taken"))
        elif now != anchor.hash:
            found.append(
                Finding("anchor", anchor.seq, f"entry {anchor.seq} now hashes to {now[:12]}…, the anchor says {anchor.hash[:12]}…: the chain was rewritten since")
            )
    return found


@contextlib.contextmanager
def _verify_progress(conn, show: bool) -> Iterator[Callable[[int], None]]:
    """One bar over the chain's entries, the audited rows and the devices whose due
    list is recomputed, on a terminal only (``devicelog.progress``)."""
    if not show:
        yield lambda n: None
        return
    from devicelog.progress import progress

    total = conn.execute(text("SELECT count(*) FROM audit")).scalar() or 0
    for table in AUDITED_TABLES + ("device",):
        total += conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0
    with progress(total, "Verifying the audit trail, every row and the due list") as tick:
        yield tick


def verify(engine, anchors: Iterable[Anchor] = (), *, show_progress: bool = False) -> Report:
    """Check the database file, the append-only triggers, the chain, every audited row,
    that the chain still holds each of ``anchors`` (heads written down earlier), and
    that the stored due table is what the records give (``forecasts.table_problems``).

    Memory does not grow with the clinic: the chain is walked an entry at a time, what
    it says each row holds goes to a scratch file (:class:`Expected`), and the rows are
    compared a page at a time (:func:`check_rows`).  Time is one pass over the audit
    table and one over each audited table (plus SQLite's own integrity check)."""
    from devicelog.store import forecasts
    from devicelog.store.db import snapshot
    from devicelog.store.schema import protection_problems

    with snapshot(engine).connect() as conn, _verify_progress(conn, show_progress) as tick:
        problems = integrity_problems(conn)
        problems += [
            Finding("trigger", name, f"{what}: the append-only protection was altered outside devicelog")
            for name, what in protection_problems(conn)
        ]
        chain, expected = check_chain(conn, tick)
        problems += chain
        rows = expected.rows
        problems += check_rows(conn, expected, tick=tick)
        problems += anchor_problems(conn, anchors)
        problems += [Finding("due table", where, what) for where, what in forecasts.table_problems(conn, tick)]
    return Report(
        problems=problems,
        entries=expected.entries,
        rows=rows,
        head=expected.head,
        file_checked=engine.dialect.name == "sqlite",
        head_seq=expected.head_seq,
    )
