"""Invariants of the forecast, checked with hypothesis."""

import datetime as dt

from hypothesis import given, settings as hsettings, strategies as st

from devicelog.clinic.forecast import forecast_device
from devicelog.clinic.history import DeviceHistory
from devicelog.clinic.pump import low_reservoir_alarm_date, pump_fills, refill_discrepancy, refill_schedule
from devicelog.clinic.records import BatteryState, Drainage
from tests.clinic_builders import (
    CATALOGUE,
    SETTINGS,
    Story,
    device,
    interrogation,
    programming,
    refill,
    reintervention,
    simple_program,
    wound,
)

DRUGS = {x.code: x for x in CATALOGUE.drugs}
START = dt.date(2025, 1, 6)

dates = st.integers(min_value=0, max_value=400).map(lambda n: START + dt.timedelta(days=n))
volumes = st.floats(min_value=0.5, max_value=40.0, allow_nan=False)
daily = st.floats(min_value=0.001, max_value=5.0, allow_nan=False)


@st.composite
def fills(draw):
    """A first fill of a 40 mL pump with morphine or ziconotide, with or without a BUD."""
    drug = draw(st.sampled_from(["morphine", "ziconotide", "hydromorphone"]))
    if drug == "ziconotide":
        conc = draw(st.sampled_from([0.025, 0.1, 0.01]))
        dose = draw(st.floats(min_value=0.0005, max_value=0.02))
    else:
        conc = draw(st.floats(min_value=1.0, max_value=20.0))
        dose = draw(st.floats(min_value=0.1, max_value=15.0))
    after = draw(st.floats(min_value=2.5, max_value=40.0))
    bud = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=200)))
    on = draw(dates)
    data = refill(
        simple_program(dose, drug, conc, bolus_ml=draw(st.sampled_from([0.0, 0.1])), bolus_max_per_day=draw(st.integers(0, 6))),
        after_ml=after,
        bud=None if bud is None else (on + dt.timedelta(days=bud)).isoformat(),
    )
    return on, data


@hsettings(max_examples=200, deadline=None)
@given(fills())
def test_refill_due_never_after_alarm_nor_stability_nor_bud(fill):
    on, data = fill
    story = Story(device=device("synchromed-ii-40")).add(on.isoformat(), data)
    found = pump_fills(story.history.events)
    due = refill_schedule(story.history, found, 0, SETTINGS, DRUGS)
    if due.alarm_on is not None:
        assert due.due_on <= due.alarm_on
    drug = DRUGS[data.program.drugs[0].drug]
    if drug.is_ziconotide:
        # first fill of a naive pump: 14 days at most
        assert due.due_on <= on + dt.timedelta(days=SETTINGS.ziconotide_first_refill_days)
    elif drug.stability_days is not None:
        assert due.due_on <= on + dt.timedelta(days=drug.stability_days)
    elif data.admixture_bud is None:
        assert due.due_on <= on + dt.timedelta(days=SETTINGS.compounded_bud_days_if_missing)
    if data.admixture_bud is not None:
        assert due.due_on <= data.admixture_bud
    assert due.due_on <= due.latest_safe_on


@given(dates, volumes, volumes, st.floats(min_value=0, max_value=5), daily)
def test_more_volume_never_moves_the_alarm_earlier(on, v1, v2, low_alarm, rate):
    small, large = sorted((v1, v2))
    a = low_reservoir_alarm_date(on, small, low_alarm, rate).alarm_on
    b = low_reservoir_alarm_date(on, large, low_alarm, rate).alarm_on
    assert a is not None and b is not None and a <= b


@given(dates, volumes, st.floats(min_value=0, max_value=5), daily, daily)
def test_faster_delivery_never_moves_the_alarm_later(on, volume, low_alarm, r1, r2):
    slow, fast = sorted((r1, r2))
    assert low_reservoir_alarm_date(on, volume, low_alarm, fast).alarm_on <= low_reservoir_alarm_date(
        on, volume, low_alarm, slow
    ).alarm_on


@given(dates, volumes, st.floats(min_value=0, max_value=5), daily)
def test_alarm_day_count_is_never_rounded_up(on, volume, low_alarm, rate):
    alarm = low_reservoir_alarm_date(on, volume, low_alarm, rate)
    exact = max(0.0, (volume - low_alarm) / rate)
    assert alarm.days <= exact + 1e-6
    assert alarm.days > exact - 1 - 1e-6


@given(st.floats(min_value=0, max_value=40), st.floats(min_value=0, max_value=40), st.sampled_from([20.0, 40.0]))
def test_discrepancy_flag_is_strictly_beyond_the_limit(withdrawn, expected, reservoir):
    disc = refill_discrepancy(withdrawn, expected, reservoir, SETTINGS)
    limit = 1.0 if reservoir == 20.0 else 2.0
    assert disc.flagged == (abs(round(withdrawn - expected, 6)) > limit)
    if disc.flagged:
        assert disc.direction == (
            "over-delivery, leak or diversion" if withdrawn < expected else "under-delivery, stall or occlusion"
        )


# ------------------------------------------------------------------ order independence

event_data = st.one_of(
    st.builds(lambda dose, w: refill(simple_program(dose), withdrawn_ml=w), st.sampled_from([1.0, 2.0, 4.0]), st.sampled_from([0.0, 3.0, 8.0])),
    st.builds(lambda dose, v: programming(simple_program(dose), v), st.sampled_from([1.0, 3.0]), st.sampled_from([None, 10.0])),
    st.builds(
        lambda alarms, state: interrogation(alarms=alarms, battery_state=state),
        st.lists(st.sampled_from(["low_reservoir", "motor_stall", "eri", "empty_reservoir"]), max_size=2),
        st.sampled_from([BatteryState.ok, BatteryState.ok, BatteryState.eri]),
    ),
    st.builds(
        lambda drainage, fever: wound(drainage=drainage, fever_c=fever),
        st.sampled_from([Drainage.none, Drainage.purulent]),
        st.sampled_from([None, 37.0, 38.5]),
    ),
    st.builds(reintervention, st.sampled_from(["pocket_revision", "dye_study", "catheter_revision"])),
)


@hsettings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=200), event_data), min_size=1, max_size=8),
    st.randoms(use_true_random=False),
)
def test_forecast_does_not_depend_on_the_order_events_are_passed_in(entries, rnd):
    story = Story()
    for offset, data in entries:
        story.add((START + dt.timedelta(days=offset)).isoformat(), data)
    history = story.history
    shuffled = list(history.events)
    rnd.shuffle(shuffled)
    permuted = DeviceHistory(patient=history.patient, device=history.device, events=tuple(shuffled))
    assert forecast_device(permuted, SETTINGS, CATALOGUE) == forecast_device(history, SETTINGS, CATALOGUE)


@hsettings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=200), event_data), max_size=6))
def test_every_item_is_due_no_later_than_its_latest_safe_date(entries):
    story = Story()
    for offset, data in entries:
        story.add((START + dt.timedelta(days=offset)).isoformat(), data)
    for found in forecast_device(story.history, SETTINGS, CATALOGUE).items:
        assert found.latest_safe_on is None or found.due_on <= found.latest_safe_on
        assert found.why and found.rule
