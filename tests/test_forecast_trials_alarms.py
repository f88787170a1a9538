"""Rules 12, 15, 16 and 18, and routine follow-up: trials, PNS lead removal, alarms,
impedance.  Dates worked by hand."""

import pytest

from devicelog.clinic.alarms import impedance_out_of_range
from devicelog.clinic.forecast import forecast_device, trial_outcome
from devicelog.clinic.records import (
    AnalgesicChange,
    ContactImpedance,
    TrialEndData,
    TrialStartData,
)
from devicelog.settings import Settings
from tests.clinic_builders import (
    CATALOGUE,
    SETTINGS,
    Story,
    codes,
    d,
    device,
    interrogation,
    item,
    refill,
    reintervention,
    simple_program,
    wound,
)

# ------------------------------------------------------------------ rule 15: trials


def trial_story(planned_days: int = 7) -> Story:
    return Story(device=device("abbott-proclaim-xr", implanted_on="2025-03-03")).add(
        "2025-03-03", TrialStartData(baseline_nrs=8, planned_days=planned_days)
    )


def test_trial_end_due_at_start_plus_planned_days():
    # 2025-03-03 + 7 = 2025-03-10; warn past 21 days: 2025-03-03 + 21 = 2025-03-24
    forecast = forecast_device(trial_story().history, SETTINGS, CATALOGUE)
    end = item(forecast, "trial_end")
    assert (end.due_on, end.latest_safe_on, end.rule) == (d("2025-03-10"), d("2025-03-24"), "rule 15")
    too_long = item(forecast, "trial_too_long")
    assert (too_long.due_on, too_long.severity) == (d("2025-03-24"), "high")


def test_trial_end_capped_at_the_maximum_trial_length():
    # planned 10 days, capped at 8: 2025-03-03 + 8 = 2025-03-11
    end = item(forecast_device(trial_story(10).history, SETTINGS, CATALOGUE), "trial_end")
    assert end.due_on == d("2025-03-11")
    assert "capped at 8 days" in end.why


def test_trial_end_logged_satisfies_both_items():
    story = trial_story().add(
        "2025-03-10", TrialEndData(end_nrs=3, analgesics=AnalgesicChange.reduced, patient_satisfied=True)
    )
    found = codes(forecast_device(story.history, SETTINGS, CATALOGUE))
    assert "trial_end" not in found and "trial_too_long" not in found


@pytest.mark.parametrize(
    ("baseline", "end", "analgesics", "satisfied", "relief", "success"),
    [
        (8, 4, AnalgesicChange.stable, True, 50.0, True),  # (8 − 4) / 8 = 50% ≥ 50%
        (8, 5, AnalgesicChange.stable, True, 37.5, False),  # 3 / 8 = 37.5%
        (8, 4, AnalgesicChange.increased, True, 50.0, False),  # analgesics went up
        (8, 2, AnalgesicChange.reduced, False, 75.0, False),  # patient not satisfied
        (6, 2, AnalgesicChange.reduced, True, 66.7, True),  # 4 / 6 = 66.7%
    ],
)
def test_trial_outcome(baseline, end, analgesics, satisfied, relief, success):
    outcome = trial_outcome(
        TrialStartData(baseline_nrs=baseline),
        TrialEndData(end_nrs=end, analgesics=analgesics, patient_satisfied=satisfied),
        SETTINGS,
    )
    assert outcome.relief_percent == pytest.approx(relief, abs=0.05)
    assert outcome.success is success


def test_trial_outcome_with_zero_baseline_cannot_succeed():
    outcome = trial_outcome(
        TrialStartData(baseline_nrs=0),
        TrialEndData(end_nrs=0, analgesics=AnalgesicChange.stable, patient_satisfied=True),
        SETTINGS,
    )
    assert outcome.relief_percent is None and not outcome.success


def test_trial_success_threshold_is_a_setting():
    outcome = trial_outcome(
        TrialStartData(baseline_nrs=8),
        TrialEndData(end_nrs=4, analgesics=AnalgesicChange.stable, patient_satisfied=True),
        Settings(trial_success_relief_percent=60),
    )
    assert not outcome.success


# ------------------------------------------------------------------ rule 16: PNS


def test_pns_lead_removal_at_day_60():
    # 2025-01-06 + 60: Jan 31 (+25), Feb 28 (+53), Mar 7 (+60)
    story = Story(device=device("spr-sprint-pns", implanted_on="2025-01-06"))
    removal = item(forecast_device(story.history, SETTINGS, CATALOGUE), "pns_lead_removal")
    assert (removal.due_on, removal.latest_safe_on, removal.rule) == (d("2025-03-07"), d("2025-03-07"), "rule 16")


@pytest.mark.parametrize("kind", ["lead_removal", "explant"])
def test_pns_lead_removal_satisfied(kind):
    story = Story(device=device("spr-sprint-pns", implanted_on="2025-01-06")).add("2025-03-06", reintervention(kind))
    assert "pns_lead_removal" not in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


def test_only_pns_models_get_a_lead_removal():
    story = Story(device=device("abbott-proclaim-xr"))
    assert "pns_lead_removal" not in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


# ------------------------------------------------------------------ rule 12: alarms


def pump_story() -> Story:
    return Story().add("2025-05-01", refill(simple_program(2.0)))


def test_critical_alarm_same_day():
    story = pump_story().add("2025-05-05", interrogation(alarms=["motor_stall"]))
    alarm = item(forecast_device(story.history, SETTINGS, CATALOGUE), "alarm_motor_stall")
    assert (alarm.due_on, alarm.severity, alarm.rule) == (d("2025-05-05"), "critical", "rule 12")


def test_noncritical_alarm_within_7_days():
    # 2025-05-05 + 7 = 2025-05-12
    story = pump_story().add("2025-05-05", interrogation(alarms=["low_reservoir"]))
    alarm = item(forecast_device(story.history, SETTINGS, CATALOGUE), "alarm_low_reservoir")
    assert (alarm.due_on, alarm.severity) == (d("2025-05-12"), "high")


def test_noncritical_alarm_horizon_is_a_setting():
    story = pump_story().add("2025-05-05", interrogation(alarms=["lead_impedance"]))
    alarm = item(forecast_device(story.history, Settings(noncritical_alarm_days=3), CATALOGUE), "alarm_lead_impedance")
    assert alarm.due_on == d("2025-05-08")


def test_alarm_cleared_by_a_later_interrogation_without_it():
    story = pump_story().add("2025-05-05", interrogation(alarms=["motor_stall"])).add("2025-05-05", interrogation())
    assert "alarm_motor_stall" not in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


def test_alarm_repeated_later_gives_one_item_from_the_later_interrogation():
    story = (
        pump_story()
        .add("2025-05-05", interrogation(alarms=["motor_stall"]))
        .add("2025-05-07", interrogation(alarms=["motor_stall"]))
    )
    alarms = [i for i in forecast_device(story.history, SETTINGS, CATALOGUE).items if i.code == "alarm_motor_stall"]
    assert [a.due_on for a in alarms] == [d("2025-05-07")]


def test_refill_answers_a_reservoir_alarm_but_not_a_motor_stall():
    story = (
        pump_story()
        .add("2025-05-05", interrogation(alarms=["empty_reservoir", "motor_stall"]))
        .add("2025-05-05", refill(simple_program(2.0), withdrawn_ml=0.0))
    )
    found = codes(forecast_device(story.history, SETTINGS, CATALOGUE))
    assert "alarm_empty_reservoir" not in found
    assert "alarm_motor_stall" in found


# ------------------------------------------------------------------ rule 18: impedance


def test_impedance_limits_are_strict():
    readings = [
        ContactImpedance(contact="0", impedance_ohm=5200),  # open: > 4,000 Ω
        ContactImpedance(contact="1", impedance_ohm=120),  # short: < 250 Ω
        ContactImpedance(contact="2", impedance_ohm=4000),  # exactly the limit: fine
        ContactImpedance(contact="3", impedance_ohm=250),  # exactly the limit: fine
        ContactImpedance(contact="4", impedance_ohm=800),
    ]
    found = [(f.contact, f.problem) for f in impedance_out_of_range(readings, SETTINGS)]
    assert found == [("0", "open"), ("1", "short")]


def test_impedance_item_names_contacts_and_ohms():
    story = Story(device=device("abbott-proclaim-xr")).add(
        "2025-05-05",
        interrogation(impedances=[ContactImpedance(contact="E3", impedance_ohm=5200), ContactImpedance(contact="E4", impedance_ohm=900)]),
    )
    flagged = item(forecast_device(story.history, SETTINGS, CATALOGUE), "impedance")
    assert flagged.due_on == d("2025-05-12")  # within 7 days
    assert "E3 5,200 Ω" in flagged.why and "E4" not in flagged.why
    assert flagged.rule == "rule 18"


def test_impedance_item_cleared_by_a_later_good_measurement():
    story = (
        Story(device=device("abbott-proclaim-xr"))
        .add("2025-05-05", interrogation(impedances=[ContactImpedance(contact="E3", impedance_ohm=5200)]))
        .add("2025-05-20", interrogation(impedances=[ContactImpedance(contact="E3", impedance_ohm=900)]))
    )
    assert "impedance" not in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


def test_impedance_item_cleared_by_a_lead_revision():
    story = (
        Story(device=device("abbott-proclaim-xr"))
        .add("2025-05-05", interrogation(impedances=[ContactImpedance(contact="E3", impedance_ohm=5200)]))
        .add("2025-05-10", reintervention("lead_revision"))
    )
    assert "impedance" not in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


# ------------------------------------------------------------------ routine follow-up


def test_routine_follow_up_after_the_last_visit():
    # SCS implanted 2025-01-06, last visit a wound check on 2025-01-16; + 180 days:
    # Jan 31 (+15), Feb 28 (+43), Mar 31 (+74), Apr 30 (+104), May 31 (+135), Jun 30 (+165),
    # Jul 15 (+180)
    story = Story(device=device("abbott-proclaim-xr")).add("2025-01-16", wound())
    follow_up = item(forecast_device(story.history, SETTINGS, CATALOGUE), "follow_up")
    assert (follow_up.due_on, follow_up.severity) == (d("2025-07-15"), "routine")


def test_pns_follow_up_is_30_days():
    story = Story(device=device("spr-sprint-pns", implanted_on="2025-01-06"))
    assert item(forecast_device(story.history, SETTINGS, CATALOGUE), "follow_up").due_on == d("2025-02-05")
