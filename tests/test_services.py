"""Use cases refuse bad input naming the field and value, and leave the database as it was."""

import datetime as dt

import pytest
from sqlmodel import func, select

from devicelog import services
from devicelog.clinic.records import (
    DeviceIn,
    DrugConcentration,
    EventIn,
    PatientIn,
    PumpProgram,
    RefillData,
    WoundCheckData,
)
from devicelog.store import tables
from devicelog.store.db import read_session, write_session
from tests.conftest import TODAY
from tests.test_transfer import other_engine  # noqa: F401  (fixture)


def counts(engine):
    with read_session(engine) as s:
        return tuple(
            s.exec(select(func.count()).select_from(t)).one()
            for t in (tables.Patient, tables.Device, tables.EventRow)
        )


def refill(**over):
    values = dict(
        volume_withdrawn_ml=3.0,
        volume_added_ml=20.0,
        reservoir_volume_after_ml=20.0,
        program=PumpProgram(mode="simple_continuous", drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=10)], dose_mg_per_day=2),
    )
    values.update(over)
    return RefillData.model_validate(values)


@pytest.fixture
def clinic(engine):
    with write_session(engine) as s:
        services.add_patient(
            session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN001", name="Ann Lee", birth_date=dt.date(1950, 1, 2)), author="rn"
        )
        services.add_device(
            session=s,
            device=DeviceIn(patient_mrn="MRN001", model="synchromed-ii-20", serial="NGP100", implanted_on=dt.date(2025, 1, 5)),
            author="rn",
            today=TODAY,
        )
    return engine


def record(engine, event):
    with write_session(engine) as s:
        return services.record_event(session=s, event=event, today=TODAY).id


def refused(engine, action):
    before = counts(engine)
    with pytest.raises(services.InputError) as info:
        action()
    assert counts(engine) == before
    return {p.field: (p.value, p.message) for p in info.value.problems}


def test_refill_is_stored_with_typed_values(clinic):
    event_id = record(clinic, EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 10, 1), author="rn", data=refill()))
    with read_session(clinic) as s:
        row = s.get(tables.EventRow, event_id)
    assert row.kind == "refill" and row.data["volume_added_ml"] == 20.0
    assert row.data["program"]["drugs"][0] == {"drug": "morphine", "concentration_mg_per_ml": 10.0}
    assert row.recorded_at.tzinfo is not None


def test_volume_above_reservoir_is_refused(clinic):
    problems = refused(
        clinic,
        lambda: record(
            clinic,
            EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 10, 1), author="rn", data=refill(volume_withdrawn_ml=25.0)),
        ),
    )
    assert problems["data.volume_withdrawn_ml"][0] == 25.0
    assert "20 mL" in problems["data.volume_withdrawn_ml"][1]


def test_event_before_implant_or_after_today_is_refused(clinic):
    for day, word in ((dt.date(2024, 12, 31), "before"), (TODAY + dt.timedelta(days=1), "after today")):
        problems = refused(
            clinic,
            lambda: record(clinic, EventIn(device_serial="NGP100", occurred_on=day, author="rn", data=WoundCheckData())),
        )
        assert problems["occurred_on"][0] == day.isoformat() and word in problems["occurred_on"][1]


def test_unknown_drug_model_serial_and_duplicates_are_refused(clinic):
    bad_drug = refill(program=PumpProgram(mode="simple_continuous", drugs=[DrugConcentration(drug="heroin", concentration_mg_per_ml=1)], dose_mg_per_day=1))
    problems = refused(
        clinic, lambda: record(clinic, EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 1, 1), author="rn", data=bad_drug))
    )
    assert problems["data.program.drugs.0.drug"][0] == "heroin"

    def add(device):
        with write_session(clinic) as s:
            services.add_device(session=s, device=device, author="rn", today=TODAY)

    problems = refused(clinic, lambda: add(DeviceIn(patient_mrn="MRN001", model="no-such-pump", serial="X1", implanted_on=dt.date(2025, 1, 1))))
    assert problems["model"][0] == "no-such-pump"
    problems = refused(clinic, lambda: add(DeviceIn(patient_mrn="MRN001", model="synchromed-ii-40", serial="NGP100", implanted_on=dt.date(2025, 1, 1))))
    assert problems["serial"][0] == "NGP100"

    def add_patient():
        with write_session(clinic) as s:
            services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN001", name="Other", birth_date=dt.date(1960, 1, 1)), author="rn")

    assert refused(clinic, add_patient)["mrn"][0] == "MRN001"


def test_zero_concentration_and_cap_kit_are_refused_by_the_record():
    with pytest.raises(services.InputError) as info:
        services.parse_event_data(
            "refill",
            {
                "volume_withdrawn_ml": 1,
                "volume_added_ml": 10,
                "reservoir_volume_after_ml": 10,
                "program": {"mode": "simple_continuous", "drugs": [{"drug": "morphine", "concentration_mg_per_ml": 0}], "dose_mg_per_day": 1},
            },
        )
    fields = {p.field: p.value for p in info.value.problems}
    assert fields == {"data.program.drugs.0.concentration_mg_per_ml": 0}
    with pytest.raises(services.InputError, match="CAP kit"):
        services.parse_event_data("refill", {**refill().model_dump(mode="json"), "kit": "cap"})


def test_amendment_keeps_original_and_void_hides_event(clinic):
    from devicelog.store import queries

    first = record(clinic, EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 10, 1), author="rn", data=refill()))
    with write_session(clinic) as s:
        services.amend_event(
            session=s, event_id=first, occurred_on=dt.date(2026, 10, 1), data=refill(volume_withdrawn_ml=4.0),
            reason="misread syringe", author="md", today=TODAY,
        )
    with read_session(clinic) as s:
        assert s.get(tables.EventRow, first).data["volume_withdrawn_ml"] == 3.0
        history = queries.history_by_serial(s, "NGP100")
    assert [e.data.volume_withdrawn_ml for e in history.events] == [4.0]
    assert history.events[0].amendment_reason == "misread syringe"
    with write_session(clinic) as s:
        services.void_event(session=s, event_id=first, reason="wrong patient", author="md")
    with read_session(clinic) as s:
        assert queries.history_by_serial(s, "NGP100").events == ()
        assert s.exec(select(func.count()).select_from(tables.EventRow)).one() == 3


def zico_refill(dose_mcg_per_day, **over):
    # Ziconotide 25 mcg/mL = 0.025 mg/mL, undiluted.
    return refill(
        program=PumpProgram(
            mode="simple_continuous",
            drugs=[DrugConcentration(drug="ziconotide", concentration_mg_per_ml=0.025)],
            dose_mg_per_day=dose_mcg_per_day / 1000,
        ),
        **over,
    )


def test_ziconotide_step_above_2_4_mcg_per_day_is_refused_at_a_visit(clinic):
    record(clinic, EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 10, 1), author="rn", data=zico_refill(2.4)))
    # 2.4 -> 6.0 mcg/day is a step of 3.6 mcg/day, above the 2.4 mcg/day limit of rule 6.
    problems = refused(
        clinic,
        lambda: record(clinic, EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 10, 10), author="rn", data=zico_refill(6.0))),
    )
    assert "data.program.dose_mg_per_day" in problems
    assert "2.4" in problems["data.program.dose_mg_per_day"][1]
    # 2.4 -> 4.8 mcg/day is a step of exactly 2.4 mcg/day, nine days later: allowed.
    record(clinic, EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 10, 10), author="rn", data=zico_refill(4.8)))


def test_possible_pocket_fill_needs_a_reason(clinic):
    # 20.0 mL injected but the pump was programmed with 18.0 mL: a 2.0 mL gap, above the
    # 0.5 mL tolerance (rule 9).
    mismatch = dict(volume_added_ml=20.0, reservoir_volume_after_ml=18.0)
    problems = refused(
        clinic,
        lambda: record(clinic, EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 10, 1), author="rn", data=refill(**mismatch))),
    )
    assert "rule 9" in problems["data.pocket_fill_reason"][1]
    record(
        clinic,
        EventIn(
            device_serial="NGP100", occurred_on=dt.date(2026, 10, 1), author="rn",
            data=refill(**mismatch, pocket_fill_reason="resistance on injection; aspirated, US check booked"),
        ),
    )


def _audited_changes(engine, action):
    """Every change of the audit entries with this action, in order, without the instants."""
    import json

    with read_session(engine) as s:
        payloads = s.exec(select(tables.AuditEntry.payload).where(tables.AuditEntry.action == action)
                          .order_by(tables.AuditEntry.id)).all()
    changes = []
    for payload in payloads:
        for c in json.loads(payload)["changes"]:
            for side in ("before", "after"):
                if c[side]:
                    c[side].pop("recorded_at", None)
            changes.append(c)
    return changes


def test_bulk_adds_check_audit_and_write_what_one_by_one_does(engine, other_engine):
    """services.add_patients / add_devices (the importer's) give each item the checks of
    add_patient / add_device in order, earlier items of the same list included, and
    audit the same changes."""
    patients = [
        (PatientIn(mrn="A-1", name="Ann", birth_date=dt.date(1950, 1, 1)), "rn.a"),
        (PatientIn(mrn="A-1", name="Dup", birth_date=dt.date(1951, 1, 1)), "rn.a"),
        (PatientIn(mrn="B-2", name="Ben", birth_date=dt.date(1960, 1, 1)), "rn.b"),
    ]

    def device(serial, mrn="A-1", replaces=None, on=dt.date(2024, 1, 1)):
        return DeviceIn(patient_mrn=mrn, model="synchromed-ii-40", serial=serial, implanted_on=on, replaces_serial=replaces)

    devices = [
        (device("S1"), "rn.a"),
        (device("S1"), "rn.a"),  # already registered (by the item before)
        (device("S9", mrn="NOPE"), "rn.a"),
        (device("S2", replaces="S1"), "rn.b"),
        (device("S3", replaces="S1"), "rn.b"),  # S1 was already replaced (by the item before)
        (device("S4", mrn="B-2", replaces="S2"), "rn.b"),  # S2 belongs to another patient
        (device("S5", on=TODAY + dt.timedelta(days=1)), "rn.a"),
        (device("S6", mrn="B-2"), "rn.a"),
    ]

    def outcome(result):
        return result.id if isinstance(result, (tables.Patient, tables.Device)) else [(p.field, p.message) for p in result]

    with write_session(engine) as s:
        bulk = [outcome(r) for r in services.add_patients(session=s, today=dt.date(2026, 11, 23), patients=patients)]
        bulk += [outcome(r) for r in services.add_devices(session=s, devices=devices, today=TODAY)]
    one_by_one = []
    with write_session(other_engine) as s:
        for p, author in patients:
            try:
                one_by_one.append(services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=p, author=author).id)
            except services.InputError as exc:
                one_by_one.append([(x.field, x.message) for x in exc.problems])
        for d, author in devices:
            try:
                one_by_one.append(services.add_device(session=s, device=d, author=author, today=TODAY).id)
            except services.InputError as exc:
                one_by_one.append([(x.field, x.message) for x in exc.problems])
    assert bulk == one_by_one
    assert [r for r in bulk if isinstance(r, list)] == [
        [("mrn", "a patient with this MRN already exists")],
        [("serial", "a device with this serial is already registered")],
        [("patient_mrn", "no patient has this MRN")],
        [("replaces_serial", "was already replaced")],
        [("replaces_serial", "belongs to another patient")],
        [("implanted_on", f"is after today ({TODAY})")],
    ]
    for action in ("add patient", "add device"):
        assert _audited_changes(engine, action) == _audited_changes(other_engine, action)
    replaced = [c for c in _audited_changes(engine, "add device") if c["before"]]
    assert [(c["before"]["status"], c["after"]["status"], c["after"]["replaced_by_id"]) for c in replaced] == [("active", "replaced", bulk[6])]
    from devicelog import transfer

    assert transfer.export_text(engine).replace(" ", "") .count("S") and counts(engine) == counts(other_engine)


@pytest.mark.parametrize(
    "born, message",
    [
        (dt.date(2030, 1, 1), "is after today (2026-11-23)"),
        (dt.date(2026, 11, 24), "is after today (2026-11-23)"),
        # 2026-11-23 − 1905-11-22 = 121 full years (the birthday has passed): over 120.
        (dt.date(1905, 11, 22), "gives an age of 121 years, more than the clinic's limit of 120 (setting max_age_years)"),
        (dt.date(1800, 1, 1), "is before 1900-01-01, the earliest date a record can have"),
    ],
)
def test_an_impossible_date_of_birth_is_refused(engine, born, message):
    # Issue 13 item 6: a patient born in 2030 could never have an implant recorded.
    def add():
        with write_session(engine) as s:
            services.add_patient(session=s, today=TODAY, patient=PatientIn(mrn="MRN9", name="Al Bo", birth_date=born), author="rn")

    problems = refused(engine, add)
    assert problems["birth_date"] == (born.isoformat(), message)


def test_the_oldest_plausible_patient_and_a_newborn_are_accepted(engine):
    # 2026-11-23 − 1906-11-23 = 120 years exactly: at the limit, accepted; born today: age 0.
    with write_session(engine) as s:
        for mrn, born in (("OLD", dt.date(1906, 11, 23)), ("NEW", TODAY)):
            services.add_patient(session=s, today=TODAY, patient=PatientIn(mrn=mrn, name="X Y", birth_date=born), author="rn")
    assert counts(engine)[0] == 2


def test_the_age_limit_is_a_setting(engine):
    from devicelog.settings import Settings

    with write_session(engine) as s:
        services.add_patient(session=s, today=TODAY, settings=Settings(max_age_years=125),
                             patient=PatientIn(mrn="OLD", name="X Y", birth_date=dt.date(1905, 11, 22)), author="rn")
    assert counts(engine)[0] == 1


def test_a_date_of_death_in_the_future_is_refused(engine):
    def add():
        with write_session(engine) as s:
            services.add_patient(session=s, today=TODAY, author="rn", patient=PatientIn(
                mrn="MRN9", name="Al Bo", birth_date=dt.date(1950, 1, 1), status="deceased", died_on=dt.date(2027, 1, 1)))

    assert refused(engine, add)["died_on"] == ("2027-01-01", "is after today (2026-11-23)")
