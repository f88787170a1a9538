"""Acknowledgements and snoozes of due items (issue 14.2): the ``due_ack`` table.

A clinical record, not a cache: append-only (the triggers of ``store.schema`` refuse
UPDATE, DELETE and REPLACE), audited (``store.audit.AUDITED_TABLES``), carried by
import/export.  One row per action: ``kind`` "acknowledge", "snooze" (with ``until``)
or "withdraw" (with ``withdraws_id``, the record it takes back).  The row copies the
item's key and fingerprint (``clinic.acks.fingerprint``) and, for people reading the
history, its ``what`` and due date.

Why a table of its own and not a device event: an acknowledgement is not an input of
the forecast (the maintained due table, ``store.forecasts``, stays as it is and needs
no refresh when an item is acknowledged); it is a filter the due list applies when it
is read.  The table is small (the records in force are a few per clinic day), so the
list reads every record in force in one query and tests each listed item's key in a
dict: the 100,000-patient list pays one indexed query and one dict lookup per item.

A SQLAlchemy Core table, like the due table, so reading a due list needs no ORM.
"""

from __future__ import annotations

import datetime as dt
from typing import Collection

from sqlalchemy import Column, Date, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text, select

from devicelog.clinic.acks import Ack

metadata = MetaData()

due_ack = Table(
    "due_ack",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("device_id", Integer, nullable=False),
    Column("item_key", String(80), nullable=False),
    Column("fingerprint", String(16), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("until", Date, nullable=True),
    Column("withdraws_id", Integer, ForeignKey("due_ack.id"), nullable=True),
    Column("what", Text, nullable=False),
    Column("due_on", Date, nullable=True),
    Column("reason", Text, nullable=False),
    Column("author", String(200), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_due_ack_key", "item_key", "id"),
    Index("ix_due_ack_device", "device_id"),
)

COLUMNS = ("id", "device_id", "item_key", "fingerprint", "kind", "reason", "author", "recorded_at", "until",
           "withdraws_id", "what", "due_on")


def _ack(row) -> Ack:
    m = row._mapping
    at = m["recorded_at"]
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    until, due_on = m["until"], m["due_on"]
    return Ack(m["id"], m["device_id"], m["item_key"], m["fingerprint"], m["kind"], m["reason"], m["author"], at,
               dt.date.fromisoformat(until) if isinstance(until, str) else until, m["withdraws_id"], m["what"],
               dt.date.fromisoformat(due_on) if isinstance(due_on, str) else due_on)


def records(conn, *, device_ids: Collection[int] | None = None, item_key: str | None = None) -> list[Ack]:
    """Every record (of these devices, or of this item), oldest first."""
    c = due_ack.c
    query = select(*[c[n] for n in COLUMNS]).order_by(c.id)
    if item_key is not None:
        query = query.where(c.item_key == item_key)
    if device_ids is not None:
        ids = sorted(set(device_ids))
        if not ids:
            return []
        out: list[Ack] = []
        for start in range(0, len(ids), 500):
            out += [_ack(r) for r in conn.execute(query.where(c.device_id.in_(ids[start:start + 500])))]
        return sorted(out, key=lambda a: a.id)
    return [_ack(r) for r in conn.execute(query)]


def in_force(conn, *, device_ids: Collection[int] | None = None) -> dict[str, Ack]:
    """Item key -> the acknowledgement or snooze in force (``clinic.acks.in_force``)."""
    from devicelog.clinic.acks import in_force as newest

    return newest(records(conn, device_ids=device_ids))


def insert(conn, values: dict) -> int:
    """Append one record; returns its id."""
    return conn.execute(due_ack.insert().values(**values)).inserted_primary_key[0]
