"""Rules 8 and 9: expected residual, refill discrepancy, possible pocket fill, and the
refill preview the form shows before saving.  Expected values worked out by hand."""

import pytest

from devicelog.clinic.forecast import forecast_device, refill_preview
from devicelog.clinic.pump import expected_residual_ml, possible_pocket_fill, refill_discrepancy
from devicelog.clinic.records import RefillReviewData, ReviewFinding
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
    programming,
    refill,
    simple_program,
)

MORPHINE_2 = simple_program(2.0)  # 2.0 mg/day ÷ 10 mg/mL = 0.2 mL/day


def first_fill_story(**device_kwargs) -> Story:
    return Story(device=device(**device_kwargs)).add("2025-01-06", refill(MORPHINE_2))


# ------------------------------------------------------------------ expected residual


def test_expected_residual_formula():
    # 20.0 − 70 days × 0.2 mL/day − 0.5 mL boluses = 20.0 − 14.0 − 0.5 = 5.5 mL
    assert expected_residual_ml(20.0, [(70, 0.2)], 0.5) == pytest.approx(5.5)


def test_expected_residual_piecewise_over_programming_changes():
    # 20 days × 0.2 = 4.0 mL, then 35 days × 0.4 = 14.0 mL: 20.0 − 4.0 − 14.0 = 2.0 mL
    assert expected_residual_ml(20.0, [(20, 0.2), (35, 0.4)], 0.0) == pytest.approx(2.0)


def test_expected_residual_never_below_zero():
    # 20.0 − 120 × 0.2 = −4.0 → a pump cannot hold less than 0 mL
    assert expected_residual_ml(20.0, [(120, 0.2)], 0.0) == 0.0


def test_refill_preview_expected_residual_from_history():
    # fill 2025-01-06 to 20.0 mL at 0.2 mL/day; refill 2025-03-17: 25 + 28 + 17 = 70 days;
    # 20.0 − 14.0 − 0.5 mL boluses logged = 5.5 mL expected
    story = first_fill_story()
    preview = refill_preview(
        story.history, refill(MORPHINE_2, withdrawn_ml=5.5, bolus_since_ml=0.5), d("2025-03-17"), SETTINGS, CATALOGUE
    )
    assert preview.expected_residual_ml == pytest.approx(5.5)
    assert preview.discrepancy is not None and not preview.discrepancy.flagged
    assert preview.flags == ()


def test_refill_preview_piecewise_with_a_programming_change():
    # 2025-01-06 → 2025-01-26: 20 days × 0.2 = 4.0; 2025-01-26 → 2025-03-02: 35 days × 0.4
    # = 14.0; expected 20.0 − 18.0 = 2.0 mL; withdrawn 2.0 → no discrepancy
    story = first_fill_story().add("2025-01-26", programming(simple_program(4.0)))
    preview = refill_preview(story.history, refill(MORPHINE_2, withdrawn_ml=2.0), d("2025-03-02"), SETTINGS, CATALOGUE)
    assert preview.expected_residual_ml == pytest.approx(2.0)
    assert preview.discrepancy.discrepancy_ml == pytest.approx(0.0)


# ------------------------------------------------------------------ discrepancy


@pytest.mark.parametrize(
    ("withdrawn", "diff", "flagged", "direction"),
    [
        (4.0, -1.5, True, "over-delivery, leak or diversion"),  # less than expected
        (7.0, +1.5, True, "under-delivery, stall or occlusion"),  # more than expected
        (6.5, +1.0, False, "under-delivery, stall or occlusion"),  # exactly the 1.0 mL limit: not flagged
        (4.5, -1.0, False, "over-delivery, leak or diversion"),  # exactly −1.0 mL: not flagged
        (6.51, +1.01, True, "under-delivery, stall or occlusion"),  # just above
    ],
)
def test_discrepancy_20_ml_pump(withdrawn, diff, flagged, direction):
    # expected 5.5 mL (20.0 − 70 × 0.2 − 0.5; computed in floats as 5.499999999999998)
    story = first_fill_story()
    preview = refill_preview(
        story.history, refill(MORPHINE_2, withdrawn_ml=withdrawn, bolus_since_ml=0.5), d("2025-03-17"), SETTINGS, CATALOGUE
    )
    disc = preview.discrepancy
    assert disc.discrepancy_ml == pytest.approx(diff)
    assert disc.limit_ml == 1.0
    assert disc.flagged is flagged
    assert disc.direction == direction
    assert (direction in " ".join(preview.flags)) is flagged


@pytest.mark.parametrize(
    ("withdrawn", "flagged"),
    [
        (18.5, False),  # −1.5 mL: would be flagged in a 20 mL pump, not in a 40 mL pump
        (17.5, True),  # −2.5 mL > 2.0
        (22.0, False),  # +2.0 mL exactly: not flagged
        (22.1, True),
    ],
)
def test_discrepancy_40_ml_pump_has_a_2_ml_limit(withdrawn, flagged):
    # SynchroMed II 40 mL filled to 40.0 at 4.0 mg/day ÷ 10 mg/mL = 0.4 mL/day; refill after
    # 50 days (2025-01-06 → 2025-02-25: 25 + 25): 40.0 − 20.0 = 20.0 mL expected
    story = Story(device=device("synchromed-ii-40")).add("2025-01-06", refill(simple_program(4.0), after_ml=40.0))
    preview = refill_preview(
        story.history, refill(simple_program(4.0), after_ml=40.0, withdrawn_ml=withdrawn), d("2025-02-25"), SETTINGS, CATALOGUE
    )
    assert preview.expected_residual_ml == pytest.approx(20.0)
    assert preview.discrepancy.limit_ml == 2.0
    assert preview.discrepancy.flagged is flagged


def test_refill_discrepancy_function_and_30_ml_pump_takes_the_stricter_limit():
    # a 30 mL reservoir falls under the 20 mL row: limit 1.0 mL
    disc = refill_discrepancy(7.2, 6.0, 30.0, SETTINGS)
    assert disc.flagged and disc.limit_ml == 1.0 and disc.discrepancy_ml == pytest.approx(1.2)
    assert "under-delivery, stall or occlusion" in disc.text


def test_flagged_discrepancy_creates_a_same_day_high_item():
    story = first_fill_story().add("2025-03-17", refill(MORPHINE_2, withdrawn_ml=4.0, bolus_since_ml=0.5))
    review = item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill_discrepancy_review")
    assert review.due_on == d("2025-03-17")
    assert review.latest_safe_on == d("2025-03-17")
    assert review.severity == "high"
    assert review.rule == "rule 8"
    assert "over-delivery, leak or diversion" in review.why
    assert "5.5 mL expected" in review.why


def test_discrepancy_flag_stays_after_later_entries_until_a_review():
    """Rule 26 (issue 13 item 12): a later interrogation or refill does not clear the flag;
    only a review naming the flagged refill does."""
    # refill 2025-03-17 (event 102): 5.5 mL expected (as above), 4.0 withdrawn: −1.5 mL > 1.0 limit
    story = (
        first_fill_story()
        .add("2025-03-17", refill(MORPHINE_2, withdrawn_ml=4.0, bolus_since_ml=0.5))
        .add("2025-03-18", interrogation())
    )
    assert item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill_discrepancy_review").source_event_id == 102
    # next refill 2025-05-26: 70 days × 0.2 = 14.0 mL from 20.0 → 6.0 expected, 6.0 withdrawn (not flagged)
    story.add("2025-05-26", refill(MORPHINE_2, withdrawn_ml=6.0))
    assert item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill_discrepancy_review").source_event_id == 102
    # a review of another refill (the first fill, 101) does not clear it
    story.add("2025-05-27", RefillReviewData(refill_event_id=101, finding=ReviewFinding.no_cause_found))
    assert "refill_discrepancy_review" in codes(forecast_device(story.history, SETTINGS, CATALOGUE))
    story.add("2025-05-27", RefillReviewData(refill_event_id=102, finding=ReviewFinding.catheter_study_ordered, note="dye study booked"))
    assert "refill_discrepancy_review" not in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


def test_discrepancy_within_limit_creates_no_item():
    story = first_fill_story().add("2025-03-17", refill(MORPHINE_2, withdrawn_ml=6.5, bolus_since_ml=0.5))
    assert "refill_discrepancy_review" not in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


# ------------------------------------------------------------------ pocket fill


@pytest.mark.parametrize(
    ("after", "added", "measured", "flagged"),
    [
        (20.0, 20.0, None, False),
        (20.0, 20.0, 19.4, True),  # measured 0.6 mL short of injected > 0.5 mL tolerance
        (20.0, 20.0, 19.5, False),  # exactly 0.5 mL: not flagged
        (20.0, 19.0, None, True),  # programmed 20.0 vs injected 19.0: 1.0 mL
    ],
)
def test_possible_pocket_fill(after, added, measured, flagged):
    data = refill(MORPHINE_2, after_ml=after, added_ml=added, measured_after_ml=measured)
    assert possible_pocket_fill(data, SETTINGS).flagged is flagged


def test_pocket_fill_tolerance_is_a_setting():
    data = refill(MORPHINE_2, after_ml=20.0, added_ml=20.0, measured_after_ml=19.4)
    assert not possible_pocket_fill(data, Settings(pocket_fill_tolerance_ml=1.0)).flagged


def test_pocket_fill_creates_a_monitoring_item_until_a_review():
    story = first_fill_story().add(
        "2025-03-17", refill(MORPHINE_2, withdrawn_ml=5.5, bolus_since_ml=0.5, measured_after_ml=18.0, pocket_fill_reason="aspirate mismatch")
    )
    monitoring = item(forecast_device(story.history, SETTINGS, CATALOGUE), "pocket_fill_monitoring")
    assert monitoring.due_on == d("2025-03-17")
    assert monitoring.severity == "high"
    assert monitoring.rule == "rule 9"
    assert "2.0 mL" in monitoring.why  # measured 18.0 vs injected 20.0
    story.add("2025-03-17", interrogation())
    # next refill 2025-04-20: 20.0 − 34 days × 0.2 = 13.2 mL expected, 13.2 withdrawn (no discrepancy)
    story.add("2025-04-20", refill(MORPHINE_2, withdrawn_ml=13.2))
    # rule 26: neither the interrogation nor the next refill clears it
    assert item(forecast_device(story.history, SETTINGS, CATALOGUE), "pocket_fill_monitoring").source_event_id == 102
    story.add("2025-04-20", RefillReviewData(refill_event_id=102, finding=ReviewFinding.pocket_fill_excluded))
    assert "pocket_fill_monitoring" not in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


def test_preview_blocks_a_possible_pocket_fill_without_a_reason():
    story = first_fill_story()
    preview = refill_preview(
        story.history, refill(MORPHINE_2, withdrawn_ml=5.5, bolus_since_ml=0.5, measured_after_ml=18.0), d("2025-03-17"), SETTINGS, CATALOGUE
    )
    assert preview.pocket_fill.flagged
    assert any(w.level == "block" and w.code == "pocket_fill_reason" for w in preview.warnings)


# ------------------------------------------------------------------ preview = saved forecast


def test_preview_shows_the_new_alarm_and_refill_dates():
    # new fill 2025-03-17 to 20.0 mL at 0.2 mL/day: 90 days → Mar 31 (+14), Apr 30 (+44),
    # May 31 (+75), Jun 15 (+90) = alarm 2025-06-15; − 7 → 2025-06-08; stability 90 → 06-15
    story = first_fill_story()
    new = refill(MORPHINE_2, withdrawn_ml=5.5, bolus_since_ml=0.5)
    preview = refill_preview(story.history, new, d("2025-03-17"), SETTINGS, CATALOGUE)
    assert preview.low_reservoir_alarm_on == d("2025-06-15")
    assert preview.refill_due_on == d("2025-06-08")
    assert preview.refill_latest_safe_on == d("2025-06-15")
    assert preview.daily_volume_ml == pytest.approx(0.2)
    # the same refill saved gives the same forecast
    story.add("2025-03-17", new)
    saved = item(forecast_device(story.history, SETTINGS, CATALOGUE), "refill")
    assert (saved.due_on, saved.why) == (preview.refill_due_on, preview.refill_due_why)


def test_preview_of_a_first_fill_has_nothing_to_reconcile():
    preview = refill_preview(Story().history, refill(MORPHINE_2), d("2025-01-06"), SETTINGS, CATALOGUE)
    assert preview.expected_residual_ml is None and preview.discrepancy is None
    assert preview.refill_due_on == d("2025-03-30")


def test_preview_includes_dose_warnings():
    # morphine 21 mg/day: above the PACC maximum 15 mg/day and the Infumorph caution 20 mg/day
    preview = refill_preview(
        Story().history, refill(simple_program(21.0, concentration_mg_per_ml=20.0)), d("2025-01-06"), SETTINGS, CATALOGUE
    )
    messages = [w.message for w in preview.warnings]
    assert any("21 mg/day is above the maximum daily dose 20 mg/day (soft; source: Infumorph label" in m for m in messages)
    assert any("21 mg/day is above the maximum daily dose 15 mg/day (soft; source: PACC 2017" in m for m in messages)
