"""A small clinic written through the services, shared by the data-safety tests."""

from __future__ import annotations

import datetime as dt

from devicelog import services
from devicelog.clinic.records import (
    DeviceIn,
    DrugConcentration,
    EventIn,
    PatientIn,
    PumpProgram,
    RefillData,
    ReinterventionData,
    WoundCheckData,
)
from devicelog.store.db import write_session

TODAY = dt.date(2026, 11, 23)


def refill(volume_added_ml: float = 20.0) -> RefillData:
    return RefillData.model_validate(
        dict(
            volume_withdrawn_ml=3.0,
            volume_added_ml=volume_added_ml,
            reservoir_volume_after_ml=20.0,
            program=PumpProgram(
                mode="simple_continuous", drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=10)], dose_mg_per_day=2
            ),
        )
    )


def wound(site: str = "abdomen") -> WoundCheckData:
    return WoundCheckData(site=site)


def make_clinic(engine) -> dict[str, int]:
    """Ann Lee with a SynchroMed II (one refill, one amendment of it, one voided wound
    check) and a stimulator replaced by a second one, then explanted; Bo Chen, no device.
    Returns the ids the tests tamper with."""
    ids = {}
    with write_session(engine) as s:
        ann = services.add_patient(
            session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN001", name="Ann Lee", birth_date=dt.date(1950, 1, 2)), author="rn.ann"
        )
        bo = services.add_patient(
            session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN002", name="Bo Chen", birth_date=dt.date(1961, 3, 4)), author="rn.ann"
        )
        ids["patient"], ids["patient_without_device"] = ann.id, bo.id
    with write_session(engine) as s:
        pump = services.add_device(
            session=s,
            device=DeviceIn(patient_mrn="MRN001", model="synchromed-ii-20", serial="NGP100", implanted_on=dt.date(2025, 1, 5)),
            author="rn.ann",
            today=TODAY,
        )
        ids["pump"] = pump.id
    with write_session(engine) as s:
        first = services.record_event(
            session=s,
            event=EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 10, 1), author="rn.ann", data=refill()),
            today=TODAY,
        )
        ids["refill"] = first.id
    with write_session(engine) as s:
        ids["amendment"] = services.amend_event(
            session=s, event_id=first.id, occurred_on=dt.date(2026, 10, 2), data=refill(), reason="wrong date", author="dr.bo", today=TODAY
        ).id
    with write_session(engine) as s:
        w = services.record_event(
            session=s, event=EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 11, 1), author="rn.ann", data=wound()), today=TODAY
        )
    with write_session(engine) as s:
        ids["void"] = services.void_event(session=s, event_id=w.id, reason="wrong patient", author="rn.ann").id
    with write_session(engine) as s:
        old = services.add_device(
            session=s,
            device=DeviceIn(patient_mrn="MRN001", model="medtronic-intellis", serial="SCS1", implanted_on=dt.date(2024, 2, 1)),
            author="rn.ann",
            today=TODAY,
        )
        ids["old_stimulator"] = old.id
    with write_session(engine) as s:
        new = services.add_device(
            session=s,
            device=DeviceIn(
                patient_mrn="MRN001", model="medtronic-intellis", serial="SCS2", implanted_on=dt.date(2026, 2, 1), replaces_serial="SCS1"
            ),
            author="dr.bo",
            today=TODAY,
        )
        ids["new_stimulator"] = new.id
    with write_session(engine) as s:
        services.record_event(
            session=s,
            event=EventIn(
                device_serial="SCS2",
                occurred_on=dt.date(2026, 11, 20),
                author="dr.bo",
                data=ReinterventionData(reintervention="explant", reason="infection"),
            ),
            today=TODAY,
        )
    return ids
