"""A device's whole story as plain values: what the forecast and the reports read.

The store builds these from rows (``devicelog.store.queries``); tests build them by
hand.  ``effective_events`` applies amendments: the latest amendment of an event
stands in its place, and a voided ("entered in error") event drops out.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from pydantic import BaseModel, ConfigDict

from devicelog.clinic.advisory import AdvisoryFlag
from devicelog.clinic.catalogue import DeviceModel
from devicelog.clinic.records import (
    DeviceStatus,
    Event,
    EventKind,
    GoalsOfCare,
    ImplantType,
    PatientStatus,
)


class Plain(BaseModel):
    model_config = ConfigDict(frozen=True)


class PatientInfo(Plain):
    id: int
    mrn: str
    name: str
    birth_date: dt.date
    goals_of_care: GoalsOfCare = GoalsOfCare.active_treatment
    status: PatientStatus = PatientStatus.active
    died_on: dt.date | None = None

    @property
    def end_of_life(self) -> bool:
        """Rule 24: hospice or expected survival under 3 months."""
        return self.goals_of_care in (GoalsOfCare.hospice, GoalsOfCare.survival_under_3_months)


class DeviceInfo(Plain):
    id: int
    serial: str
    model: DeviceModel
    implanted_on: dt.date
    implant_type: ImplantType = ImplantType.permanent
    site: str = ""
    status: DeviceStatus = DeviceStatus.active
    replaced_by_serial: str | None = None
    replaces_serial: str | None = None
    recharge_interval_days: float | None = None
    udi_raw: str | None = None
    udi_di: str | None = None
    udi_lot: str | None = None
    udi_serial: str | None = None
    udi_expiry: dt.date | None = None
    udi_manufactured: dt.date | None = None

    @property
    def in_service(self) -> bool:
        return self.status in (DeviceStatus.active, DeviceStatus.trial)


class DeviceHistory(Plain):
    patient: PatientInfo
    device: DeviceInfo
    events: tuple[Event, ...] = ()  # effective events, in clinical order
    #: Safety notices recorded as matching this device, with any acknowledgement (issue 18).
    advisories: tuple[AdvisoryFlag, ...] = ()

    def of_kind(self, kind: EventKind) -> list[Event]:
        return [e for e in self.events if e.kind is kind]


def clinical_order(events: Iterable[Event]) -> list[Event]:
    """Date order; events logged the same day in the order they were recorded."""
    return sorted(events, key=lambda e: (e.occurred_on, e.recorded_at, e.id))


def effective_events(all_rows: Iterable[Event]) -> list[Event]:
    """Apply amendments: each original is replaced by its latest amendment, voided ones dropped.

    ``all_rows`` holds originals (``amends_id`` None) and amendments (``amends_id`` set to
    the original's id).  The result keeps the original's id, date of record and position,
    with the amendment's values.
    """
    rows = list(all_rows)
    latest: dict[int, Event] = {}
    for row in sorted(rows, key=lambda e: e.id):
        if row.amends_id is not None:
            latest[row.amends_id] = row
    result = []
    for row in rows:
        if row.amends_id is not None:
            continue
        amendment = latest.get(row.id)
        if amendment is None:
            result.append(row)
        elif not amendment.voided:
            result.append(
                amendment.model_copy(
                    update={"id": row.id, "amends_id": None, "recorded_at": row.recorded_at}
                )
            )
    return clinical_order(result)
