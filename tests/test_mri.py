"""Rule 13: the pre-MRI checklist and the post-MRI interrogation, values worked by hand.

Reference (domain.md): rule 13 "Prometra or any pump before MRI: show 'empty pump
(20/40 mL) and give alternative analgesia' as a checklist.  Log the post-MRI
interrogation."  1.1: Prometra must be emptied (20/40 mL); SynchroMed's motor stalls in
the magnet (catalogue note).  2 (MRI): stimulators: MR-Conditional label, eligibility,
MRI mode.  Rule 1: daily volume = dose ÷ concentration; rule 8: expected residual =
volume after fill − daily volume × days.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlmodel import func, select

from devicelog import services
from devicelog.clinic import mri
from devicelog.clinic.catalogue import shipped_catalogue
from devicelog.clinic.history import DeviceHistory, DeviceInfo, PatientInfo
from devicelog.clinic.records import (
    DeviceIn,
    DrugConcentration,
    Event,
    EventIn,
    InterrogationData,
    PatientIn,
    ProgrammingData,
    PumpProgram,
    RefillData,
    ReinterventionData,
)
from devicelog.problems import InputError
from devicelog.store import audit, queries, tables
from devicelog.store.db import read_session, write_session
from tests.conftest import TODAY, user_args

D = dt.date
CAT = shipped_catalogue()
DRUGS = {d.code: d for d in CAT.drugs}


def program(dose, *drugs, mode="simple_continuous", flow=None):
    return PumpProgram(
        mode=mode,
        drugs=[DrugConcentration(drug=code, concentration_mg_per_ml=c) for code, c in drugs],
        dose_mg_per_day=dose,
        flow_rate_ml_per_day=flow,
    )


def fill(volume, prog):
    return RefillData(volume_withdrawn_ml=0.0, volume_added_ml=volume, reservoir_volume_after_ml=volume, program=prog)


def history(model_code, *dated, status="active", goals="active_treatment"):
    events = tuple(
        Event(id=i + 1, device_id=1, occurred_on=on, author="rn",
              recorded_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=i), data=data)
        for i, (on, data) in enumerate(dated)
    )
    return DeviceHistory(
        patient=PatientInfo(id=1, mrn="M1", name="Ann Lee", birth_date=D(1950, 1, 1), goals_of_care=goals),
        device=DeviceInfo(id=1, serial="S1", model=CAT.device_model(model_code), implanted_on=D(2025, 1, 1), status=status),
        events=events,
    )


def steps(checklist):
    return {s.key: s for s in checklist.steps}


def checked(on, mri_on):
    return (on, ReinterventionData(reintervention="pre_mri_checklist", mri_on=mri_on, reason=mri.pre_mri_reason(mri_on, "withdrew 20 mL")))


def interrogated(on, post_mri_on=None):
    if post_mri_on is None:
        return (on, InterrogationData(reservoir_volume_ml=0.0))
    return (on, InterrogationData(reservoir_volume_ml=0.0, reason="post_mri", mri_on=post_mri_on))


# ----------------------------------------------------------------------------- the checklist


def test_prometra_40_is_emptied_with_its_own_figures():
    # Morphine 10 mg/mL at 3 mg/day = 0.3 mL/day (rule 1).  Filled to 40 mL on 2026-10-24;
    # 2026-10-24 → 2026-11-23 is 30 days: 30 × 0.3 = 9.0 mL delivered → 31.0 mL expected (rule 8).
    h = history("prometra-ii-40", (D(2026, 10, 24), fill(40.0, program(3.0, ("morphine", 10)))))
    c = mri.checklist(h, DRUGS, TODAY, D(2026, 11, 25))
    s = steps(c)
    assert c.applies and c.family == "prometra" and c.reservoir_ml == 40.0
    assert c.expected_now_ml == pytest.approx(31.0)
    assert list(s)[0] == "empty_pump" and "empty_pump_decide" not in s
    assert s["empty_pump"].figures == {"reservoir_ml": 40.0, "expected_now_ml": 31.0}
    assert "EMPTY THE PUMP before the MRI on 2026-11-25" in s["empty_pump"].text
    assert "up to 40.0 mL" in s["empty_pump"].text and "about 31.0 mL" in s["empty_pump"].text
    assert "rule 13" in s["empty_pump"].source
    assert "Morphine (Infumorph) 10 mg/mL, 3 mg/day" in s["alternative_analgesia"].text
    assert s["opioid_lapse"].level == "warn"  # morphine is an opioid
    assert "refill and reprogram" in s["post_mri_interrogation"].text
    [drug] = c.drugs
    assert (drug.code, drug.dose_mg_per_day, drug.concentration_mg_per_ml, drug.is_opioid) == ("morphine", 3.0, 10.0, True)


def test_prometra_20_first_generation_is_mr_unsafe_and_says_so_first():
    h = history("prometra-20", (D(2026, 11, 13), fill(20.0, program(1.0, ("morphine", 10)))))
    c = mri.checklist(h, DRUGS, TODAY)
    first = c.steps[0]
    assert first.key == "mr_unsafe" and first.level == "warn" and "FSN2019" in first.source
    # 10 days × 0.1 mL/day = 1.0 mL delivered from 20 mL → 19.0 mL.
    assert steps(c)["empty_pump"].figures == {"reservoir_ml": 20.0, "expected_now_ml": 19.0}
    assert "up to 20.0 mL" in steps(c)["empty_pump"].text


def test_synchromed_ziconotide_in_micrograms_and_the_stalled_rotor():
    # Ziconotide 25 mcg/mL (0.025 mg/mL) at 7.2 mcg/day (0.0072 mg/day): 0.288 mL/day.
    # Filled to 20 mL on 2026-11-13: 10 days × 0.288 = 2.88 mL → 17.12 mL expected.
    h = history("synchromed-ii-20", (D(2026, 11, 13), fill(20.0, program(0.0072, ("ziconotide", 0.025)))))
    c = mri.checklist(h, DRUGS, TODAY)
    s = steps(c)
    assert c.family == "synchromed"
    assert "empty_pump" not in s and "rule 13 lists it for any pump" in s["empty_pump_decide"].text
    assert c.expected_now_ml == pytest.approx(17.12)
    assert "Ziconotide (PRIALT) 25 mcg/mL, 7.2 mcg/day" in s["alternative_analgesia"].text
    assert "opioid_lapse" not in s  # ziconotide is not an opioid
    assert s["rotor_stall"].level == "note"
    assert "confirm the motor restarted" in s["post_mri_interrogation"].text


def test_admixture_lists_every_drug_at_its_daily_dose():
    # Morphine 10 mg/mL at 2 mg/day = 0.2 mL/day; bupivacaine 5 mg/mL × 0.2 = 1 mg/day;
    # clonidine 0.05 mg/mL (50 mcg/mL) × 0.2 = 0.01 mg/day = 10 mcg/day.
    prog = program(2.0, ("morphine", 10), ("bupivacaine", 5), ("clonidine", 0.05))
    c = mri.checklist(history("synchromed-ii-40", (D(2026, 11, 1), fill(40.0, prog))), DRUGS, TODAY)
    text = steps(c)["alternative_analgesia"].text
    assert "Morphine (Infumorph) 10 mg/mL, 2 mg/day" in text
    assert "Bupivacaine 5 mg/mL, 1 mg/day" in text
    assert "Clonidine 50 mcg/mL, 10 mcg/day" in text
    assert [d.dose_mg_per_day for d in c.drugs] == pytest.approx([2.0, 1.0, 0.01])


def test_a_programming_change_after_the_fill_gives_the_dose_and_the_volume():
    # 20 mL on 2026-10-24 at 2 mg/day (0.2 mL/day), raised to 4 mg/day (0.4 mL/day) on 2026-11-03:
    # 10 × 0.2 + 20 × 0.4 = 10.0 mL delivered → 10.0 mL expected; the scan interrupts 4 mg/day.
    h = history(
        "prometra-ii-20",
        (D(2026, 10, 24), fill(20.0, program(2.0, ("morphine", 10)))),
        (D(2026, 11, 3), ProgrammingData(pump_program=program(4.0, ("morphine", 10)), reason="pain")),
    )
    c = mri.checklist(h, DRUGS, TODAY)
    assert c.expected_now_ml == pytest.approx(10.0)
    assert [d.dose_mg_per_day for d in c.drugs] == [4.0]


def test_constant_flow_pump_follows_rule_13_and_has_no_telemetry():
    # Codman 3000: 1.0 mL/day of morphine 10 mg/mL = 10 mg/day.  30 mL on 2026-11-13:
    # 10 days × 1.0 = 10 mL → 20.0 mL expected.
    prog = program(None, ("morphine", 10), mode="constant_flow", flow=1.0)
    c = mri.checklist(history("codman-3000-30", (D(2026, 11, 13), fill(30.0, prog))), DRUGS, TODAY)
    s = steps(c)
    assert c.family == "constant_flow" and c.reservoir_ml == 30.0 and c.expected_now_ml == pytest.approx(20.0)
    assert "constant-flow" in s["empty_pump_decide"].text
    assert "Morphine (Infumorph) 10 mg/mL, 10 mg/day" in s["alternative_analgesia"].text
    assert "no telemetry" in s["post_mri_interrogation"].text


def test_a_pump_without_a_refill_says_the_dose_is_not_known():
    c = mri.checklist(history("synchromed-ii-40"), DRUGS, TODAY)
    s = steps(c)
    assert c.expected_now_ml is None and c.drugs == ()
    assert s["alternative_analgesia"].level == "warn" and "not known" in s["alternative_analgesia"].text
    assert "no refill logged" in s["empty_pump_decide"].text


def test_stimulators_get_the_reference_mri_line_never_nothing():
    c = mri.checklist(history("medtronic-intellis"), DRUGS, TODAY)
    assert not c.applies and c.family == "stimulator" and c.post_mri == ()
    assert list(steps(c)) == ["mr_conditional", "eligibility", "mri_mode", "outside_rule_13"]
    assert "MRI mode" in steps(c)["mri_mode"].text
    pns = mri.checklist(history("spr-sprint-pns"), DRUGS, TODAY)
    assert pns.steps[0].key == "mr_unsafe" and "remove before MRI" in pns.steps[0].text
    assert "FSN" not in pns.steps[0].source  # the Prometra notice is not this device's


# ----------------------------------------------------------------------------- the post-MRI interrogation


def test_typed_fields_are_read_and_checked_by_name():
    e = lambda data: Event(id=1, device_id=1, occurred_on=TODAY, author="rn",  # noqa: E731
                           recorded_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), data=data)
    assert mri.checklist_mri_date(e(checked(TODAY, D(2026, 11, 25))[1])) == D(2026, 11, 25)
    assert mri.post_mri_date(e(interrogated(TODAY, D(2026, 11, 25))[1])) == D(2026, 11, 25)
    assert mri.post_mri_date(e(interrogated(TODAY)[1])) is None
    # The text markers of the first version are not read: such a record is a plain "other".
    legacy = ReinterventionData(reintervention="other", reason="Pre-MRI checklist (rule 13): MRI on 2026-11-25")
    assert mri.checklist_mri_date(e(legacy)) is None
    assert mri.post_mri_date(e(InterrogationData(notes="Post-MRI interrogation (rule 13): MRI on 2026-11-25"))) is None

    refusals = [
        (ReinterventionData, {"reintervention": "pre_mri_checklist", "reason": "x"}, "mri_on: a pre-MRI checklist"),
        (ReinterventionData, {"reintervention": "other", "reason": "x", "mri_on": "2026-11-25"},
         "mri_on 2026-11-25 is only for reintervention pre_mri_checklist, not other"),
        (InterrogationData, {"reason": "post_mri"}, "mri_on: a post-MRI interrogation (reason post_mri)"),
        (InterrogationData, {"mri_on": "2026-11-25"}, "mri_on 2026-11-25 is only for a post-MRI interrogation (reason post_mri, not routine)"),
        (InterrogationData, {"reason": "after_mri", "mri_on": "2026-11-25"}, "Input should be 'routine' or 'post_mri'"),
    ]
    for model, values, message in refusals:
        with pytest.raises(InputError) as refused:
            services.validate(model, values, "data")
        [problem] = refused.value.problems
        assert problem.field.startswith("data") and message in problem.message, problem


def test_outstanding_until_an_interrogation_on_or_after_the_mri():
    mri_on = D(2026, 11, 20)
    # Neither the interrogation the day before the scan nor a routine one on the MRI day
    # (it may be the read before the scan) answers the checklist.
    h = history("synchromed-ii-20", checked(D(2026, 11, 18), mri_on), interrogated(D(2026, 11, 19)), interrogated(mri_on))
    [post] = mri.outstanding_post_mri(h)
    assert post.mri_on == mri_on and post.due_on == mri_on
    assert post.status(D(2026, 11, 19)) == "planned"
    assert post.status(mri_on) == "due"
    assert post.status(TODAY) == "overdue"
    assert post.text(TODAY).endswith("overdue by 3 days")
    assert post.text(D(2026, 11, 21)).endswith("overdue by 1 day")

    done = history("synchromed-ii-20", checked(D(2026, 11, 18), mri_on), interrogated(D(2026, 11, 21), mri_on))
    assert mri.outstanding_post_mri(done) == []
    [post] = mri.post_mri_interrogations(done)
    assert post.status(TODAY) == "done" and post.answered_on == D(2026, 11, 21) and post.answered_by_event_id == 2
    same_day = history("synchromed-ii-20", checked(D(2026, 11, 18), mri_on), interrogated(mri_on, mri_on))
    assert mri.outstanding_post_mri(same_day) == []
    routine_after = history("synchromed-ii-20", checked(D(2026, 11, 18), mri_on), interrogated(D(2026, 11, 21)))
    assert mri.outstanding_post_mri(routine_after) == []  # the pump was read after the scan

    reprogrammed = history("prometra-ii-20", checked(D(2026, 11, 18), mri_on),
                           (mri_on, ReinterventionData(reintervention="post_mri_reprogramming", reason="refilled")))
    assert mri.outstanding_post_mri(reprogrammed) == []


def test_one_entry_per_mri_date_and_none_for_a_device_out_of_service_or_a_stimulator():
    two = history("prometra-ii-40", checked(D(2026, 11, 1), D(2026, 11, 5)), checked(D(2026, 11, 2), D(2026, 11, 5)),
                  checked(D(2026, 11, 10), D(2026, 11, 25)))
    assert [p.mri_on for p in mri.post_mri_interrogations(two)] == [D(2026, 11, 5), D(2026, 11, 25)]
    assert mri.outstanding_post_mri(history("prometra-ii-40", checked(D(2026, 11, 1), D(2026, 11, 5)), status="explanted")) == []
    assert mri.post_mri_interrogations(history("medtronic-intellis", checked(D(2026, 11, 1), D(2026, 11, 5)))) == []


# ----------------------------------------------------------------------------- the records, in the database


@pytest.fixture
def clinic(engine):
    with write_session(engine) as s:
        services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN001", name="Ann Lee", birth_date=D(1950, 1, 2)), author="rn")
        for model, serial in (("prometra-ii-40", "PRO40"), ("medtronic-intellis", "SCS1")):
            services.add_device(session=s, device=DeviceIn(patient_mrn="MRN001", model=model, serial=serial,
                                                           implanted_on=D(2025, 1, 5)), author="rn", today=TODAY)
        services.record_event(session=s, event=EventIn(device_serial="PRO40", occurred_on=D(2026, 10, 24), author="rn",
                                                       data=fill(40.0, program(3.0, ("morphine", 10)))), today=TODAY)
    return engine


def event_count(engine):
    with read_session(engine) as s:
        return s.exec(select(func.count()).select_from(tables.EventRow)).one()


def outstanding(engine, serial="PRO40"):
    with read_session(engine) as s:
        return mri.outstanding_post_mri(queries.history_by_serial(s, serial))


def test_record_the_checklist_then_log_the_post_mri_interrogation(clinic):
    from devicelog.commands.mri import log_interrogation, record_checklist

    mri_on = D(2026, 11, 20)
    with write_session(clinic) as s:
        row = record_checklist(s, serial="PRO40", mri_on=mri_on, note="withdrew 31.0 mL; oral morphine",
                               author="rn", today=TODAY, occurred_on=D(2026, 11, 19))
    assert row.kind == "reintervention" and row.occurred_on == D(2026, 11, 19)
    assert (row.data["reintervention"], row.data["mri_on"]) == ("pre_mri_checklist", "2026-11-20")
    assert row.data["reason"] == "Pre-MRI checklist (rule 13) for the MRI on 2026-11-20; withdrew 31.0 mL; oral morphine"
    [post] = outstanding(clinic)
    assert post.mri_on == mri_on and post.status(TODAY) == "overdue"

    before = event_count(clinic)
    with pytest.raises(InputError) as refused, write_session(clinic) as s:
        log_interrogation(s, serial="PRO40", mri_on=mri_on, occurred_on=D(2026, 11, 19), values={}, author="rn", today=TODAY)
    [problem] = refused.value.problems
    assert (problem.field, problem.value) == ("occurred_on", "2026-11-19") and "before the MRI" in problem.message
    with pytest.raises(InputError) as refused, write_session(clinic) as s:
        log_interrogation(s, serial="PRO40", mri_on=mri_on, occurred_on=mri_on, values={"reservoir_volume_ml": 41.0},
                          author="rn", today=TODAY)
    assert refused.value.problems[0].field == "data.reservoir_volume_ml"
    assert event_count(clinic) == before  # refusals leave the database as it was

    with write_session(clinic) as s:
        row = log_interrogation(s, serial="PRO40", mri_on=mri_on, occurred_on=D(2026, 11, 21),
                                values={"reservoir_volume_ml": 0.0, "alarms": [{"code": "empty_reservoir"}], "notes": "refill booked"},
                                author="rn2", today=TODAY)
    assert row.kind == "interrogation" and row.author == "rn2"
    assert (row.data["reason"], row.data["mri_on"], row.data["notes"]) == ("post_mri", "2026-11-20", "refill booked")
    assert outstanding(clinic) == []
    report = audit.verify(clinic)
    assert report.ok, report.problems
    # The interrogation is an ordinary one: its critical alarm is a same-day task (rule 12).
    from devicelog.store.due import device_forecast
    from devicelog.settings import Settings

    with read_session(clinic) as s:
        device = queries.device_by_serial(s, "PRO40")
        forecast = device_forecast(s, device_id=device.id, settings=Settings())
    assert any(i.code == "alarm_empty_reservoir" and i.due_on == D(2026, 11, 21) for i in forecast.items)


def test_an_amended_mri_date_moves_the_outstanding_item_and_a_void_removes_it(clinic):
    from devicelog.commands.mri import record_checklist

    with write_session(clinic) as s:
        row = record_checklist(s, serial="PRO40", mri_on=D(2026, 11, 20), note="", author="rn", today=TODAY,
                               occurred_on=D(2026, 11, 19))
        first = row.id
    with write_session(clinic) as s:
        services.amend_event(session=s, event_id=first, occurred_on=TODAY,
                             data=ReinterventionData(reintervention="pre_mri_checklist", mri_on=D(2026, 11, 27),
                                                     reason=mri.pre_mri_reason(D(2026, 11, 27))),
                             reason="MRI moved", author="rn", today=TODAY)
    assert [p.mri_on for p in outstanding(clinic)] == [D(2026, 11, 27)]
    with write_session(clinic) as s:
        services.void_event(session=s, event_id=first, reason="MRI cancelled", author="rn")
    assert outstanding(clinic) == []
    with read_session(clinic) as s:
        kept = s.exec(select(tables.EventRow).where(tables.EventRow.kind == "reintervention")).all()
    assert len(kept) == 3  # the original, its amendment, its void: nothing edited in place


def test_a_stimulator_has_nothing_to_record(clinic):
    from devicelog.commands.mri import record_checklist

    before = event_count(clinic)
    with pytest.raises(InputError) as refused, write_session(clinic) as s:
        record_checklist(s, serial="SCS1", mri_on=D(2026, 11, 20), note="", author="rn", today=TODAY)
    assert refused.value.problems[0].field == "serial" and "not a pump" in refused.value.problems[0].message
    # The store refuses both records for a stimulator too (an import, another form).
    for data in (ReinterventionData(reintervention="pre_mri_checklist", mri_on=D(2026, 11, 20), reason="x"),
                 InterrogationData(reason="post_mri", mri_on=D(2026, 11, 20))):
        with pytest.raises(InputError) as refused, write_session(clinic) as s:
            services.record_event(session=s, event=EventIn(device_serial="SCS1", occurred_on=D(2026, 11, 20), author="rn", data=data), today=TODAY)
        [problem] = refused.value.problems
        assert problem.field in ("data.reintervention", "data.reason") and "not a pump" in problem.message
    assert event_count(clinic) == before


# ----------------------------------------------------------------------------- the command


def test_cli_json_and_text(clinic, db_url, capsys):
    from devicelog.cli import main

    assert main(["--db", db_url, "mri", "PRO40", "--mri-on", "2026-11-25", "--as-of", "2026-11-23", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rule"] == "rule 13" and data["applies"] is True and data["mri_on"] == "2026-11-25"
    assert data["reservoir_ml"] == 40.0 and data["expected_now_ml"] == pytest.approx(31.0)
    assert [s["key"] for s in data["steps"]] == ["empty_pump", "alternative_analgesia", "opioid_lapse", "post_mri_interrogation"]
    assert data["drugs"][0]["dose_per_day"] == "3 mg/day"

    assert main(["--db", db_url, "mri", "SCS1", "--as-of", "2026-11-23"]) == 0
    out = capsys.readouterr().out
    assert "outside rule 13" in out and "MRI mode" in out

    assert main(["--db", db_url, "mri", "NOPE"]) == 1
    assert "no device has this serial" in capsys.readouterr().err
    assert main(["--db", db_url, "mri", "PRO40", "--record-checklist"]) == 2  # needs --mri-on
    assert main(["--db", db_url, *user_args("rn"), "mri", "PRO40", "--log-interrogation", "--mri-on", "2026-11-20",
                 "--reservoir-ml", "abc"]) == 1
    assert "reservoir_ml = 'abc': is not a number in mL" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the TUI


async def test_tui_checklist_record_and_post_mri_interrogation(clinic):
    from devicelog.settings import Settings
    from devicelog.tui.app import make_app
    from devicelog.tui.screens.device import DeviceScreen
    from devicelog.tui.screens.dialogs import ReasonScreen
    from devicelog.tui.screens.mri import MriScreen, PostMriVisitScreen
    from tests.test_tui import open_device, settle

    app = make_app(clinic, Settings(), TODAY, "nurse")
    async with app.run_test(size=(120, 40)) as pilot:
        device = await open_device(pilot, "PRO40")
        assert any(b.key == "m" and b.action == "mri" and b.show for b in DeviceScreen.BINDINGS)  # in the footer
        assert device.history.device.serial == "PRO40"
        await pilot.press("m")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, MriScreen)
        shown = str(screen.query_one("#mri-checklist").render())
        assert "EMPTY THE PUMP" in shown and "up to 40.0 mL" in shown and "about 31.0 mL" in shown
        await pilot.press(*"2026-11-23")
        await settle(pilot)
        assert screen.mri_on == TODAY
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ReasonScreen)
        await pilot.press(*"withdrew 31 mL", "enter")
        await settle(pilot)
        assert app.screen is screen
        assert "DUE: MRI on 2026-11-23" in str(screen.query_one("#mri-checklist").render())
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, DeviceScreen)
        shown = str(app.screen.query_one("#device-items").render())
        assert "DUE SOON  Post-MRI pump interrogation  2026-11-23 (today)" in shown and "MRI on 2026-11-23 (pre-MRI checklist recorded 2026-11-23)" in shown

        await pilot.press("m")
        await settle(pilot)
        await pilot.press(*"2026-11-23")
        await pilot.press("f2")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, PostMriVisitScreen)
        assert (form.rows["reason"].raw, form.rows["mri_on"].raw) == ("post_mri", "2026-11-23")
        form.rows["reservoir_volume_ml"].set_raw("0")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, MriScreen)
        assert "done: post-MRI interrogation logged on 2026-11-23" in str(app.screen.query_one("#mri-checklist").render())
        await pilot.press("escape")
        await settle(pilot)
        assert "Post-MRI" not in str(app.screen.query_one("#device-items").render())
    with read_session(clinic) as s:
        rows = s.exec(select(tables.EventRow).order_by(tables.EventRow.id)).all()
    assert [r.kind for r in rows[-2:]] == ["reintervention", "interrogation"]
    assert rows[-2].author == "nurse" and rows[-2].data["reason"].endswith("MRI on 2026-11-23; withdrew 31 mL")
    assert (rows[-2].data["reintervention"], rows[-2].data["mri_on"]) == ("pre_mri_checklist", "2026-11-23")
    assert (rows[-1].data["reason"], rows[-1].data["mri_on"]) == ("post_mri", "2026-11-23")
    assert rows[-1].data["reservoir_volume_ml"] == 0.0 and rows[-1].occurred_on == TODAY


def test_a_volume_reported_after_the_fill_is_counted_from():
    # 40 mL on 2026-10-24 at 0.3 mL/day; the pump reported 25.0 mL on 2026-11-13 (an
    # interrogation logged the same day before the fill does not count): 10 days × 0.3 = 3.0 → 22.0 mL.
    prog = program(3.0, ("morphine", 10))
    h = history("prometra-ii-40", (D(2026, 10, 24), InterrogationData(reservoir_volume_ml=1.0)), (D(2026, 10, 24), fill(40.0, prog)),
                (D(2026, 11, 13), InterrogationData(reservoir_volume_ml=25.0)))
    volume, why = mri.expected_volume_now(h, TODAY)
    assert volume == pytest.approx(22.0) and "25.0 mL reported by the interrogation on 2026-11-13, 10 days" in why
    emptied = history("prometra-ii-40", (D(2026, 10, 24), fill(40.0, prog)), interrogated(D(2026, 11, 20)))
    assert mri.expected_volume_now(emptied, TODAY)[0] == 0.0


def test_the_rule_module_imports_no_database_or_screen_library():
    import subprocess
    import sys

    code = ("import sys, devicelog.clinic.mri; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'sqlalchemy', 'sqlmodel')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


# ----------------------------------------------------------------------------- the due list


def forecast_of(h):
    from devicelog.clinic.forecast import forecast_device
    from devicelog.settings import Settings

    return forecast_device(h, Settings(), DRUGS)


def post_mri_item(forecast):
    found = [i for i in forecast.items if i.code == "post_mri_interrogation"]
    assert len(found) <= 1
    return found[0] if found else None


def test_the_forecast_lists_the_outstanding_post_mri_interrogation():
    from devicelog.clinic.due import status
    from devicelog.settings import Settings

    mri_on = D(2026, 11, 20)
    item = post_mri_item(forecast_of(history("synchromed-ii-20", checked(D(2026, 11, 18), mri_on))))
    assert (item.code, item.what, item.due_on, item.latest_safe_on, item.severity, item.rule, item.source_event_id, item.elective) == (
        "post_mri_interrogation", "Post-MRI pump interrogation", mri_on, mri_on, "high", "rule 13", 1, False)
    # Inputs, formula and limit: the MRI date + 0 days, the same day.
    assert item.why == ("MRI on 2026-11-20 (pre-MRI checklist recorded 2026-11-18) + 0 days: interrogate the pump after "
                        "the scan, the same day, and log it as the post-MRI interrogation (rule 13) → 2026-11-20")
    settings = Settings()
    assert status(item, mri_on, settings) == "due"
    assert status(item, D(2026, 11, 21), settings) == "overdue"
    assert post_mri_item(forecast_of(history("synchromed-ii-20", checked(D(2026, 11, 18), mri_on), interrogated(mri_on, mri_on)))) is None
    # The device out of service, a stimulator: nothing.
    assert post_mri_item(forecast_of(history("synchromed-ii-20", checked(D(2026, 11, 18), mri_on), status="explanted"))) is None


def test_goals_of_care_never_suppress_it():
    mri_on = D(2026, 11, 20)
    forecast = forecast_of(history("prometra-ii-20", checked(D(2026, 11, 18), mri_on), goals="hospice"))
    assert post_mri_item(forecast).due_on == mri_on
    assert not [s for s in forecast.suppressed if s.item.code == "post_mri_interrogation"]


def test_a_pre_mri_checklist_does_not_push_back_the_routine_follow_up():
    from devicelog.clinic.forecast import routine_follow_up_date
    from devicelog.settings import Settings

    # Pump follow-up every 180 days (default).  Refill 2026-06-01 + 180 days = 2026-11-28
    # (29 days to 30 June, +31 +31 +30 +31 = 152 to 31 October, +28).
    prog = program(3.0, ("morphine", 10))
    h = history("prometra-ii-40", (D(2026, 6, 1), fill(40.0, prog)), checked(D(2026, 11, 1), D(2026, 11, 3)))
    assert routine_follow_up_date(h, Settings()) == D(2026, 11, 28)  # not 2026-11-01 + 180 = 2027-04-30
    # The post-MRI interrogation is an in-person visit: 2026-11-03 + 180 days = 2027-05-02
    # (27 to 30 Nov, +31 +31 +28 +31 +30 = 178 to 30 April, +2).
    seen = history("prometra-ii-40", (D(2026, 6, 1), fill(40.0, prog)), checked(D(2026, 11, 1), D(2026, 11, 3)),
                   interrogated(D(2026, 11, 3), D(2026, 11, 3)))
    assert routine_follow_up_date(seen, Settings()) == D(2027, 5, 2)


def due_entries(engine, as_of, computed=False):
    from devicelog.settings import Settings
    from devicelog.store.due import ComputedForecasts, due_list

    with read_session(engine) as s:
        listed = due_list(s, as_of=as_of, settings=Settings(), within_days=30,
                          source=ComputedForecasts() if computed else None)
    return [(e.item.due_on, e.status, e.item.source_event_id) for e in listed.entries if e.item.code == "post_mri_interrogation"]


def test_due_list_due_on_the_mri_day_overdue_after_cleared_moved_and_voided(clinic):
    from devicelog.commands.mri import log_interrogation, record_checklist

    mri_on = D(2026, 11, 25)
    with write_session(clinic) as s:
        checklist_id = record_checklist(s, serial="PRO40", mri_on=mri_on, note="", author="rn", today=TODAY).id
    for computed in (False, True):  # the stored due table and the reference computation agree
        assert due_entries(clinic, TODAY, computed) == [(mri_on, "due", checklist_id)]  # within the 14-day lead time
        assert due_entries(clinic, mri_on, computed) == [(mri_on, "due", checklist_id)]
        assert due_entries(clinic, D(2026, 11, 26), computed) == [(mri_on, "overdue", checklist_id)]

    # The MRI moved to 2026-12-01 (an amendment): the item moves with it, not overdue on the 26th.
    with write_session(clinic) as s:
        services.amend_event(session=s, event_id=checklist_id, occurred_on=TODAY,
                             data=ReinterventionData(reintervention="pre_mri_checklist", mri_on=D(2026, 12, 1),
                                                     reason=mri.pre_mri_reason(D(2026, 12, 1))),
                             reason="MRI moved", author="rn", today=TODAY)
    assert due_entries(clinic, D(2026, 11, 26)) == [(D(2026, 12, 1), "due", checklist_id)]
    assert due_entries(clinic, D(2026, 12, 2)) == [(D(2026, 12, 1), "overdue", checklist_id)]

    # Logged the day after the scan: cleared.
    with write_session(clinic) as s:
        interrogation = log_interrogation(s, serial="PRO40", mri_on=D(2026, 12, 1), occurred_on=D(2026, 12, 2),
                                          values={"reservoir_volume_ml": 0.0}, author="rn", today=D(2026, 12, 2)).id
    assert due_entries(clinic, D(2026, 12, 2)) == []
    # That interrogation voided (entered in error): outstanding again.
    with write_session(clinic) as s:
        services.void_event(session=s, event_id=interrogation, reason="wrong patient", author="rn")
    assert due_entries(clinic, D(2026, 12, 2)) == [(D(2026, 12, 1), "overdue", checklist_id)]
    # The checklist voided (MRI cancelled): nothing due.
    with write_session(clinic) as s:
        services.void_event(session=s, event_id=checklist_id, reason="MRI cancelled", author="rn")
    assert due_entries(clinic, D(2026, 12, 2)) == []
    assert due_entries(clinic, D(2026, 12, 2), computed=True) == []


def test_devicelog_due_shows_it_with_its_explanation(clinic, db_url, capsys):
    from devicelog.cli import main

    assert main(["--db", db_url, *user_args("rn"), "mri", "PRO40", "--mri-on", "2026-11-20", "--record-checklist",
                 "--on", "2026-11-19", "--as-of", "2026-11-23"]) == 0
    capsys.readouterr()
    assert main(["--db", db_url, "due", "--as-of", "2026-11-23", "--within", "7", "--format", "json"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out)["items"] if r["code"] == "post_mri_interrogation"]
    assert [(r["status"], r["due_on"], r["severity"], r["rule"]) for r in rows] == [("overdue", "2026-11-20", "high", "rule 13")]
    assert rows[0]["why"].startswith("MRI on 2026-11-20 (pre-MRI checklist recorded 2026-11-19) + 0 days")
    assert main(["--db", db_url, "due", "--as-of", "2026-11-23", "--within", "7"]) == 0
    text = capsys.readouterr().out
    assert "Post-MRI pump interrogation" in text and "2026-11-20" in text
    assert main(["--db", db_url, "due", "--as-of", "2026-11-23", "--within", "7", "--format", "ics"]) == 0
    ics = capsys.readouterr().out.replace("\r\n ", "")  # unfold
    assert "Post-MRI pump interrogation" in ics and "DTSTART;VALUE=DATE:20261120" in ics


def test_export_and_import_carry_the_mri_fields(clinic, tmp_path):
    from devicelog import transfer
    from devicelog.commands.mri import log_interrogation, record_checklist
    from devicelog.store.db import make_engine
    from devicelog.store.schema import prepare
    from tests.conftest import PG_ADMIN_URL, _pg_database

    mri_on = D(2026, 11, 20)
    with write_session(clinic) as s:
        record_checklist(s, serial="PRO40", mri_on=mri_on, note="withdrew 31 mL", author="rn", today=TODAY, occurred_on=D(2026, 11, 19))
        log_interrogation(s, serial="PRO40", mri_on=mri_on, occurred_on=mri_on, values={"reservoir_volume_ml": 0.0}, author="rn", today=TODAY)
    text = transfer.export_text(clinic)
    events = json.loads(text)["events"]
    assert [(e["data"]["reintervention"], e["data"]["mri_on"]) for e in events if e["data"]["kind"] == "reintervention"] == [
        ("pre_mri_checklist", "2026-11-20")]
    assert [(e["data"]["reason"], e["data"]["mri_on"]) for e in events if e["data"]["kind"] == "interrogation"] == [
        ("post_mri", "2026-11-20")]

    if PG_ADMIN_URL:
        url, drop = _pg_database(PG_ADMIN_URL)
    else:
        url, drop = str(tmp_path / "other.db"), (lambda: None)
    other = make_engine(url)
    try:
        prepare(other)
        # A post-MRI interrogation dated before its scan is refused by field and value; nothing is imported.
        bad = json.loads(text)
        [e] = [e for e in bad["events"] if e["data"]["kind"] == "interrogation"]
        e["occurred_on"] = "2026-11-19"
        with pytest.raises(InputError) as refused:
            transfer.import_text(other, json.dumps(bad), author="importer", today=TODAY)
        assert any(p.field.endswith("occurred_on") and p.value == "2026-11-19" and "before the MRI on 2026-11-20" in p.message
                   for p in refused.value.problems), refused.value.problems
        assert event_count(other) == 0
        transfer.import_text(other, text, author="importer", today=TODAY)
        assert transfer.export_text(other) == text
        [post] = mri.post_mri_interrogations(_history(other))
        assert (post.mri_on, post.answered_on) == (mri_on, mri_on)
    finally:
        other.dispose()
        drop()


def _history(engine, serial="PRO40"):
    with read_session(engine) as s:
        return queries.history_by_serial(s, serial)


def test_a_checklist_dated_after_its_mri_is_refused(clinic):
    # Issue 13 item 6: a checklist done the day after the scan prepares nothing and would be
    # overdue the moment it is saved.  The same day as the scan is allowed (done that morning).
    from devicelog.commands.mri import record_checklist

    before = event_count(clinic)
    with pytest.raises(InputError) as refused, write_session(clinic) as s:
        record_checklist(s, serial="PRO40", mri_on=D(2026, 11, 20), note="", author="rn", today=TODAY,
                         occurred_on=D(2026, 11, 21))
    [problem] = refused.value.problems
    assert (problem.field, problem.value) == ("occurred_on", "2026-11-21")
    assert "after the MRI on 2026-11-20" in problem.message
    assert event_count(clinic) == before and outstanding(clinic) == []
    with write_session(clinic) as s:
        record_checklist(s, serial="PRO40", mri_on=D(2026, 11, 20), note="", author="rn", today=TODAY,
                         occurred_on=D(2026, 11, 20))
    assert event_count(clinic) == before + 1


def test_a_refill_logged_today_after_a_same_day_interrogation_is_the_volume_now():
    # Issue 13 item 6: the visit's interrogation (read before the fill, 2.0 mL left) was
    # logged after the refill.  The pump holds what the refill put in: 40 mL today, 0 days
    # of delivery → 40.0 mL expected, not the 2.0 mL read before filling.
    prog = program(3.0, ("morphine", 10))
    h = history("prometra-ii-40", (D(2026, 10, 24), fill(40.0, prog)), (TODAY, fill(40.0, prog)),
                (TODAY, InterrogationData(reservoir_volume_ml=2.0)))
    volume, why = mri.expected_volume_now(h, TODAY)
    assert volume == pytest.approx(40.0) and why.startswith(f"filled to 40.0 mL on {TODAY}, 0 days")
