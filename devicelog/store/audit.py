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

import datetime as dt
import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Iterator

from sqlalchemy import Boolean, Float, Integer, select, text

from devicelog.store import tables

GENESIS = "0" * 64
CHANGES_PER_ENTRY = 20_000
#: The tables whose rows the trail accounts for: clinical records and the catalogue.
AUDITED_TABLES = ("device_model", "drug", "patient", "device", "event")
_PG_LOCK_KEY = 0x6465_7663  # "devc"


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


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, dt.datetime):
        if value.utcoffset() is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "model_dump"):
        return _plain(value.model_dump(mode="json"))
    raise TypeError(f"cannot record a value of type {type(value).__name__}")


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


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(values: dict | None) -> str | None:
    return None if values is None else hashlib.sha256(canonical(values).encode()).hexdigest()


def entry_hash(prev_hash: str, at: dt.datetime, author: str, action: str, payload: str) -> str:
    head = canonical([prev_hash, _plain(at), author, action])
    return hashlib.sha256(head.encode() + b"\n" + payload.encode()).hexdigest()


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
    audited = session.info.setdefault("devicelog_audited", set())
    audited.update((c.table, c.row_id) for c in changes)


def _lock_chain(session) -> None:
    bind = session.get_bind() if hasattr(session, "get_bind") else session  # a Session or a Connection
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


def _head(session) -> str:
    t = tables.AuditEntry.__table__
    found = session.execute(select(t.c.hash).order_by(t.c.id.desc()).limit(1)).scalar()
    return found or GENESIS


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


@dataclass
class Expected:
    """What the trail says each audited row should hold: (table, id) -> (entry id, digest)."""

    rows: dict[tuple[str, Any], tuple[int, str | None]] = field(default_factory=dict)
    entries: int = 0
    head: str = GENESIS


def check_chain(conn) -> tuple[list[Finding], Expected]:
    """Walk the chain in id order; return what is broken and the rows it accounts for."""
    t = tables.AuditEntry.__table__
    findings: list[Finding] = []
    expected = Expected()
    prev = GENESIS
    result = conn.execution_options(yield_per=200).execute(
        select(t.c.id, t.c.at, t.c.author, t.c.action, t.c.payload, t.c.prev_hash, t.c.hash).order_by(t.c.id)
    )
    for entry_id, at, author, action, payload, prev_hash, stored in result:
        expected.entries += 1
        if prev_hash != prev:
            findings.append(Finding("audit", entry_id, "does not follow the entry before it (an entry was inserted, deleted or reordered)"))
        if entry_hash(prev_hash, at, author, action, payload) != stored:
            findings.append(Finding("audit", entry_id, "its content does not match its hash (the entry was edited)"))
        prev = stored
        try:
            changes = json.loads(payload)["changes"]
        except (ValueError, KeyError, TypeError):
            findings.append(Finding("audit", entry_id, "its payload is not a list of changes"))
            continue
        for c in changes:
            expected.rows[(c["table"], c["id"])] = (entry_id, digest(c["after"]))
    expected.head = prev
    return findings, expected


def recorded_values(conn, entry_id: int, table: str, row_id: Any) -> dict | None:
    t = tables.AuditEntry.__table__
    payload = conn.execute(select(t.c.payload).where(t.c.id == entry_id)).scalar()
    for c in json.loads(payload)["changes"]:
        if c["table"] == table and c["id"] == row_id:
            found = c["after"]
    return found


def current_rows(conn, table: str) -> Iterator[tuple[Any, dict]]:
    t = tables.SQLModel.metadata.tables[table]
    key = list(t.primary_key.columns)[0]
    for row in conn.execution_options(yield_per=1000).execute(select(t).order_by(key)):
        values = typed(table, row_values(row))
        yield values[key.key], values


def check_rows(conn, expected: Expected, table_names: Iterable[str] = AUDITED_TABLES) -> list[Finding]:
    """Every audited row that differs from what the trail recorded, and every row missing or unrecorded."""
    findings: list[Finding] = []
    seen: set[tuple[str, Any]] = set()
    for table in table_names:
        for row_id, values in current_rows(conn, table):
            key = (table, row_id)
            seen.add(key)
            recorded = expected.rows.get(key)
            if recorded is None or recorded[1] is None:
                findings.append(Finding(table, row_id, "inserted outside devicelog (no audit entry records it)"))
            elif digest(values) != recorded[1]:
                before = recorded_values(conn, recorded[0], table, row_id)
                findings.append(Finding(table, row_id, "changed outside devicelog: " + describe_difference(before, values)))
    wanted = set(table_names)
    for (table, row_id), (entry_id, d) in expected.rows.items():
        if table in wanted and d is not None and (table, row_id) not in seen:
            findings.append(Finding(table, row_id, f"deleted outside devicelog (recorded by audit entry {entry_id})"))
    return findings


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


# --------------------------------------------------------------------- the whole check


@dataclass
class Report:
    """What ``devicelog verify`` found: empty ``problems`` means all is well."""

    problems: list[Finding]
    entries: int
    rows: int
    head: str
    file_checked: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return (
                f"ok: {self.entries} audit entries chain intact (head {self.head[:12]}), "
                f"{self.rows} rows match the trail, "
                + ("database integrity ok" if self.file_checked else "file integrity is the server's to check")
            )
        return f"{len(self.problems)} problem(s) found; {self.entries} audit entries, {self.rows} rows checked"


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


def verify(engine) -> Report:
    """Check the database file, the append-only triggers, the chain, and every audited row."""
    from devicelog.store.schema import missing_protections

    with engine.connect() as conn:
        problems = integrity_problems(conn)
        problems += [
            Finding("trigger", name, "missing: the append-only protection was dropped outside devicelog")
            for name in missing_protections(conn)
        ]
        chain, expected = check_chain(conn)
        problems += chain
        problems += check_rows(conn, expected)
    rows = sum(1 for (table, _), (_, d) in expected.rows.items() if d is not None)
    return Report(
        problems=problems, entries=expected.entries, rows=rows, head=expected.head, file_checked=engine.dialect.name == "sqlite"
    )
