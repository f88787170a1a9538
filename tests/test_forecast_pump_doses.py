"""Rules 6 and 7: ziconotide titration and maximum, PACC maxima, Infumorph caution,
concentration maxima.  Doses are in mg/day internally and shown in the drug's unit."""

import pytest

from devicelog.clinic.forecast import dose_warnings, forecast_device
from devicelog.clinic.pump import concentration_checks, dose_checks, titration_checks
from devicelog.settings import Settings
from tests.clinic_builders import CATALOGUE, SETTINGS, Story, d, programming, refill, simple_program

ZICONOTIDE = CATALOGUE.drug("ziconotide")
MORPHINE = CATALOGUE.drug("morphine")
MCG = 0.001  # mg
STEP = "limit_ziconotide_max_step_label"
INTERVAL_24H = "limit_ziconotide_min_step_interval_label"
INTERVAL_48H = "limit_ziconotide_min_step_interval_label-recommended"


def codes_levels(warnings):
    return sorted((w.code, w.level) for w in warnings)


def test_ziconotide_increase_of_exactly_2_4_mcg_after_3_days_is_allowed():
    # 2.4 → 4.8 mcg/day: +2.4 mcg/day is the limit itself; 3 days after the last increase
    previous = [(d("2025-01-06"), 2.4 * MCG)]
    assert titration_checks(previous, 4.8 * MCG, d("2025-01-09"), SETTINGS, ZICONOTIDE) == []


def test_ziconotide_increase_above_2_4_mcg_is_blocked():
    # 2.4 → 6.0 mcg/day = +3.6 mcg/day > 2.4
    previous = [(d("2025-01-06"), 2.4 * MCG)]
    warnings = titration_checks(previous, 6.0 * MCG, d("2025-01-09"), SETTINGS, ZICONOTIDE)
    assert codes_levels(warnings) == [(STEP, "block")]
    assert "3.6 mcg/day" in warnings[0].message and "2.4 mcg/day" in warnings[0].message


def test_ziconotide_increase_the_same_day_is_blocked_and_next_day_warned():
    previous = [(d("2025-01-06"), 2.4 * MCG)]
    same_day = titration_checks(previous, 3.6 * MCG, d("2025-01-06"), SETTINGS, ZICONOTIDE)
    next_day = titration_checks(previous, 3.6 * MCG, d("2025-01-07"), SETTINGS, ZICONOTIDE)
    two_days = titration_checks(previous, 3.6 * MCG, d("2025-01-08"), SETTINGS, ZICONOTIDE)
    assert codes_levels(same_day) == [(INTERVAL_24H, "block")]  # < 24 h
    assert codes_levels(next_day) == [(INTERVAL_48H, "warn")]  # < 48 h
    assert two_days == []


def test_ziconotide_interval_counts_from_the_last_increase_not_the_last_change():
    # up on 01-06, down on 01-09, up again on 01-10: the last increase was 01-06 (4 days)
    previous = [(d("2025-01-04"), 1.2 * MCG), (d("2025-01-06"), 3.6 * MCG), (d("2025-01-09"), 2.4 * MCG)]
    assert titration_checks(previous, 3.6 * MCG, d("2025-01-10"), SETTINGS, ZICONOTIDE) == []


def test_ziconotide_decrease_is_never_blocked():
    previous = [(d("2025-01-06"), 4.8 * MCG)]
    assert titration_checks(previous, 2.4 * MCG, d("2025-01-06"), SETTINGS, ZICONOTIDE) == []


@pytest.mark.parametrize(
    ("region", "new_mcg", "blocked"),
    [
        ("EU", 21.6, False),  # the EU maximum itself
        ("EU", 22.8, True),  # 20.4 + 2.4 = 22.8 > 21.6
        ("US", 19.2, False),
        ("US", 20.4, True),  # 20.4 > 19.2 (US)
    ],
)
def test_ziconotide_maximum_by_region(region, new_mcg, blocked):
    previous = [(d("2025-01-06"), (new_mcg - 1.2) * MCG)]
    settings = Settings(region=region)
    warnings = dose_checks(ZICONOTIDE, new_mcg * MCG, settings)
    assert ((f"limit_ziconotide_max_dose_label-{region.lower()}", "block") in codes_levels(warnings)) is blocked


def test_ziconotide_start_above_2_4_mcg_is_a_warning():
    warnings = titration_checks([], 3.6 * MCG, d("2025-01-06"), SETTINGS, ZICONOTIDE)
    assert codes_levels(warnings) == [("ziconotide_start_dose", "warn")]
    assert titration_checks([], 2.4 * MCG, d("2025-01-06"), SETTINGS, ZICONOTIDE) == []


def test_dose_warnings_read_ziconotide_history_from_the_record():
    # filled 2025-01-06 at 2.4 mcg/day (25 mcg/mL); a programming change to 6.0 mcg/day on
    # 2025-01-07 is +3.6 mcg/day (block) and one day after the start (warn)
    story = Story().add("2025-01-06", refill(simple_program(2.4 * MCG, "ziconotide", 0.025)))
    warnings = dose_warnings(story.history, simple_program(6.0 * MCG, "ziconotide", 0.025), d("2025-01-07"), SETTINGS, CATALOGUE)
    assert codes_levels(warnings) == [(STEP, "block"), (INTERVAL_48H, "warn")]


def test_forecast_reports_warnings_of_the_current_program():
    story = (
        Story()
        .add("2025-01-06", refill(simple_program(10.0)))
        .add("2025-01-20", programming(simple_program(16.0)))  # 16 mg/day > 15 mg/day PACC
    )
    warnings = forecast_device(story.history, SETTINGS, CATALOGUE).warnings
    assert ("limit_morphine_max_dose_pacc-2017", "warn") in codes_levels(warnings)


@pytest.mark.parametrize(
    ("dose", "max_warn", "caution_warn"),
    [(15.0, False, False), (16.0, True, False), (20.0, True, False), (21.0, True, True)],
)
def test_morphine_maximum_and_infumorph_caution(dose, max_warn, caution_warn):
    # PACC maximum 15 mg/day (warn above), Infumorph caution above 20 mg/day
    codes = {w.code: w for w in dose_checks(MORPHINE, dose, SETTINGS)}
    assert ("limit_morphine_max_dose_pacc-2017" in codes) is max_warn
    caution = codes.get("limit_morphine_max_dose_infumorph-label")
    assert (caution is not None) is caution_warn
    if caution:
        assert caution.level == "warn" and "mg/day" in caution.message and "Infumorph label" in caution.message


def test_concentration_above_maximum_warns_in_display_units():
    # morphine PACC maximum 20 mg/mL; clonidine PACC 1000 mcg/mL = 1.0 mg/mL
    assert concentration_checks(MORPHINE, 20.0, SETTINGS) == []
    (warning,) = concentration_checks(MORPHINE, 25.0, SETTINGS)
    assert warning.level == "warn" and "25 mg/mL" in warning.message and "20 mg/mL" in warning.message
    (clon,) = concentration_checks(CATALOGUE.drug("clonidine"), 1.2, SETTINGS)
    assert "1200 mcg/mL" in clon.message and "1000 mcg/mL" in clon.message


def test_clonidine_dose_in_micrograms():
    # clonidine clinical-range top 2.0 mg/day shown as 2000 mcg/day
    (warning,) = dose_checks(CATALOGUE.drug("clonidine"), 2.5, SETTINGS)
    assert "2500 mcg/day" in warning.message and "2000 mcg/day" in warning.message


def test_unknown_drug_is_noted_not_ignored():
    warnings = dose_warnings(Story().history, simple_program(1.0, "tizanidine", 2.0), d("2025-01-06"), SETTINGS, CATALOGUE)
    assert [(w.code, w.level) for w in warnings] == [("unknown_drug_tizanidine", "note")]
