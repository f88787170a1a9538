"""Rules 11, 14 and 19: pump ERI → EOS, planned replacement, primary-cell projection,
rechargeable IPGs, constant-flow pumps without battery items.  Dates worked by hand."""

import pytest

from devicelog.clinic.battery import (
    planned_replacement_date,
    primary_cell_eri_projection,
    pump_end_of_service_date,
    recharge_due_date,
)
from devicelog.clinic.due import shown_red
from devicelog.clinic.forecast import forecast_device, status
from devicelog.clinic.records import BatteryState, DrugConcentration, GoalsOfCare, PumpMode, PumpProgram
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
    patient,
    refill,
    reintervention,
    simple_program,
)

# ------------------------------------------------------------------ pump ERI → EOS


def test_end_of_service_is_eri_plus_90_days():
    # 2025-03-03 + 90: Mar 31 (+28), Apr 30 (+58), May 31 (+89), Jun 1 (+90)
    assert pump_end_of_service_date(d("2025-03-03"), 90) == d("2025-06-01")


def test_pump_eri_gives_a_high_red_elective_replacement_item_a_margin_before_eos():
    """Rules 11 and 28 (issue 13 item 11): ERI is non-critical; the replacement is high
    severity, shown red, elective, due the clinic margin before EOS, latest safe EOS."""
    story = Story().add("2025-01-06", refill(simple_program(2.0))).add(
        "2025-03-03", interrogation(battery_state=BatteryState.eri)
    )
    replacement = item(forecast_device(story.history, SETTINGS, CATALOGUE), "pump_replacement_eos")
    # EOS = 2025-03-03 + 90 days = 2025-06-01; due = EOS − 30 days (default margin):
    # Jun 1 − 1 = May 31, − 30 = May 2 → 2025-05-02
    assert replacement.due_on == d("2025-05-02")
    assert replacement.latest_safe_on == d("2025-06-01")
    assert replacement.severity == "high"
    assert replacement.elective
    assert shown_red(replacement)
    assert replacement.rule == "rule 11"
    assert "+ 90 days" in replacement.why and "EOS 2025-06-01" in replacement.why
    assert "EOS − 30 days (clinic margin eri_replacement_margin_days) = 2025-05-02" in replacement.why


def test_eri_replacement_margin_is_a_setting():
    story = Story().add("2025-01-06", refill(simple_program(2.0))).add(
        "2025-03-03", interrogation(battery_state=BatteryState.eri)
    )
    settings = Settings(eri_replacement_margin_days=7)
    # EOS 2025-06-01 − 7 days = 2025-05-25
    assert item(forecast_device(story.history, settings, CATALOGUE), "pump_replacement_eos").due_on == d("2025-05-25")
    with pytest.raises(ValueError):
        Settings(eri_replacement_margin_days=90)  # past the 60-day maximum: the due date would precede the ERI
    with pytest.raises(ValueError):
        Settings(eri_replacement_margin_days=6)


def test_no_planned_replacement_listed_after_eos():
    """Implanted 2019-08-31: planned 2026-02-28 (+78 months).  ERI on 2025-10-01: EOS =
    2025-10-01 + 90 days (Oct 31 +30, Nov 30 +60, Dec 30 +90) = 2025-12-30, before the
    planned date, so the planned replacement is not listed; the ERI item says why."""
    story = (
        Story(device=device(implanted_on="2019-08-31"))
        .add("2025-09-01", refill(simple_program(2.0)))
        .add("2025-10-01", interrogation(battery_state=BatteryState.eri))
    )
    forecast = forecast_device(story.history, SETTINGS, CATALOGUE)
    assert "planned_replacement" not in codes(forecast)
    replacement = item(forecast, "pump_replacement_eos")
    assert replacement.latest_safe_on == d("2025-12-30")
    assert "2026-02-28) falls after EOS and is not listed" in replacement.why


def test_planned_replacement_before_eos_is_capped_at_eos():
    """Implanted 2019-08-31: planned 2026-02-28, battery limit 2026-08-31.  ERI on
    2026-01-15: EOS = Jan 15 + 90 (Jan 31 +16, Feb 28 +44, Mar 31 +75, Apr 15 +90) =
    2026-04-15, after the planned date: it stays, its latest safe date now EOS."""
    story = (
        Story(device=device(implanted_on="2019-08-31"))
        .add("2025-12-01", refill(simple_program(2.0)))
        .add("2026-01-15", interrogation(battery_state=BatteryState.eri))
    )
    planned = item(forecast_device(story.history, SETTINGS, CATALOGUE), "planned_replacement")
    assert (planned.due_on, planned.latest_safe_on) == (d("2026-02-28"), d("2026-04-15"))


@pytest.mark.parametrize("goals", [GoalsOfCare.hospice, GoalsOfCare.survival_under_3_months])
def test_end_of_life_suppresses_the_elective_replacement_but_keeps_the_eos_decision(goals):
    story = Story(patient=patient(goals=goals)).add("2025-01-06", refill(simple_program(2.0))).add(
        "2025-03-03", interrogation(battery_state=BatteryState.eri)
    )
    forecast = forecast_device(story.history, SETTINGS, CATALOGUE)
    assert "pump_replacement_eos" not in codes(forecast)
    assert "pump_replacement_eos" in [s.item.code for s in forecast.suppressed]
    decision = item(forecast, "eos_decision")
    # EOS 2025-06-01 (as above); decide by EOS − 30 days = 2025-05-02, latest safe EOS
    assert decision.what == "Pump stops on 2025-06-01: decide replacement or change to systemic analgesia before then"
    assert (decision.due_on, decision.latest_safe_on) == (d("2025-05-02"), d("2025-06-01"))
    assert (decision.severity, decision.elective) == ("high", False)
    assert shown_red(decision)
    assert "refill" in codes(forecast)  # refill reminders are never suppressed (rule 24)


def test_eri_alarm_counts_as_eri_and_also_gives_the_alarm_task():
    story = Story().add("2025-01-06", refill(simple_program(2.0))).add("2025-03-03", interrogation(alarms=["eri"]))
    forecast = forecast_device(story.history, SETTINGS, CATALOGUE)
    assert item(forecast, "pump_replacement_eos").latest_safe_on == d("2025-06-01")
    # non-critical alarm: within 7 days → 2025-03-10
    assert item(forecast, "alarm_eri").due_on == d("2025-03-10")


def test_pump_replacement_satisfies_the_eri_item():
    story = (
        Story()
        .add("2025-01-06", refill(simple_program(2.0)))
        .add("2025-03-03", interrogation(battery_state=BatteryState.eri))
        .add("2025-04-01", reintervention("pump_replacement"))
    )
    assert "pump_replacement_eos" not in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


def test_pump_eos_recorded_means_therapy_off():
    story = Story().add("2025-01-06", refill(simple_program(2.0))).add(
        "2025-03-03", interrogation(battery_state=BatteryState.eos)
    )
    off = item(forecast_device(story.history, SETTINGS, CATALOGUE), "therapy_off_eos")
    assert (off.due_on, off.severity) == (d("2025-03-03"), "critical")
    assert "therapy" in off.why


# ------------------------------------------------------------------ planned replacement


@pytest.mark.parametrize(
    ("implanted", "planned"),
    [
        # + 78 months (7 y − 6 months): Aug 2019 + 78 months = Feb 2026; the 31st becomes the 28th
        ("2019-08-31", "2026-02-28"),
        # Aug 2017 + 78 months = Feb 2024, a leap year: the 30th becomes the 29th
        ("2017-08-30", "2024-02-29"),
        # Jan 2025 + 78 months = Jul 2031, day unchanged
        ("2025-01-06", "2031-07-06"),
    ],
)
def test_planned_replacement_seven_years_minus_six_months(implanted, planned):
    assert planned_replacement_date(d(implanted), 78) == d(planned)


def test_planned_replacement_item_for_synchromed_ii():
    # implanted 2019-08-31: planned 2026-02-28; 7-year battery limit 2019-08-31 + 84 months
    # = 2026-08-31 (latest safe)
    story = Story(device=device(implanted_on="2019-08-31")).add("2026-01-05", refill(simple_program(2.0)))
    planned = item(forecast_device(story.history, SETTINGS, CATALOGUE), "planned_replacement")
    assert planned.due_on == d("2026-02-28")
    assert planned.latest_safe_on == d("2026-08-31")
    assert planned.elective
    assert planned.severity == "routine"


def test_prometra_has_no_planned_replacement():
    story = Story(device=device("prometra-ii-20")).add("2025-01-06", refill(simple_program(2.0)))
    assert "planned_replacement" not in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


def test_constant_flow_pump_never_gets_battery_items():
    program = PumpProgram(
        mode=PumpMode.constant_flow,
        drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=2.0)],
        flow_rate_ml_per_day=1.0,
    )
    story = Story(device=device("codman-3000-30", implanted_on="2015-01-06")).add(
        "2025-01-06", refill(program, after_ml=30.0)
    )
    found = codes(forecast_device(story.history, SETTINGS, CATALOGUE))
    assert not {"planned_replacement", "pump_replacement_eos", "therapy_off_eos"} & set(found)
    assert "refill" in found


# ------------------------------------------------------------------ primary-cell IPG


def test_primary_cell_projection_through_two_readings():
    # 90% on 2025-01-01, 80% on 2025-07-01 (181 days): −10/181 %/day; from 90% to the 10% ERI
    # level is 80 points → 80 × 181 / 10 = 1448 days; 2025-01-01 + 1461 days = 2029-01-01
    # (2028 is a leap year), minus 13 days → 2028-12-19
    projection = primary_cell_eri_projection([(d("2025-01-01"), 90.0), (d("2025-07-01"), 80.0)], 10.0)
    assert projection.eri_on == d("2028-12-19")


def test_primary_cell_projection_least_squares_three_readings():
    # days 0, 100, 200 (2025-01-01, 2025-04-11, 2025-07-20) at 90, 85, 76 %:
    # mean x 100, mean y 83.667; Sxy = −100 × 6.333 + 100 × −7.667 = −1400; Sxx = 20000;
    # slope −0.07 %/day; intercept 83.667 + 7 = 90.667; (10 − 90.667) / −0.07 = 1152.38 → 1152
    # days; 2025-01-01 + 1095 = 2028-01-01, + 31 = 2028-02-01, + 26 = 2028-02-27
    readings = [(d("2025-01-01"), 90.0), (d("2025-04-11"), 85.0), (d("2025-07-20"), 76.0)]
    projection = primary_cell_eri_projection(readings, 10.0)
    assert projection.slope_percent_per_day == pytest.approx(-0.07)
    assert projection.eri_on == d("2028-02-27")


def test_primary_cell_forecast_item_from_interrogations():
    story = (
        Story(device=device("medtronic-primeadvanced", implanted_on="2024-12-01"))
        .add("2025-01-01", interrogation(battery_percent=90))
        .add("2025-07-01", interrogation(battery_percent=80))
    )
    projected = item(forecast_device(story.history, SETTINGS, CATALOGUE), "ipg_replacement_projected_eri")
    assert projected.due_on == d("2028-12-19")
    assert projected.elective
    assert "%/day" in projected.why


def test_primary_cell_with_one_reading_says_too_few():
    story = Story(device=device("medtronic-primeadvanced")).add("2025-01-01", interrogation(battery_percent=90))
    forecast = forecast_device(story.history, SETTINGS, CATALOGUE)
    assert "ipg_replacement_projected_eri" not in codes(forecast)
    notes = [w for w in forecast.warnings if w.code == "battery_projection"]
    assert notes and "at least 2" in notes[0].message and notes[0].level == "note"


def test_primary_cell_two_readings_the_same_day_are_too_few():
    projection = primary_cell_eri_projection([(d("2025-01-01"), 90.0), (d("2025-01-01"), 89.0)], 10.0)
    assert projection.eri_on is None


def test_primary_cell_not_falling_gives_no_projection():
    projection = primary_cell_eri_projection([(d("2025-01-01"), 80.0), (d("2025-02-01"), 80.0)], 10.0)
    assert projection.eri_on is None and "not falling" in projection.why


def test_primary_cell_reading_at_eri_level_is_eri_now():
    projection = primary_cell_eri_projection([(d("2025-01-01"), 30.0), (d("2025-06-01"), 9.0)], 10.0)
    assert projection.eri_on == d("2025-06-01")


def test_stimulator_eri_recorded_gives_an_elective_replacement_item():
    story = Story(device=device("medtronic-primeadvanced")).add(
        "2025-03-03", interrogation(battery_state=BatteryState.eri)
    )
    replacement = item(forecast_device(story.history, SETTINGS, CATALOGUE), "ipg_replacement_eri")
    # within the non-critical horizon of 7 days: 2025-03-10
    assert replacement.due_on == d("2025-03-10")
    assert replacement.elective


def test_stimulator_eos_means_therapy_off_critical():
    story = Story(device=device("abbott-proclaim-drg")).add("2025-03-03", interrogation(battery_state=BatteryState.eos))
    off = item(forecast_device(story.history, SETTINGS, CATALOGUE), "therapy_off_eos")
    assert (off.due_on, off.severity, off.rule) == (d("2025-03-03"), "critical", "rule 19")


# ------------------------------------------------------------------ rechargeable IPG


def test_recharge_due_date():
    # last full charge 2025-02-20 + 14 days: Feb 28 (+8), Mar 6 (+14)
    assert recharge_due_date(d("2025-02-20"), 14, 0) == d("2025-03-06")
    # a fractional interval is cut down: 14.9 → 14
    assert recharge_due_date(d("2025-02-20"), 14.9, 0) == d("2025-03-06")
    assert recharge_due_date(d("2025-02-20"), 14, 3) == d("2025-03-09")


def test_rechargeable_missed_charge_is_flagged_at_the_interrogation():
    # Interrogation 2025-03-10: last full charge 2025-02-20, 18 days before; interval 14
    # days → the charge was due by 2025-03-06, so it was missed.  Contact within the
    # non-critical horizon of 7 days: 2025-03-10 + 7 = 2025-03-17.
    story = Story(device=device("medtronic-intellis", recharge_interval_days=14)).add(
        "2025-03-10", interrogation(last_full_charge_on=d("2025-02-20"))
    )
    missed = item(forecast_device(story.history, SETTINGS, CATALOGUE), "recharge_missed")
    assert missed.due_on == d("2025-03-17")
    assert "18 days" in missed.why and "2025-03-06" in missed.why
    assert status(missed, d("2025-03-18"), SETTINGS) == "overdue"


def test_rechargeable_charged_within_interval_has_no_item_and_a_later_visit_clears_a_miss():
    # Interrogation 2025-03-01, last charge 2025-02-20: 9 days ≤ 14 → not missed.
    on_time = Story(device=device("medtronic-intellis", recharge_interval_days=14)).add(
        "2025-03-01", interrogation(last_full_charge_on=d("2025-02-20"))
    )
    assert "recharge_missed" not in codes(forecast_device(on_time.history, SETTINGS, CATALOGUE))
    # Missed on 2025-03-10 (as above), then on 2025-03-14 the last charge was 2025-03-12.
    cleared = (
        Story(device=device("medtronic-intellis", recharge_interval_days=14))
        .add("2025-03-10", interrogation(last_full_charge_on=d("2025-02-20")))
        .add("2025-03-14", interrogation(last_full_charge_on=d("2025-03-12")))
    )
    assert "recharge_missed" not in codes(forecast_device(cleared.history, SETTINGS, CATALOGUE))


def test_rechargeable_interval_from_interrogation_and_grace_setting():
    # Interval 7 days from the interrogation, grace 2: 2025-02-20 + 9 = 2025-03-01.
    # Seen on 2025-03-01: not missed.  Seen on 2025-03-02: missed, contact by 2025-03-09.
    base = Story(device=device("nevro-senza"))
    grace = Settings(recharge_grace_days=2)
    on_day = base.add("2025-03-01", interrogation(last_full_charge_on=d("2025-02-20"), recharge_interval_days=7))
    assert "recharge_missed" not in codes(forecast_device(on_day.history, grace, CATALOGUE))
    late = Story(device=device("nevro-senza")).add(
        "2025-03-02", interrogation(last_full_charge_on=d("2025-02-20"), recharge_interval_days=7)
    )
    assert item(forecast_device(late.history, grace, CATALOGUE), "recharge_missed").due_on == d("2025-03-09")


def test_rechargeable_without_charge_record_is_noted():
    story = Story(device=device("medtronic-intellis", recharge_interval_days=14)).add("2025-03-01", interrogation())
    forecast = forecast_device(story.history, SETTINGS, CATALOGUE)
    assert "recharge_missed" not in codes(forecast)
    assert any(w.code == "recharge_unknown" for w in forecast.warnings)


def test_pns_has_no_battery_items():
    story = Story(device=device("spr-sprint-pns")).add("2025-01-20", interrogation(battery_percent=50))
    found = codes(forecast_device(story.history, SETTINGS, CATALOGUE))
    assert not [c for c in found if "replacement" in c or "recharge" in c or "eos" in c]


def test_pump_eri_without_a_catalogue_eos_interval_is_due_at_once():
    # Prometra II: the catalogue gives no ERI-to-EOS interval, so the replacement is due on the
    # ERI date itself, with no latest safe date to promise
    story = Story(device=device("prometra-ii-20")).add("2025-01-06", refill(simple_program(2.0))).add(
        "2025-03-03", interrogation(battery_state=BatteryState.eri)
    )
    replacement = item(forecast_device(story.history, SETTINGS, CATALOGUE), "pump_replacement_eos")
    # ERI is non-critical (rule 28): high severity, shown red
    assert (replacement.due_on, replacement.latest_safe_on, replacement.severity) == (d("2025-03-03"), None, "high")
    assert "no ERI-to-EOS interval" in replacement.why
