"""The clinician's history report, checked against a hand-built clinic with known values.

The clinic (``make_clinic``): Ann Lee (MRN001) has
- NGP100, SynchroMed II 20 mL, implanted 2025-01-05, replaced by NGP200 on 2025-06-01.
  Morphine 10 mg/mL at 2 mg/day = 0.2 mL/day, raised to 3 mg/day (0.3 mL/day) on 2025-03-21.
  Refills (expected residual worked by hand, see tests/test_ledger.py for the same arithmetic):
    2025-01-05 first fill 20 mL
    2025-02-04 30 d × 0.2 = 6.0 → expected 14.0; withdrawn first typed 16.3, amended to 13.6 → −0.40
    2025-03-06 expected 14.0; withdrawn 13.2 → −0.80
    2025-04-05 15 d × 0.2 + 15 d × 0.3 = 7.5 → expected 12.5; withdrawn 11.2 → −1.30 FLAG (> 1.0 mL)
    2025-05-05 30 d × 0.3 = 9.0, boluses 0.5 → expected 10.5; withdrawn 10.5 → 0.00
  Mean (−0.4 − 0.8 − 1.3 + 0) / 4 = −0.625 mL; 3 in a row less than expected → run flag.
  2025-05-20 interrogation: battery ERI.  2025-06-01 pump replacement.
- NGP200, SynchroMed II 40 mL, implanted 2025-06-01 (replaces NGP100), first fill 40 mL.
- SCS300, Abbott Proclaim XR (primary cell), implanted 2025-03-01.
  Programs: A 3.5 mA 210 µs 50 Hz tonic on E1−/E2+, then A 4.2 mA, 300 µs; program B burst added.
  Battery 100 % on 2025-03-01 and 90 % on 2025-09-01 (184 days): −10/184 %/day; the 10 % ERI
  level is 90 points down = 90 × 184 / 10 = 1656 days after 2025-03-01 = 2029-09-12
  (2025-03-01 + 1461 d = 2029-03-01, + 195 d = 2029-09-12).
  Impedances E1 520 Ω, E2 4500 Ω (open, > 4000 Ω), E3 180 Ω (short, < 250 Ω).
  Outcomes: 2025-04-01 NRS 6, oxycodone 40 mg/day × 1.5 = 60 MME; 2025-09-01 NRS 3,
  oxycodone 20 mg/day = 30 MME + fentanyl 12 mcg/h × 2.4 = 28.8 → 58.8 MME.
  An outcome logged on 2025-05-01 was voided ("wrong patient").
"""

import datetime as dt
import json

import pytest
from sqlalchemy import event as sa_event

from devicelog import services
from devicelog.clinic.records import (
    ContactImpedance,
    DeviceIn,
    DrugConcentration,
    EventIn,
    InterrogationData,
    OpioidDose,
    OutcomeData,
    PatientIn,
    ProgrammingData,
    PumpProgram,
    RefillData,
    ReinterventionData,
    StimProgram,
)
from devicelog.reports import history as rh
from devicelog.settings import Settings
from devicelog.store.db import read_session, write_session
from tests.conftest import TODAY

D = dt.date


def morphine(dose):
    return PumpProgram(mode="simple_continuous", drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=10)], dose_mg_per_day=dose)


def refill(withdrawn, dose=2.0, bolus=0.0, volume=20.0):
    return RefillData(
        volume_withdrawn_ml=withdrawn,
        volume_added_ml=volume,
        reservoir_volume_after_ml=volume,
        program=morphine(dose),
        bolus_volume_since_last_fill_ml=bolus,
    )


def stim(name="A", amp=3.5, pw=210, hz=50, waveform="tonic", contacts=None, hi=None):
    return StimProgram(
        name=name,
        contacts=contacts or {"E1": "-", "E2": "+", "E3": "off"},
        amplitude_ma=amp,
        pulse_width_us=pw,
        frequency_hz=hz,
        waveform=waveform,
        patient_max_amplitude=hi,
    )


def add(engine, serial, on, data, author="rn"):
    with write_session(engine) as s:
        return services.record_event(session=s, event=EventIn(device_serial=serial, occurred_on=on, author=author, data=data), today=TODAY).id


def add_device(engine, **values):
    with write_session(engine) as s:
        return services.add_device(session=s, device=DeviceIn(patient_mrn="MRN001", **values), author="rn", today=TODAY).id


def make_clinic(engine):
    with write_session(engine) as s:
        services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN001", name="Ann Lee", birth_date=D(1950, 1, 2)), author="rn")
    add_device(engine, model="synchromed-ii-20", serial="NGP100", implanted_on=D(2025, 1, 5))
    add_device(engine, model="abbott-proclaim-xr", serial="SCS300", implanted_on=D(2025, 3, 1))
    ids = {}
    add(engine, "NGP100", D(2025, 1, 5), refill(0.0))
    ids["typo"] = add(engine, "NGP100", D(2025, 2, 4), refill(16.3))
    add(engine, "NGP100", D(2025, 3, 6), refill(13.2))
    add(engine, "NGP100", D(2025, 3, 21), ProgrammingData(pump_program=morphine(3.0), reason="pain up"), author="dr.kim")
    add(engine, "NGP100", D(2025, 4, 5), refill(11.2, dose=3.0))
    add(engine, "NGP100", D(2025, 5, 5), refill(10.5, dose=3.0, bolus=0.5))
    add(engine, "NGP100", D(2025, 5, 20), InterrogationData(battery_state="eri", alarms=[{"code": "eri"}]))
    add(engine, "NGP100", D(2025, 6, 1), ReinterventionData(reintervention="pump_replacement", reason="ERI"))
    with write_session(engine) as s:
        services.amend_event(
            session=s, event_id=ids["typo"], occurred_on=D(2025, 2, 4), data=refill(13.6), reason="transposed digits", author="rn2", today=TODAY
        )
    add_device(engine, model="synchromed-ii-40", serial="NGP200", implanted_on=D(2025, 6, 1), replaces_serial="NGP100")
    add(engine, "NGP200", D(2025, 6, 1), refill(0.0, dose=3.0, volume=40.0))

    add(engine, "SCS300", D(2025, 3, 1), ProgrammingData(stim_programs=[stim()], active_program="A", reason="implant"), author="rep")
    add(engine, "SCS300", D(2025, 3, 1), InterrogationData(battery_percent=100))
    add(engine, "SCS300", D(2025, 4, 1), OutcomeData(pain_nrs=6, opioids=[OpioidDose(opioid="oxycodone", dose_mg_per_day=40)]))
    ids["void"] = add(engine, "SCS300", D(2025, 5, 1), OutcomeData(pain_nrs=9, oral_mme_mg_per_day=500))
    add(
        engine,
        "SCS300",
        D(2025, 6, 15),
        ProgrammingData(
            stim_programs=[stim(amp=4.2, pw=300, hi=6.0), stim("B", amp=2.0, pw=1000, hz=40, waveform="burst")],
            active_program="B",
            reason="coverage",
        ),
        author="dr.kim",
    )
    add(
        engine,
        "SCS300",
        D(2025, 9, 1),
        InterrogationData(
            battery_percent=90,
            impedances=[
                ContactImpedance(contact="E1", impedance_ohm=520),
                ContactImpedance(contact="E2", impedance_ohm=4500),
                ContactImpedance(contact="E3", impedance_ohm=180),
            ],
        ),
    )
    add(
        engine,
        "SCS300",
        D(2025, 9, 1),
        OutcomeData(
            pain_nrs=3,
            opioids=[OpioidDose(opioid="oxycodone", dose_mg_per_day=20), OpioidDose(opioid="fentanyl", patch_mcg_per_h=12)],
        ),
    )
    with write_session(engine) as s:
        services.void_event(session=s, event_id=ids["void"], reason="wrong patient", author="rn2")
    return ids


@pytest.fixture
def clinic(engine):
    make_clinic(engine)
    return engine


def report(engine, serial="NGP100", whole=False, settings=None):
    with read_session(engine) as s:
        return rh.load_report(s, serial, settings=settings or Settings(), as_of=TODAY, whole_patient=whole)


def test_device_report_timeline_in_order_with_amendment_beside(clinic):
    r = report(clinic)
    assert [d.serial for d in r.devices] == ["NGP100"]
    assert r.devices[0].replaced_by_serial == "NGP200" and r.devices[0].status == "replaced"
    dates = [e.occurred_on for e in r.timeline]
    assert dates == sorted(dates) and len(r.timeline) == 8
    amended = next(e for e in r.timeline if e.occurred_on == D(2025, 2, 4))
    assert amended.status == "amended"
    assert "withdrawn 13.6 mL" in amended.summary
    original, correction = amended.versions
    assert original.reason is None and "withdrawn 16.3 mL" in original.summary
    assert correction.reason == "transposed digits" and correction.author == "rn2"
    assert not correction.voided


def test_filter_by_kind(clinic):
    r = report(clinic)
    refills = r.timeline_of(["refill"])
    assert len(refills) == 5 and {e.kind for e in refills} == {"refill"}
    assert r.kinds == ["refill", "interrogation", "programming", "reintervention"]
    assert len(r.timeline_of(None)) == 8


def test_ledger_of_the_report(clinic):
    (ledger,) = report(clinic).ledgers
    assert ledger.limit_ml == 1.0 and ledger.reservoir_ml == 20
    assert [r.discrepancy_ml for r in ledger.rows[1:]] == pytest.approx([-0.4, -0.8, -1.3, 0.0])
    assert [r.expected_residual_ml for r in ledger.rows[1:]] == pytest.approx([14.0, 14.0, 12.5, 10.5])
    assert ledger.trend.mean_ml == pytest.approx(-0.625) and ledger.trend.flagged
    assert ledger.rows[1].author == "rn"  # who refilled, not who corrected the entry


def test_patient_view_covers_every_device_linked(clinic):
    r = report(clinic, "NGP200", whole=True)
    assert [d.serial for d in r.devices] == ["NGP100", "SCS300", "NGP200"]
    new = r.devices[2]
    assert new.replaces_serial == "NGP100"
    assert {e.device_serial for e in r.timeline} == {"NGP100", "NGP200", "SCS300"}
    assert len(r.timeline) == 8 + 1 + 7  # the voided outcome stays, marked
    assert [l.device_serial for l in r.ledgers] == ["NGP100", "NGP200"]
    voided = next(e for e in r.timeline if e.status == "entered in error")
    assert voided.occurred_on == D(2025, 5, 1) and voided.versions[-1].voided
    assert voided.versions[-1].reason == "wrong patient"


def test_programming_history_diffs_with_units_and_authors(clinic):
    r = report(clinic, "SCS300")
    changes = r.programming
    first = changes[0]
    assert first.initial and first.target == "program A" and first.author == "rep"
    fields = {c.field: (c.before, c.after) for c in first.changes}
    assert fields["amplitude"] == ("—", "3.5 mA")
    assert fields["pulse width"] == ("—", "210 µs")
    assert fields["contacts"] == ("—", "E1− E2+ E3 off")
    assert "group" not in fields  # no group before, none after: nothing to show
    later = [c for c in changes if c.occurred_on == D(2025, 6, 15)]
    by_target = {c.target: {f.field: (f.before, f.after) for f in c.changes} for c in later}
    assert by_target["program A"] == {
        "amplitude": ("3.5 mA", "4.2 mA"),
        "pulse width": ("210 µs", "300 µs"),
        "patient amplitude limits": ("none", "max 6 mA"),
    }
    assert by_target["program B"]["waveform"] == ("—", "burst")
    assert by_target["program B"]["frequency"] == ("—", "40 Hz")
    assert by_target["active program"] == {"active program": ("A", "B")}
    assert all(c.author == "dr.kim" and c.reason == "coverage" for c in later)


def test_pump_programming_history(clinic):
    changes = report(clinic).programming
    # the first refill sets the program; unchanged refills are not listed; the change and the refill after it are.
    assert [(c.occurred_on, c.source) for c in changes] == [(D(2025, 1, 5), "Refill"), (D(2025, 3, 21), "Programming change")]
    fields = {f.field: (f.before, f.after) for f in changes[1].changes}
    assert fields == {"morphine dose": ("2 mg/day", "3 mg/day"), "daily volume": ("0.200 mL/day", "0.300 mL/day")}
    assert changes[1].author == "dr.kim" and changes[1].reason == "pain up"


def test_trends_battery_projection_and_mme(clinic):
    r = report(clinic, "SCS300")
    (trends,) = r.device_trends
    battery = next(s for s in trends.series if s.key == "battery_percent")
    assert [(p.on, p.value) for p in battery.points] == [(D(2025, 3, 1), 100), (D(2025, 9, 1), 90)]
    assert any("2029-09-12" in line for line in trends.battery_outlook)
    pain = next(s for s in r.patient_series if s.key == "pain_nrs")
    assert [(p.on, p.value) for p in pain.points] == [(D(2025, 4, 1), 6), (D(2025, 9, 1), 3)]  # the voided 9 is gone
    mme = next(s for s in r.patient_series if s.key == "oral_mme_mg_per_day")
    assert [p.value for p in mme.points] == pytest.approx([60.0, 58.8])


def test_it_morphine_reference_series_is_labelled(clinic):
    (trends,) = report(clinic, settings=Settings(oral_to_it_morphine_ratio=100)).device_trends
    ref = next(s for s in trends.series if s.key == "it_morphine_oral_reference_mg_per_day")
    # 2 mg/day IT × 100 = 200 mg/day; 3 mg/day × 100 = 300 mg/day.
    assert sorted({p.value for p in ref.points}) == [200.0, 300.0]
    assert ref.label == "reference only, not for dosing"
    reservoir = next(s for s in trends.series if s.key == "reservoir_ml")
    assert reservoir.points[:2] == [
        reservoir.points[0].__class__(D(2025, 1, 5), 0.0, reservoir.points[0].event_id, "withdrawn at refill"),
        reservoir.points[1].__class__(D(2025, 1, 5), 20.0, reservoir.points[0].event_id, "after refill"),
    ]


def test_text_report(clinic):
    text = rh.render_text(report(clinic, "NGP200", whole=True))
    assert "DEVICE HISTORY — Ann Lee (MRN MRN001)" in text
    assert "NGP100  Medtronic SynchroMed II 8637-20 (IT pump)" in text and "→ replaced by NGP200" in text
    assert "[AMENDED]" in text and "transposed digits" in text
    assert "[ENTERED IN ERROR]" in text and "wrong patient" in text
    assert "E2 4500 Ω open (> 4000 Ω)" in text and "E3 180 Ω short (< 250 Ω)" in text
    assert "pulse width: 210 µs → 300 µs" in text
    assert "-1.30" in text and "FLAG: over-delivery, leak or diversion" in text
    assert "3 consecutive refills less than expected" in text
    assert "reference only, not for dosing" in text
    assert "Pain NRS (/10)" in text


def test_text_filtered_by_kind(clinic):
    text = rh.render_text(report(clinic), kinds=["interrogation"])
    timeline = text.split("TIMELINE")[1].split("PROGRAMMING HISTORY")[0]
    assert "Interrogation" in timeline and "Refill" not in timeline


def test_json_report_round_trips(clinic):
    data = json.loads(rh.render_json(report(clinic, "NGP200", whole=True)))
    assert data["format"] == "devicelog.history/1"
    assert data["patient_mrn"] == "MRN001"
    ledger = data["ledgers"][0]
    assert [row["discrepancy_ml"] for row in ledger["rows"]][1:] == pytest.approx([-0.4, -0.8, -1.3, 0.0])
    assert ledger["trend"]["flagged"] is True and "mean discrepancy -0.62 mL" in ledger["trend"]["text"]
    amended = next(e for e in data["timeline"] if e["status"] == "amended")
    assert amended["data"]["volume_withdrawn_ml"] == 13.6
    assert amended["versions"][0]["summary"].startswith("withdrawn 16.3 mL")


def test_unknown_serial(clinic):
    with pytest.raises(LookupError, match="NOPE"):
        report(clinic, "NOPE")


def count_queries(engine, action):
    seen = []

    def before(conn, cursor, statement, *args):
        seen.append(statement)

    sa_event.listen(engine, "before_cursor_execute", before)
    try:
        action()
    finally:
        sa_event.remove(engine, "before_cursor_execute", before)
    return len([s for s in seen if s.lstrip().upper().startswith("SELECT")])


def test_query_count_does_not_grow_with_events(engine):
    """A 3,000-event history is read with the same few queries as a 10-event one."""
    from devicelog.store import tables

    make_clinic(engine)
    small = count_queries(engine, lambda: report(engine, "SCS300"))
    with write_session(engine) as s:
        device = s.exec(tables.Device.__table__.select().where(tables.Device.serial == "SCS300")).first()
        for i in range(3000):
            s.add(
                tables.EventRow(
                    device_id=device.id,
                    kind="outcome",
                    occurred_on=D(2025, 3, 2) + dt.timedelta(days=i % 600),
                    author="bulk",
                    data=OutcomeData(pain_nrs=i % 11).model_dump(mode="json"),
                )
            )
    large_report = []
    large = count_queries(engine, lambda: large_report.append(report(engine, "SCS300")))
    assert large == small
    assert len(large_report[0].timeline) == 3000 + 7
