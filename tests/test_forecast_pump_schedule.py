"""Rules 1-5: daily volume, bolus allowance, low-reservoir alarm date, refill due date.

Every expected value below was worked out by hand from the clinical reference's
numbers; the arithmetic is in the comments.
"""

import datetime as dt

import pytest

from devicelog.clinic.forecast import forecast_device
from devicelog.clinic.pump import (
    AlarmForecast,
    RefillLimit,
    bolus_allowance_ml_per_day,
    daily_volume_ml,
    low_reservoir_alarm_date,
    refill_due_date,
    worst_case_daily_volume_ml,
    ziconotide_is_undiluted,
    ziconotide_refill_limit_days,
)
from devicelog.clinic.records import DrugConcentration, FlexStep, PumpMode, PumpProgram
from devicelog.settings import Settings
from tests.clinic_builders import (
    CATALOGUE,
    SETTINGS,
    Story,
    d,
    device,
    item,
    programming,
    refill,
    simple_program,
)

# ------------------------------------------------------------------ rule 1


def test_simple_continuous_daily_volume_is_dose_over_primary_concentration():
    # morphine 2.0 mg/day ÷ 10 mg/mL = 0.2 mL/day
    assert daily_volume_ml(simple_program(2.0)) == pytest.approx(0.2)


def test_admixture_uses_the_primary_drug():
    # drugs[0] = morphine 10 mg/mL at 2.0 mg/day → 0.2 mL/day; bupivacaine 5 mg/mL is ignored
    program = simple_program(2.0, extra=[("bupivacaine", 5.0)])
    assert daily_volume_ml(program) == pytest.approx(0.2)


def test_flex_daily_volume_is_sum_of_rate_times_hours():
    # 0.01 mL/h × 12 h + 0.02 mL/h × 12 h = 0.12 + 0.24 = 0.36 mL/day
    program = PumpProgram(
        mode=PumpMode.flex,
        drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=10)],
        flex_steps=[FlexStep(rate_ml_per_h=0.01, hours=12), FlexStep(rate_ml_per_h=0.02, hours=12)],
    )
    assert daily_volume_ml(program) == pytest.approx(0.36)


def test_constant_flow_daily_volume_is_the_flow_rate():
    program = PumpProgram(
        mode=PumpMode.constant_flow,
        drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=5)],
        flow_rate_ml_per_day=1.0,
    )
    assert daily_volume_ml(program) == pytest.approx(1.0)


# ------------------------------------------------------------------ rule 2


def test_bolus_allowance_is_bolus_volume_times_maximum_per_day():
    # 0.1 mL × 4/day = 0.4 mL/day; worst case 0.2 + 0.4 = 0.6 mL/day
    program = simple_program(2.0, bolus_ml=0.1, bolus_max_per_day=4)
    assert bolus_allowance_ml_per_day(program) == pytest.approx(0.4)
    assert worst_case_daily_volume_ml(program) == pytest.approx(0.6)


def test_bolus_allowance_brings_the_alarm_earlier():
    # worst case 0.6 mL/day: (20.0 − 2.0) / 0.6 = 30 days → 2025-01-06 + 30 = 2025-02-05
    story = Story().add("2025-01-06", refill(simple_program(2.0, bolus_ml=0.1, bolus_max_per_day=4)))
    refill_item = item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill")
    # alarm 2025-02-05 − 7 days margin = 2025-01-29
    assert refill_item.due_on == d("2025-01-29")
    assert refill_item.latest_safe_on == d("2025-02-05")


# ------------------------------------------------------------------ rule 3


def test_alarm_date_whole_days():
    # SynchroMed II 20 mL filled to 20.0 mL, morphine 10 mg/mL at 2.0 mg/day → 0.200 mL/day;
    # (20.0 − 2.0) / 0.2 = 90 days; 2025-01-06 + 90 days: Jan 31 (+25), Feb 28 (+53),
    # Mar 31 (+84), Apr 6 (+90)
    alarm = low_reservoir_alarm_date(d("2025-01-06"), 20.0, 2.0, 0.2)
    assert alarm.days == 90
    assert alarm.alarm_on == d("2025-04-06")


def test_alarm_date_fractional_days_are_cut_down():
    # morphine 7.0 mg/day ÷ 10 mg/mL = 0.7 mL/day; 18.0 / 0.7 = 25.71 days → 25 (never 26)
    alarm = low_reservoir_alarm_date(d("2025-01-06"), 20.0, 2.0, 0.7)
    assert alarm.days == 25
    assert alarm.alarm_on == d("2025-01-31")


def test_alarm_date_40_ml_fractional():
    # 40 mL pump filled to 40.0; morphine 25 mg/mL at 6.0 mg/day = 0.24 mL/day;
    # 38.0 / 0.24 = 158.33 → 158 days; 2025-01-06 + 158: Jan 31 (+25), Feb 28 (+53),
    # Mar 31 (+84), Apr 30 (+114), May 31 (+145), Jun 13 (+158)
    alarm = low_reservoir_alarm_date(d("2025-01-06"), 40.0, 2.0, 0.24)
    assert alarm.days == 158
    assert alarm.alarm_on == d("2025-06-13")


def test_alarm_date_float_noise_does_not_lose_a_day():
    # (2.6 − 2.0) / 0.2 is exactly 3 days; in floats 0.6/0.2 = 2.9999999999999996
    alarm = low_reservoir_alarm_date(d("2025-01-06"), 2.6, 2.0, 0.2)
    assert alarm.days == 3
    assert alarm.alarm_on == d("2025-01-09")


def test_reservoir_at_or_below_alarm_volume_alarms_at_once():
    alarm = low_reservoir_alarm_date(d("2025-01-06"), 2.0, 2.0, 0.2)
    assert alarm.alarm_on == d("2025-01-06")


def test_nothing_flowing_gives_no_alarm_date():
    alarm = low_reservoir_alarm_date(d("2025-01-06"), 20.0, 2.0, 0.0)
    assert alarm.alarm_on is None


def test_recorded_low_alarm_volume_wins_over_the_model_default():
    # low alarm programmed at 4.0 mL: (20.0 − 4.0) / 0.2 = 80 days → 2025-03-27;
    # − 7 days → 2025-03-20
    story = Story().add("2025-01-06", refill(simple_program(2.0), low_alarm_ml=4.0))
    assert item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill").due_on == d("2025-03-20")


# ------------------------------------------------------------------ rule 4


def test_refill_due_alarm_margin_wins_over_morphine_stability():
    # alarm 2025-04-06 (above); margin 7 → 2025-03-30; morphine stability 90 days
    # → 2025-01-06 + 90 = 2025-04-06; earliest 2025-03-30
    story = Story().add("2025-01-06", refill(simple_program(2.0)))
    refill_item = item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill")
    assert refill_item.due_on == d("2025-03-30")
    assert refill_item.latest_safe_on == d("2025-04-06")
    assert refill_item.severity == "high"
    assert refill_item.rule == "rule 4"
    assert "0.200 mL/day" in refill_item.why
    assert "earliest: alarm − 7 days margin" in refill_item.why


def test_refill_due_morphine_stability_wins_at_a_low_dose():
    # morphine 1.0 mg/day ÷ 10 mg/mL = 0.1 mL/day; 18.0 / 0.1 = 180 days → 2025-07-05,
    # − 7 → 2025-06-28; stability 90 days → 2025-04-06 (earlier, wins)
    story = Story().add("2025-01-06", refill(simple_program(1.0)))
    refill_item = item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill")
    assert refill_item.due_on == d("2025-04-06")
    assert refill_item.latest_safe_on == d("2025-04-06")
    assert "earliest: morphine stability 90 days" in refill_item.why


def test_refill_due_margin_setting_is_used():
    # margin 3 days: alarm 2025-04-06 − 3 = 2025-04-03; stability 2025-04-06 → 2025-04-03
    story = Story().add("2025-01-06", refill(simple_program(2.0)))
    settings = Settings(refill_margin_days=3)
    assert item(forecast_device(story.history, settings, CATALOGUE), "refill").due_on == d("2025-04-03")


def test_refill_due_admixture_beyond_use_date_wins():
    # hydromorphone 1.0 mg/day ÷ 2 mg/mL = 0.5 mL/day; 18.0 / 0.5 = 36 days → 2025-02-11,
    # − 7 → 2025-02-04; pharmacy BUD 2025-02-01 is earlier and wins
    story = Story().add("2025-01-06", refill(simple_program(1.0, "hydromorphone", 2.0), bud="2025-02-01"))
    refill_item = item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill")
    assert refill_item.due_on == d("2025-02-01")
    assert refill_item.latest_safe_on == d("2025-02-01")
    assert "beyond-use date" in refill_item.why


def test_compounded_drug_without_bud_uses_clinic_default_and_says_so():
    # hydromorphone has no stability in the catalogue and no BUD was recorded:
    # clinic default 30 days → 2025-01-06 + 30 = 2025-02-05; the alarm (0.5 mg/day ÷ 5
    # mg/mL = 0.1 mL/day, 180 days) is far later
    story = Story().add("2025-01-06", refill(simple_program(0.5, "hydromorphone", 5.0)))
    forecast = forecast_device(story.history, SETTINGS, CATALOGUE)
    refill_item = item(forecast, "refill")
    assert refill_item.due_on == d("2025-02-05")
    assert "clinic default 30 days" in refill_item.why
    assert any(w.code == "compounded_bud_missing" and "30 days" in w.message for w in forecast.warnings)


def test_admixture_takes_the_shortest_drug_limit():
    # morphine 90 days → 2025-04-06, bupivacaine compounded without BUD → default 20 days
    # (setting) → 2025-01-26: the shortest wins
    story = Story().add("2025-01-06", refill(simple_program(1.0, extra=[("bupivacaine", 5.0)])))
    settings = Settings(compounded_bud_days_if_missing=20)
    assert item(forecast_device(story.history, settings, CATALOGUE), "refill").due_on == d("2025-01-26")


def test_refill_due_never_before_the_fill_when_the_alarm_is_near():
    # filled only to 3.0 mL: (3.0 − 2.0) / 0.2 = 5 days → alarm 2025-01-11; − 7 days would be
    # 2025-01-04, before the fill: booked on the fill date 2025-01-06
    story = Story().add("2025-01-06", refill(simple_program(2.0), after_ml=3.0))
    refill_item = item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill")
    assert refill_item.due_on == d("2025-01-06")
    assert refill_item.latest_safe_on == d("2025-01-11")


def test_refill_due_date_function_with_plain_values():
    alarm = AlarmForecast(d("2025-04-06"), 90, "alarm")
    due = refill_due_date(
        alarm, [RefillLimit(d("2025-03-01"), "BUD")], 7, not_before=d("2025-01-06")
    )
    assert (due.due_on, due.limit_won, due.latest_safe_on) == (d("2025-03-01"), "BUD", d("2025-03-01"))


# ------------------------------------------------------------------ rule 5: ziconotide

ZICONOTIDE_25 = 0.025  # mg/mL = 25 mcg/mL, the undiluted 20 mL vial


def test_ziconotide_first_refill_of_a_naive_pump_is_within_14_days():
    # 2.4 mcg/day = 0.0024 mg/day ÷ 0.025 mg/mL = 0.096 mL/day; 18.0 / 0.096 = 187.5 → 187
    # days (far); first fill with ziconotide in this device → 14 days → 2025-01-20
    story = Story().add("2025-01-06", refill(simple_program(0.0024, "ziconotide", ZICONOTIDE_25)))
    refill_item = item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill")
    assert refill_item.due_on == d("2025-01-20")
    assert "first refill of a naive pump 14 days" in refill_item.why


def test_ziconotide_later_refill_undiluted_84_days():
    # second fill 2025-01-20, 25 mcg/mL alone = undiluted → 84 days:
    # Jan 31 (+11), Feb 28 (+39), Mar 31 (+70), Apr 14 (+84); alarm 187 days away
    program = simple_program(0.0024, "ziconotide", ZICONOTIDE_25)
    story = Story().add("2025-01-06", refill(program)).add("2025-01-20", refill(program, withdrawn_ml=18.6))
    assert item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill").due_on == d("2025-04-14")


def test_ziconotide_later_refill_diluted_40_days():
    # second fill 2025-01-20 at 10 mcg/mL (diluted): 2.4 mcg/day ÷ 10 mcg/mL = 0.24 mL/day,
    # 18.0 / 0.24 = 75 days → alarm 2025-04-05, − 7 → 2025-03-29; diluted limit 40 days
    # → Jan 31 (+11), Feb 28 (+39), Mar 1 (+40): 2025-03-01 wins
    first = simple_program(0.0024, "ziconotide", ZICONOTIDE_25)
    diluted = simple_program(0.0024, "ziconotide", 0.010)
    story = Story().add("2025-01-06", refill(first)).add("2025-01-20", refill(diluted, withdrawn_ml=18.6))
    assert item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill").due_on == d("2025-03-01")


def test_ziconotide_first_fill_counts_from_the_first_fill_with_ziconotide():
    # a morphine pump switched to ziconotide on 2025-03-03: that is the naive fill → 14 days
    # → 2025-03-17
    story = (
        Story()
        .add("2025-01-06", refill(simple_program(2.0)))
        .add("2025-03-03", refill(simple_program(0.0024, "ziconotide", ZICONOTIDE_25), withdrawn_ml=8.4))
    )
    assert item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill").due_on == d("2025-03-17")


@pytest.mark.parametrize(
    ("drugs", "undiluted"),
    [
        ([("ziconotide", 0.025)], True),  # 25 mcg/mL vial
        ([("ziconotide", 0.1)], True),  # 100 mcg/mL vial
        ([("ziconotide", 0.05)], False),  # diluted
        ([("ziconotide", 0.025), ("morphine", 10.0)], False),  # in an admixture: diluted, shorter limit
    ],
)
def test_ziconotide_undiluted_means_a_vial_strength_alone(drugs, undiluted):
    program = PumpProgram(
        drugs=[DrugConcentration(drug=c, concentration_mg_per_ml=v) for c, v in drugs], dose_mg_per_day=0.0024
    )
    assert ziconotide_is_undiluted(program, "ziconotide") is undiluted
    days, _ = ziconotide_refill_limit_days(program, "ziconotide", False, SETTINGS)
    assert days == (84 if undiluted else 40)


def test_ziconotide_limits_follow_settings():
    program = simple_program(0.0024, "ziconotide", ZICONOTIDE_25)
    settings = Settings(ziconotide_first_refill_days=10, ziconotide_undiluted_days=60)
    assert ziconotide_refill_limit_days(program, "ziconotide", True, settings)[0] == 10
    assert ziconotide_refill_limit_days(program, "ziconotide", False, settings)[0] == 60


# ------------------------------------------------------------------ programming changes


def test_programming_change_recomputes_alarm_from_recorded_reservoir_volume():
    # fill 2025-01-06 to 20.0 mL at 0.2 mL/day; on 2025-01-26 the dose goes to 4.0 mg/day
    # (0.4 mL/day) with 15.0 mL recorded: (15.0 − 2.0) / 0.4 = 32.5 → 32 days
    # → 2025-01-26 + 32 = 2025-02-27; − 7 → 2025-02-20 (stability 2025-04-06 is later)
    story = (
        Story()
        .add("2025-01-06", refill(simple_program(2.0)))
        .add("2025-01-26", programming(simple_program(4.0), reservoir_volume_ml=15.0))
    )
    refill_item = item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill")
    assert refill_item.due_on == d("2025-02-20")
    assert refill_item.latest_safe_on == d("2025-02-27")
    assert "15.0 mL recorded at the programming change" in refill_item.why


def test_programming_change_without_volume_uses_expected_volume_and_says_so():
    # expected at the change: 20.0 − 20 days × 0.2 = 16.0 mL; (16.0 − 2.0) / 0.4 = 35 days
    # → 2025-01-26 + 35 = 2025-03-02 (Jan 31 +5, Feb 28 +33, Mar 2 +35); − 7 → 2025-02-23
    story = (
        Story()
        .add("2025-01-06", refill(simple_program(2.0)))
        .add("2025-01-26", programming(simple_program(4.0)))
    )
    refill_item = item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill")
    assert refill_item.due_on == d("2025-02-23")
    assert refill_item.latest_safe_on == d("2025-03-02")
    assert "no reservoir volume recorded" in refill_item.why
    assert "expected 16.0 mL" in refill_item.why


def test_lower_dose_programming_change_never_beyond_stability():
    # dose lowered to 0.5 mg/day (0.05 mL/day) on 2025-01-26 at 16.0 mL: (16 − 2)/0.05 = 280
    # days, but morphine stability from the fill still caps at 2025-04-06
    story = (
        Story()
        .add("2025-01-06", refill(simple_program(2.0)))
        .add("2025-01-26", programming(simple_program(0.5), reservoir_volume_ml=16.0))
    )
    assert item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill").due_on == d("2025-04-06")


def test_constant_flow_pump_refill():
    # Codman 3000 30 mL filled to 30.0 mL at 1.0 mL/day; minimum residual 2.0 mL:
    # (30.0 − 2.0) / 1.0 = 28 days → 2025-02-03; − 7 → 2025-01-27
    program = PumpProgram(
        mode=PumpMode.constant_flow,
        drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=2.0)],
        flow_rate_ml_per_day=1.0,
    )
    story = Story(device=device("codman-3000-30")).add("2025-01-06", refill(program, after_ml=30.0))
    refill_item = item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill")
    assert refill_item.due_on == d("2025-01-27")


def test_pump_without_any_fill_asks_for_the_fill():
    story = Story()
    refill_item = item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill")
    assert refill_item.due_on == d("2025-01-06")
    assert "cannot be forecast" in refill_item.why


def test_only_the_latest_fill_gives_a_refill_item():
    # second fill 2025-03-30: (20 − 2)/0.2 = 90 days → 2025-06-28; − 7 → 2025-06-21;
    # stability 90 → 2025-06-28
    story = (
        Story()
        .add("2025-01-06", refill(simple_program(2.0)))
        .add("2025-03-30", refill(simple_program(2.0), withdrawn_ml=3.4))
    )
    forecast = forecast_device(story.history, SETTINGS, CATALOGUE)
    assert [i.due_on for i in forecast.items if i.code == "refill"] == [d("2025-06-21")]
    assert dt.date(2025, 6, 28) == item(forecast, "refill").latest_safe_on


# ------------------------------------------------------------------ rule 27: observed over-delivery

# SynchroMed II 20 mL, morphine 4.0 mg/day ÷ 10 mg/mL = 0.4 mL/day (stability 90 days).
# Filled to 20.0 mL on 2025-01-06; refilled to 20.0 mL on 2025-02-05, 30 days later:
# expected residual 20.0 − 30 × 0.4 = 8.0 mL.
MORPHINE_4 = simple_program(4.0)


def over_delivery_story(withdrawn_ml: float) -> Story:
    return (
        Story()
        .add("2025-01-06", refill(MORPHINE_4))
        .add("2025-02-05", refill(MORPHINE_4, withdrawn_ml=withdrawn_ml))
    )


def test_observed_over_delivery_brings_the_next_refill_earlier():
    """Issue 13 item 13, rule 27: withdrawn 5.0 mL vs 8.0 expected = −3.0 mL, beyond the
    1.0 mL limit: observed (20.0 − 5.0) ÷ 30 = 0.500 mL/day vs programmed 0.400.
    Programmed: (20.0 − 2.0) ÷ 0.4 = 45 days → alarm 2025-03-22 (Feb 5 + 23 = Feb 28,
    + 22 = Mar 22), − 7 days → due 2025-03-15.  Observed: 18.0 ÷ 0.5 = 36 days → alarm
    2025-03-13, − 7 → due 2025-03-06: the earlier wins; latest safe the observed alarm."""
    refill_item = item(forecast_device(over_delivery_story(5.0).history, SETTINGS, CATALOGUE), "refill")
    assert refill_item.due_on == d("2025-03-06")
    assert refill_item.latest_safe_on == d("2025-03-13")
    assert "0.500 mL/day" in refill_item.why and "programmed 0.400 mL/day" in refill_item.why
    assert "refill due 2025-03-06 (observed) vs 2025-03-15 (programmed)" in refill_item.why
    assert "the earlier, observed, wins → 2025-03-06" in refill_item.why


@pytest.mark.parametrize(
    "withdrawn_ml",
    [
        11.0,  # +3.0 mL: more than expected (slower): the programmed rate stands
        7.2,  # −0.8 mL: faster, but within the 1.0 mL limit
    ],
)
def test_slower_or_unflagged_observed_rate_keeps_the_programmed_date(withdrawn_ml):
    refill_item = item(forecast_device(over_delivery_story(withdrawn_ml).history, SETTINGS, CATALOGUE), "refill")
    assert (refill_item.due_on, refill_item.latest_safe_on) == (d("2025-03-15"), d("2025-03-22"))
    assert "rule 27" not in refill_item.why


def test_refill_preview_uses_the_observed_rate_too():
    from devicelog.clinic.forecast import refill_preview

    story = Story().add("2025-01-06", refill(MORPHINE_4))
    preview = refill_preview(story.history, refill(MORPHINE_4, withdrawn_ml=5.0), d("2025-02-05"), SETTINGS, CATALOGUE)
    # as above: the observed rate's date, and its alarm date
    assert (preview.refill_due_on, preview.low_reservoir_alarm_on) == (d("2025-03-06"), d("2025-03-13"))
