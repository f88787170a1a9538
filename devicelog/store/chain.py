"""The audit chain's links, without the ORM: hashing an entry and appending a read.

``devicelog.store.audit`` is the trail (its design is described there) and re-exports
these.  They live apart so that a command that only reads, such as ``devicelog due
--format json`` on its fast path, can log its read (issue 15) without importing
SQLModel: the ``audit`` table is named here as a lightweight Core table whose ``at``
binds as ``UTCDateTime`` does (an aware UTC instant through ``DateTime(timezone=True)``).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Integer, Text, column, select, table, text

GENESIS = "0" * 64
PG_LOCK_KEY = 0x6465_7663  # "devc"

_AUDIT = table(
    "audit",
    column("id", Integer),
    column("at", DateTime(timezone=True)),
    column("author", Text),
    column("action", Text),
    column("payload", Text),
    column("prev_hash", Text),
    column("hash", Text),
)


def plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, dt.datetime):
        if value.utcoffset() is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "model_dump"):
        return plain(value.model_dump(mode="json"))
    raise TypeError(f"cannot record a value of type {type(value).__name__}")


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, at: dt.datetime, author: str, action: str, payload: str) -> str:
    head = canonical([prev_hash, plain(at), author, action])
    return hashlib.sha256(head.encode() + b"\n" + payload.encode()).hexdigest()


def append_read(session, *, author: str, what: str, patients: Iterable[str] = (), devices: Iterable[str] = (), scope: str = "") -> None:
    """Record that ``author`` read something (``session``: a Session or a Connection): an entry with action ``read: <what>``, no
    row changes, and in its payload which patients (MRNs) and devices (serials) were
    shown, or the scope (``"every patient"``, ``"due list to 2026-12-31"``).

    Chained like every entry (``check_chain`` walks it; ``check_rows`` finds no change
    in it).  Call it in a write transaction of its own (:func:`log_read`) when the data
    is read: before it is shown or written out where the command can, else right after
    (a FHIR Bundle is streamed as it is built)."""
    if not author:
        raise ValueError("an audit entry needs an author")
    read = {"patients": sorted(set(patients)), "devices": sorted(set(devices))}
    if scope:
        read["scope"] = scope
    payload = canonical({"changes": [], "read": read})
    action = f"read: {what}"[:200]
    lock_chain(session)
    prev = head(session)
    at = dt.datetime.now(dt.timezone.utc)
    session.execute(
        _AUDIT.insert().values(
            at=at, author=author, action=action, payload=payload, prev_hash=prev, hash=entry_hash(prev, at, author, action, payload)
        )
    )


def log_read(engine, *, author: str, what: str, patients: Iterable[str] = (), devices: Iterable[str] = (), scope: str = "") -> None:
    """:func:`append_read` in a write transaction of its own (a plain connection: the due
    list's fast path loads no ORM)."""
    import sys

    from sqlalchemy.exc import OperationalError

    from devicelog.store.db import refusals_named

    try:
        with refusals_named(), engine.execution_options(devicelog_write=True).begin() as conn:
            append_read(conn, author=author, what=what, patients=patients, devices=devices, scope=scope)
    except OperationalError as exc:
        if "readonly" not in str(exc).replace("read-only", "readonly").lower():
            raise
        # A read-only copy (a backup, a file on read-only media) cannot hold the entry: the
        # read goes on, and the person is told it was not logged.
        print(f"devicelog: this read was not logged in the audit trail: the database is read-only ({what})", file=sys.stderr)


def lock_chain(session) -> None:
    """Serialise appends: a transaction-scoped advisory lock on PostgreSQL (SQLite's
    ``BEGIN IMMEDIATE`` write lock does it there)."""
    bind = session.get_bind() if hasattr(session, "get_bind") else session  # a Session or a Connection
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})


def head(session) -> str:
    """The newest entry's hash (what the next entry chains to); GENESIS for an empty trail."""
    t = _AUDIT
    found = session.execute(select(t.c.hash).order_by(t.c.id.desc()).limit(1)).scalar()
    return found or GENESIS
