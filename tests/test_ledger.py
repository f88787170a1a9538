"""The refill ledger and the trend of discrepancies, checked against numbers worked by hand."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devicelog.clinic.catalogue import shipped_catalogue
from devicelog.clinic.history import DeviceHistory, DeviceInfo, PatientInfo
from devicelog.clinic.ledger import LESS, MORE, discrepancy_trend, ledger_trend, least_squares_slope, refill_ledger
from devicelog.clinic.mme import REFERENCE_ONLY, describe_it_reference, it_morphine_oral_reference_mg_per_day, oral_mme
from devicelog.clinic.records import (
    DrugConcentration,
    Event,
    OpioidDose,
    ProgrammingData,
    PumpProgram,
    RefillData,
)
from devicelog.settings import Settings

D = dt.date
CAT = shipped_catalogue()
DRUGS = {d.code: d for d in CAT.drugs}


def morphine(dose_mg_per_day, conc=10.0):
    return PumpProgram(mode="simple_continuous", drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=conc)], dose_mg_per_day=dose_mg_per_day)


def ev(i, on, data, author="rn"):
    return Event(id=i, device_id=1, occurred_on=on, author=author, recorded_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=i), data=data)


def refill(withdrawn, dose=2.0, bolus=0.0, added=20.0, after=20.0):
    return RefillData(
        volume_withdrawn_ml=withdrawn,
        volume_added_ml=added,
        reservoir_volume_after_ml=after,
        program=morphine(dose),
        bolus_volume_since_last_fill_ml=bolus,
    )


def pump_history(events, model="synchromed-ii-20"):
    return DeviceHistory(
        patient=PatientInfo(id=1, mrn="MRN001", name="Ann Lee", birth_date=D(1950, 1, 2)),
        device=DeviceInfo(id=1, serial="NGP100", model=CAT.device_model(model), implanted_on=D(2026, 1, 5)),
        events=tuple(events),
    )


def five_refills():
    """SynchroMed II 20 mL, morphine 10 mg/mL; 2 mg/day = 0.2 mL/day, then 3 mg/day = 0.3 mL/day.

    R1 2026-01-05  first fill to 20 mL: nothing to reconcile.
    R2 2026-02-04  30 d × 0.2 = 6.0 → expected 20 − 6 = 14.0; withdrawn 13.6 → −0.40 (within 1.0 mL)
    R3 2026-03-06  30 d × 0.2 = 6.0 → expected 14.0;          withdrawn 13.2 → −0.80 (within)
       2026-03-21  programming change to 3 mg/day (0.3 mL/day), 15 days after R3
    R4 2026-04-05  15 × 0.2 + 15 × 0.3 = 3.0 + 4.5 = 7.5 → expected 12.5; withdrawn 11.2 → −1.30 FLAG (> 1.0)
    R5 2026-05-05  30 × 0.3 = 9.0, boluses 0.5 → expected 20 − 9 − 0.5 = 10.5; withdrawn 10.5 → 0.00
    Trend over [−0.4, −0.8, −1.3, 0.0]: mean −2.5 / 4 = −0.625 mL;
    slope: x − x̄ = −1.5, −0.5, 0.5, 1.5; y − ȳ = 0.225, −0.175, −0.675, 0.625;
    Σ products = −0.3375 + 0.0875 − 0.3375 + 0.9375 = 0.35; Σ (x − x̄)² = 5 → +0.07 mL per refill.
    Run: R2, R3, R4 all less than expected → one run of 3, 2026-02-04 to 2026-04-05.
    """
    return pump_history(
        [
            ev(1, D(2026, 1, 5), refill(0.0)),
            ev(2, D(2026, 2, 4), refill(13.6)),
            ev(3, D(2026, 3, 6), refill(13.2)),
            ev(4, D(2026, 3, 21), ProgrammingData(pump_program=morphine(3.0), reason="pain up"), author="dr"),
            ev(5, D(2026, 4, 5), refill(11.2, dose=3.0)),
            ev(6, D(2026, 5, 5), refill(10.5, dose=3.0, bolus=0.5)),
        ]
    )


def test_five_refill_ledger_matches_hand_computation():
    rows = refill_ledger(five_refills(), Settings(), DRUGS)
    assert [r.refilled_on for r in rows] == [D(2026, 1, 5), D(2026, 2, 4), D(2026, 3, 6), D(2026, 4, 5), D(2026, 5, 5)]
    assert rows[0].expected_residual_ml is None and rows[0].discrepancy_ml is None and not rows[0].flagged
    assert [r.expected_residual_ml for r in rows[1:]] == pytest.approx([14.0, 14.0, 12.5, 10.5])
    assert [r.discrepancy_ml for r in rows[1:]] == pytest.approx([-0.4, -0.8, -1.3, 0.0])
    assert [r.flagged for r in rows] == [False, False, False, True, False]
    assert rows[3].direction == "over-delivery, leak or diversion"
    assert rows[3].limit_ml == 1.0
    assert all(r.added_ml == 20.0 for r in rows)
    assert rows[1].drugs == "morphine 10 mg/mL"
    assert "15 days × 0.200 mL/day − 15 days × 0.300 mL/day" in rows[3].why


def test_trend_of_five_refills():
    trend = ledger_trend(refill_ledger(five_refills(), Settings(), DRUGS))
    assert trend.count == 4
    assert trend.mean_ml == pytest.approx(-0.625)
    assert trend.slope_ml_per_refill == pytest.approx(0.07)
    assert len(trend.runs) == 1 and trend.flagged
    run = trend.runs[0]
    assert (run.start_on, run.end_on, run.length, run.direction) == (D(2026, 2, 4), D(2026, 4, 5), 3, LESS)
    assert "3 consecutive refills less than expected" in trend.text


def test_40_ml_pump_uses_the_2_ml_limit():
    # SynchroMed II 40 mL: same deliveries; R4's −1.3 mL is within the 2.0 mL limit.
    h = five_refills()
    h = h.model_copy(update={"device": h.device.model_copy(update={"model": CAT.device_model("synchromed-ii-40")})})
    rows = refill_ledger(h, Settings(), DRUGS)
    assert [r.limit_ml for r in rows[1:]] == [2.0] * 4
    assert not any(r.flagged for r in rows)


def test_two_runs_and_a_break():
    d = [D(2026, m, 1) for m in range(1, 10)]
    # + + + 0 − − − − +: a run of 3 more, a zero breaks it, a run of 4 less, then a lone +.
    values = [0.3, 0.5, 1.2, 0.0, -0.2, -0.4, -0.1, -0.3, 0.6]
    trend = discrepancy_trend(list(zip(d, values)))
    assert [(r.length, r.direction, r.start_on, r.end_on) for r in trend.runs] == [
        (3, MORE, d[0], d[2]),
        (4, LESS, d[4], d[7]),
    ]


def test_two_in_a_row_is_not_a_run_and_tiny_values_have_no_direction():
    d = [D(2026, m, 1) for m in range(1, 6)]
    assert discrepancy_trend(list(zip(d, [-0.5, -0.5, 0.4, -0.3, -0.2]))).runs == ()
    # −0.004 mL is below the 0.01 mL resolution: it breaks the run.
    assert discrepancy_trend(list(zip(d, [-0.5, -0.5, -0.004, -0.3, -0.2]))).runs == ()


def test_empty_and_single_trend():
    assert discrepancy_trend([]).mean_ml is None
    one = discrepancy_trend([(D(2026, 1, 1), -0.4)])
    assert one.mean_ml == pytest.approx(-0.4) and one.slope_ml_per_refill is None


@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=30), st.floats(-3, 3), st.floats(-2, 2))
def test_slope_of_a_straight_line_is_its_slope(noise_free, intercept, slope):
    values = [intercept + slope * i for i in range(len(noise_free))]
    assert least_squares_slope(values) == pytest.approx(slope, abs=1e-9)


@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=30))
def test_runs_are_consistent(values):
    points = [(D(2026, 1, 1) + dt.timedelta(days=30 * i), v) for i, v in enumerate(values)]
    trend = discrepancy_trend(points)
    for run in trend.runs:
        assert run.length >= 3
        inside = [v for on, v in points if run.start_on <= on <= run.end_on]
        assert len(inside) == run.length
        assert all((v < 0) == (run.direction == LESS) for v in inside)


# ------------------------------------------------------------------ MME (reference 5)


def test_oral_mme_with_cdc_2022_factors():
    # oxycodone 40 mg × 1.5 = 60; fentanyl patch 25 mcg/h × 2.4 = 60; tramadol 200 mg × 0.2 = 40;
    # hydromorphone 8 mg × 5 = 40; codeine 60 mg × 0.15 = 9; methadone 10 mg × 4.7 = 47 → 256 mg/day.
    mme = oral_mme(
        [
            OpioidDose(opioid="Oxycodone ER", dose_mg_per_day=40),
            OpioidDose(opioid="fentanyl", patch_mcg_per_h=25),
            OpioidDose(opioid="tramadol", dose_mg_per_day=200),
            OpioidDose(opioid="hydromorphone", dose_mg_per_day=8),
            OpioidDose(opioid="codeine", dose_mg_per_day=60),
            OpioidDose(opioid="methadone", dose_mg_per_day=10),
        ]
    )
    assert mme.complete
    assert mme.total_mg_per_day == pytest.approx(256.0)
    assert "CDC 2022" in mme.why


def test_unknown_opioid_is_named_not_dropped():
    mme = oral_mme([OpioidDose(opioid="morphine", dose_mg_per_day=30), OpioidDose(opioid="buprenorphine", patch_mcg_per_h=10)])
    assert not mme.complete
    assert mme.total_mg_per_day == 30
    assert "buprenorphine" in mme.why and "NOT INCLUDED" in mme.why


def test_it_morphine_reference_is_labelled():
    # 2 mg/day IT × 300 = 600 mg/day oral reference.
    assert it_morphine_oral_reference_mg_per_day(2.0, 300) == 600
    text = describe_it_reference(2.0, 300)
    assert "600 mg/day" in text and REFERENCE_ONLY in text and REFERENCE_ONLY == "reference only, not for dosing"


# ------------------------------------------------------------------ issue 13.3: the amend preview


def _amended(history, original_id, data):
    """The history the store will hold once the amendment is saved (``effective_events``)."""
    from devicelog.clinic.history import effective_events

    original = next(e for e in history.events if e.id == original_id)
    amendment = original.model_copy(update={"id": 99, "amends_id": original_id, "data": data,
                                            "recorded_at": dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)})
    return history.model_copy(update={"events": tuple(effective_events([*history.events, amendment]))})


def test_amending_an_unchanged_refill_previews_what_the_ledger_and_forecast_show():
    """SynchroMed II 20 mL, morphine 10 mg/mL at 2 mg/day = 0.2 mL/day.
    R1 2026-01-05 first fill 20 mL.  R2 2026-02-04: 30 d × 0.2 = 6.0 → expected 14.0;
    withdrawn 14.02 → +0.02 mL, within 1.0 mL.  Amending R2 unchanged must preview +0.02
    (the old preview reconciled R2 with itself: 20 mL filled that day, 0 days → 20.0
    expected, −5.98 mL FLAG over-delivery).
    Dates: alarm (20 − 2 mL alarm) / 0.2 = 90 days after 2026-02-04 = 2026-05-05; due
    alarm − 7 days = 2026-04-28 (morphine's 90-day limit also 2026-05-05); latest safe 2026-05-05."""
    from devicelog.clinic.forecast import forecast_device
    from devicelog.clinic.pump import refill_preview

    settings = Settings()
    history = pump_history([ev(1, D(2026, 1, 5), refill(0.0)), ev(2, D(2026, 2, 4), refill(14.02))])
    original = history.events[1]
    pv = refill_preview(history, original.data, original.occurred_on, settings, CAT, amends=original)
    assert pv.expected_residual_ml == pytest.approx(14.0)
    assert pv.discrepancy.discrepancy_ml == pytest.approx(0.02) and not pv.discrepancy.flagged
    assert (pv.low_reservoir_alarm_on, pv.refill_due_on, pv.refill_latest_safe_on) == (D(2026, 5, 5), D(2026, 4, 28), D(2026, 5, 5))
    # What the ledger and the forecast show once it is saved.
    saved = _amended(history, 2, original.data)
    row = refill_ledger(saved, settings, DRUGS)[-1]
    assert (row.expected_residual_ml, row.discrepancy_ml, row.flagged) == (pv.expected_residual_ml, pv.discrepancy.discrepancy_ml, False)
    item = next(i for i in forecast_device(saved, settings, CAT).items if i.code == "refill")
    assert (item.due_on, item.latest_safe_on) == (pv.refill_due_on, pv.refill_latest_safe_on)


def test_amending_an_earlier_refill_previews_the_next_refills_reconciliation_and_the_latest_dates():
    """R1 2026-01-05 20 mL; R2 2026-02-04 withdrawn 14.0 (expected 14.0), filled to 20;
    R3 2026-03-06 withdrawn 14.0: 20 − 30 × 0.2 = 14.0 → 0.00.
    R2 amended: filled to 18.5 mL (added 18.5).  R2 itself still reconciles 14.0 vs 14.0;
    R3 then expects 18.5 − 6.0 = 12.5 and 14.0 was withdrawn: +1.50 mL, beyond 1.0 mL:
    FLAG under-delivery.  The refill dates stay those of R3, the latest fill: alarm
    (20 − 2) / 0.2 = 90 days after 2026-03-06 = 2026-06-04, due 2026-05-28."""
    from devicelog.clinic.pump import refill_preview

    settings = Settings()
    history = pump_history([ev(1, D(2026, 1, 5), refill(0.0)), ev(2, D(2026, 2, 4), refill(14.0)), ev(3, D(2026, 3, 6), refill(14.0))])
    amended = refill(14.0, added=18.5, after=18.5)
    pv = refill_preview(history, amended, D(2026, 2, 4), settings, CAT, amends=history.events[1])
    assert pv.expected_residual_ml == pytest.approx(14.0) and pv.discrepancy.discrepancy_ml == pytest.approx(0.0)
    next_on, rec = pv.next_fill
    assert next_on == D(2026, 3, 6)
    assert rec.expected_residual_ml == pytest.approx(12.5)
    assert rec.discrepancy.discrepancy_ml == pytest.approx(1.5) and rec.discrepancy.flagged
    assert "under-delivery" in rec.discrepancy.text
    assert (pv.low_reservoir_alarm_on, pv.refill_due_on) == (D(2026, 6, 4), D(2026, 5, 28))
    assert "latest refill, of 2026-03-06" in pv.refill_due_why
    rows = refill_ledger(_amended(history, 2, amended), settings, DRUGS)
    assert [(r.expected_residual_ml, r.discrepancy_ml, r.flagged) for r in rows[1:]] == [
        (pv.expected_residual_ml, pv.discrepancy.discrepancy_ml, False), (rec.expected_residual_ml, rec.discrepancy.discrepancy_ml, True)
    ]


def test_blank_boluses_are_unknown_and_the_why_says_none_were_assumed():
    """Issue 13.5: R2 with boluses left blank: 20 − 30 × 0.2 = 14.0 expected, and the why
    says the boluses were not recorded, never "0.0 mL boluses logged"."""
    blank = RefillData(volume_withdrawn_ml=14.0, volume_added_ml=20.0, reservoir_volume_after_ml=20.0, program=morphine(2.0))
    assert blank.bolus_volume_since_last_fill_ml is None
    row = refill_ledger(pump_history([ev(1, D(2026, 1, 5), refill(0.0)), ev(2, D(2026, 2, 4), blank)]), Settings(), DRUGS)[-1]
    assert row.expected_residual_ml == pytest.approx(14.0)
    assert "boluses not recorded: assumed none" in row.why and "boluses logged" not in row.why
    typed = refill_ledger(pump_history([ev(1, D(2026, 1, 5), refill(0.0)), ev(2, D(2026, 2, 4), refill(13.5, bolus=0.5))]), Settings(), DRUGS)[-1]
    # 20 − 6.0 − 0.5 = 13.5 expected
    assert typed.expected_residual_ml == pytest.approx(13.5) and "0.5 mL boluses logged" in typed.why
