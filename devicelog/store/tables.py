"""The database tables.

Clinical events live in one table, ``event``: the columns every event shares
(device, kind, dates, author, amendment links) are real columns and the kind's own
fields are a JSON document validated by the kind's Create model
(``devicelog.clinic.records``).  One table keeps amendments, the audit trail, the
timeline and import/export uniform across the nine kinds; the forecast reads
whole device histories, never a column across all refills.

Rows are append-only for clinical records: an amendment is a new row that points
at the row it corrects (``amends_id``); "entered in error" is an amendment with
``voided`` set.  Nothing in devicelog updates or deletes an event row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class DeviceModelRow(SQLModel, table=True):
    __tablename__ = "device_model"

    code: str = Field(primary_key=True, max_length=60)
    maker: str
    model: str
    kind: str = Field(index=True)
    power: str
    reservoir_ml: Optional[float] = None
    low_alarm_ml: Optional[float] = None
    constant_flow: bool = False
    battery_life_years: Optional[float] = None
    eri_to_eos_days: Optional[int] = None
    planned_replacement_months: Optional[int] = None
    lead_removal_day: Optional[int] = None
    mr_status: str = "unknown"
    mr_note: str = ""
    source: str = ""
    device_identifiers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))


class DrugRow(SQLModel, table=True):
    __tablename__ = "drug"

    code: str = Field(primary_key=True, max_length=40)
    name: str
    display_unit: str = "mg"
    stability_days: Optional[int] = None
    max_concentration_mg_per_ml: Optional[float] = None
    max_dose_mg_per_day: Optional[float] = None
    caution_dose_mg_per_day: Optional[float] = None
    is_ziconotide: bool = False
    is_opioid: bool = False
    source: str = ""
    # Issue 18.2, the drug-limit library (migration 0011): ``clinic.catalogue.DrugLimit``
    # values and labelled strengths as JSON lists, and a label's boxed warning.
    labelled_concentrations_mg_per_ml: list[float] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    limits: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    boxed_warning: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))


class Patient(SQLModel, table=True):
    __tablename__ = "patient"

    id: Optional[int] = Field(default=None, primary_key=True)
    mrn: str = Field(unique=True, index=True, max_length=40)
    name: str = Field(index=True, max_length=200)
    birth_date: dt.date
    goals_of_care: str = "active_treatment"
    status: str = "active"
    died_on: Optional[dt.date] = None
    author: str = ""
    recorded_at: dt.datetime = Field(default_factory=utcnow)


class Device(SQLModel, table=True):
    __tablename__ = "device"

    id: Optional[int] = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    model_code: str = Field(foreign_key="device_model.code")
    serial: str = Field(unique=True, index=True, max_length=40)
    udi_raw: Optional[str] = None
    udi_di: Optional[str] = None
    udi_lot: Optional[str] = None
    udi_serial: Optional[str] = None
    udi_expiry: Optional[dt.date] = None
    udi_manufactured: Optional[dt.date] = None
    implanted_on: dt.date
    implant_type: str = "permanent"
    site: str = ""
    status: str = "active"
    replaced_by_id: Optional[int] = Field(default=None, foreign_key="device.id")
    recharge_interval_days: Optional[float] = None
    author: str = ""
    recorded_at: dt.datetime = Field(default_factory=utcnow)


class EventRow(SQLModel, table=True):
    __tablename__ = "event"
    __table_args__ = (Index("ix_event_device_date", "device_id", "occurred_on"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    device_id: int = Field(foreign_key="device.id")
    kind: str = Field(max_length=20)
    occurred_on: dt.date
    author: str
    recorded_at: dt.datetime = Field(default_factory=utcnow)
    data: Optional[dict[str, Any]] = Field(default=None, sa_column=Column(JSON))
    amends_id: Optional[int] = Field(default=None, foreign_key="event.id", index=True)
    amendment_reason: Optional[str] = None
    voided: bool = False


class AdvisoryRow(SQLModel, table=True):
    """A safety notice (advisory, recall) as imported (issue 18): ``clinic.advisory.AdvisoryIn``.
    Append-only: the migration adds triggers refusing UPDATE and DELETE."""

    __tablename__ = "advisory"

    id: Optional[int] = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    issued_on: dt.date
    source: str = Field(max_length=200)
    reference: str = Field(default="", max_length=60)
    recommended_action: str = Field(sa_column=Column(Text, nullable=False))
    notice_class: str = Field(max_length=3)
    rules: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    unparsed: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    form: str = Field(max_length=20)
    author: str
    recorded_at: dt.datetime = Field(default_factory=utcnow)


class AdvisoryMatchRow(SQLModel, table=True):
    """A device a notice concerns, at its tier, with the evidence: recorded when the notice
    is imported, and when a matching device is registered later.  Append-only."""

    __tablename__ = "advisory_match"
    __table_args__ = (Index("ix_advisory_match_pair", "advisory_id", "device_id", unique=True),)

    id: Optional[int] = Field(default=None, primary_key=True)
    advisory_id: int = Field(foreign_key="advisory.id")
    device_id: int = Field(foreign_key="device.id", index=True)
    tier: int
    evidence: str = Field(sa_column=Column(Text, nullable=False))
    matched_on: dt.date
    author: str
    recorded_at: dt.datetime = Field(default_factory=utcnow)


class AdvisoryActionRow(SQLModel, table=True):
    """What was done about a notice for one device (the acknowledgement that closes its due
    item): the actions (``clinic.advisory.ACTIONS``), a note, who, when.  Append-only."""

    __tablename__ = "advisory_action"

    id: Optional[int] = Field(default=None, primary_key=True)
    advisory_id: int = Field(foreign_key="advisory.id")
    device_id: int = Field(foreign_key="device.id", index=True)
    done_on: dt.date
    actions: list[str] = Field(sa_column=Column(JSON, nullable=False))
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    author: str
    recorded_at: dt.datetime = Field(default_factory=utcnow)


class AuditEntry(SQLModel, table=True):
    """One link of the tamper-evident audit trail (``devicelog.store.audit``).

    Append-only like ``event``: the migration adds triggers refusing UPDATE and DELETE.
    """

    __tablename__ = "audit"

    id: Optional[int] = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow)
    author: str = Field(max_length=200)
    action: str = Field(max_length=200)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64, unique=True)
    hash: str = Field(max_length=64, unique=True)


class PatientSearch(SQLModel, table=True):
    """Patient search (revision 0004): per patient, the name and one lower-case haystack of
    MRN, name and device serials.  Derived, kept by SQLite triggers (``store.schema``).

    Revision 0005 indexes the haystack in ``patient_search_fts`` (FTS5, trigram), a
    virtual table these models do not describe (``schema.is_search_index_object``)."""

    __tablename__ = "patient_search"
    __table_args__ = (Index("ix_patient_search_name", "name", "patient_id", "haystack"),)

    patient_id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(Text, nullable=False))
    haystack: str = Field(sa_column=Column(Text, nullable=False))


# The maintained next-due table and its companions (``devicelog.store.forecasts``) are
# SQLAlchemy Core tables, so that reading a due list needs no ORM import; they are
# registered here so that migrations and ``create_all`` know them like every other table.
from devicelog.store import forecasts as _forecasts  # noqa: E402

for _table in _forecasts.metadata.sorted_tables:
    _table.to_metadata(SQLModel.metadata)

# Acknowledgements and snoozes of due items (issue 14.2): a Core table for the same reason.
from devicelog.store import acks as _acks  # noqa: E402

for _table in _acks.metadata.sorted_tables:
    _table.to_metadata(SQLModel.metadata)
