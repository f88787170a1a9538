"""Intrathecal pump rules: daily volume, low-reservoir alarm, refill due date, refill
reconciliation, pocket fill and drug dose warnings (clinical reference rules 1-9).

Pure functions over plain values; each rule has its own function named after it.
Volumes are in mL, doses in mg (shown in the drug's display unit), dates are dates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence, Union

from devicelog.clinic.catalogue import Catalogue, Drug, DrugLimit, LimitKind
from devicelog.clinic.due import (
    ClinicalWarning,
    DueItem,
    days_floor,
    fmt_ml,
    fmt_ml_per_day,
    make_item,
    plus_days,
)
from devicelog.clinic.history import DeviceHistory, clinical_order
from devicelog.clinic.records import (
    Event,
    LimitOverride,
    ProgrammingData,
    PumpMode,
    PumpProgram,
    RefillData,
    RefillReviewData,
)
from devicelog.settings import Settings

DrugLookup = Union[Catalogue, Mapping[str, Drug], Iterable[Drug]]

#: Default low-reservoir alarm volume (rule 3) when neither the refill nor the model gives one.
DEFAULT_LOW_ALARM_ML = 2.0
#: Ziconotide vial strengths (reference 1.3): 25 mcg/mL and 100 mcg/mL, in mg/mL.
ZICONOTIDE_VIAL_MG_PER_ML = (0.025, 0.1)
_EPS = 1e-9


def drug_table(drugs: DrugLookup) -> dict[str, Drug]:
    """The drugs by code, from a catalogue, a mapping or a list."""
    if isinstance(drugs, Catalogue):
        return {d.code: d for d in drugs.drugs}
    if isinstance(drugs, Mapping):
        return dict(drugs)
    return {d.code: d for d in drugs}


# ============================================================== rules 1 and 2: volume


def daily_volume_ml(program: PumpProgram) -> float:
    """Rule 1 (domain.md, Rules the software must encode): the programmed daily volume.

    Flex: ``Σ rate_mL/h × hours``.  Simple continuous: ``dose_mg_per_day /
    concentration_mg_per_mL`` of the primary drug (``drugs[0]``).  Constant flow
    (reference 1.1, Codman 3000): the fixed ``flow_rate_ml_per_day``.
    """
    if program.mode is PumpMode.flex:
        return sum(step.rate_ml_per_h * step.hours for step in program.flex_steps or ())
    if program.mode is PumpMode.constant_flow:
        return float(program.flow_rate_ml_per_day or 0.0)
    return float(program.dose_mg_per_day or 0.0) / program.drugs[0].concentration_mg_per_ml


def bolus_allowance_ml_per_day(program: PumpProgram) -> float:
    """Rule 2 (domain.md, Rules the software must encode): the worst-case patient bolus
    volume per day, ``PTM_bolus_mL × max_PTM_per_day``, added for the alarm date.

    A bolus volume or count that is not set (None) gives no allowance; the why says so
    (``describe_daily_volume``)."""
    if program.bolus_ml is None or program.bolus_max_per_day is None:
        return 0.0
    return program.bolus_ml * program.bolus_max_per_day


def worst_case_daily_volume_ml(program: PumpProgram) -> float:
    """Rules 1 + 2: the daily volume the alarm date is computed with."""
    return daily_volume_ml(program) + bolus_allowance_ml_per_day(program)


def drug_doses_mg_per_day(program: PumpProgram) -> dict[str, float]:
    """The continuous daily dose of every drug of the admixture: daily volume × concentration."""
    volume = daily_volume_ml(program)
    return {d.drug: volume * d.concentration_mg_per_ml for d in program.drugs}


def _volume_formula(program: PumpProgram, drugs: Mapping[str, Drug] | None = None) -> str:
    if program.mode is PumpMode.flex:
        return "flex " + " + ".join(f"{s.rate_ml_per_h:g} mL/h × {s.hours:g} h" for s in program.flex_steps or ())
    if program.mode is PumpMode.constant_flow:
        return f"constant flow {fmt_ml_per_day(daily_volume_ml(program))}"
    first = program.drugs[0]
    drug = (drugs or {}).get(first.drug)
    if drug is not None:  # in the unit the drug is read in (ziconotide: mcg)
        return f"{drug.show(program.dose_mg_per_day, '/day')} ÷ {drug.show(first.concentration_mg_per_ml, '/mL')} {first.drug}"
    return f"{program.dose_mg_per_day:g} mg/day ÷ {first.concentration_mg_per_ml:g} mg/mL {first.drug}"


def describe_daily_volume(program: PumpProgram, drugs: Mapping[str, Drug] | None = None) -> str:
    """The daily volume with its formula and, if any, the bolus allowance."""
    base = f"{_volume_formula(program, drugs)} = {fmt_ml_per_day(daily_volume_ml(program))}"
    allowance = bolus_allowance_ml_per_day(program)
    if allowance > 0:
        base += (
            f" + boluses {program.bolus_ml:g} mL × {program.bolus_max_per_day}/day"
            f" = {fmt_ml_per_day(worst_case_daily_volume_ml(program))} worst case"
        )
    elif (program.bolus_ml is None) != (program.bolus_max_per_day is None):
        base += " (patient bolus volume or boluses per day not set: no bolus allowance added)"
    return base


# ============================================================== rule 3: alarm date


@dataclass(frozen=True)
class AlarmForecast:
    alarm_on: dt.date | None  # None: nothing is delivered, no alarm can be forecast
    days: int | None
    why: str


def low_reservoir_alarm_date(
    start_on: dt.date, volume_ml: float, low_alarm_ml: float, daily_volume_ml: float
) -> AlarmForecast:
    """Rule 3 (domain.md, Rules the software must encode): ``days_to_low_alarm =
    (vol_after_fill_mL − low_alarm_mL) / daily_volume_mL``.

    The fractional day count is cut down (clinic defaults: "dates that protect a
    patient round toward the earlier day").  A reservoir already at or below the
    alarm volume alarms on ``start_on``.
    """
    above = volume_ml - low_alarm_ml
    if daily_volume_ml <= _EPS:
        return AlarmForecast(None, None, f"{fmt_ml(volume_ml)} in the reservoir, nothing programmed to flow: no alarm date")
    if above <= 0:
        return AlarmForecast(
            start_on,
            0,
            f"{fmt_ml(volume_ml)} is at or below the {fmt_ml(low_alarm_ml)} low-reservoir alarm → alarm {start_on}",
        )
    exact = above / daily_volume_ml
    days = days_floor(exact)
    alarm_on = plus_days(start_on, days)
    return AlarmForecast(
        alarm_on,
        days,
        f"({fmt_ml(volume_ml)} − {fmt_ml(low_alarm_ml)} low alarm) = {fmt_ml(above)} ÷ "
        f"{fmt_ml_per_day(daily_volume_ml)} = {exact:.2f} days, cut down to {days} → alarm {alarm_on}",
    )


# ============================================================== rule 5: drug caps


@dataclass(frozen=True)
class RefillLimit:
    """One candidate date for the next refill and what it comes from."""

    on: dt.date
    label: str  # e.g. "morphine stability 90 days"


def ziconotide_is_undiluted(program: PumpProgram, drug_code: str) -> bool:
    """Reference 1.3: undiluted ziconotide is a vial strength (25 or 100 mcg/mL) on its own.

    Any other concentration, or ziconotide in an admixture with other drugs, counts as
    diluted: when unsure, the shorter (safer) limit applies.
    """
    if len(program.drugs) != 1 or program.drugs[0].drug != drug_code:
        return False
    conc = program.drugs[0].concentration_mg_per_ml
    return any(abs(conc - vial) <= 1e-9 for vial in ZICONOTIDE_VIAL_MG_PER_ML)


def ziconotide_refill_limit_days(
    program: PumpProgram, drug_code: str, first_fill: bool, settings: Settings
) -> tuple[int, str]:
    """Rule 5 (domain.md, Rules the software must encode): ziconotide naive-pump first
    refill ≤ 14 days, then ≤ 40 days diluted and ≤ 84 days undiluted.

    ``first_fill``: this is the first fill with ziconotide in this device.
    """
    if first_fill:
        days = settings.ziconotide_first_refill_days
        return days, f"ziconotide first refill of a naive pump {days} days"
    if ziconotide_is_undiluted(program, drug_code):
        days = settings.ziconotide_undiluted_days
        return days, f"ziconotide undiluted {days} days"
    days = settings.ziconotide_diluted_days
    return days, f"ziconotide diluted {days} days"


def drug_stability_limits(
    fill_on: dt.date,
    program: PumpProgram,
    drugs: Mapping[str, Drug],
    settings: Settings,
    *,
    first_ziconotide_fill: bool,
    admixture_bud: dt.date | None,
) -> tuple[list[RefillLimit], list[str]]:
    """Rules 4 and 5 (domain.md, Rules the software must encode): the drug limits on the
    next refill: each drug's stability cap (ziconotide by rule 5), the admixture's
    pharmacy beyond-use date, and for a compounded drug with neither the clinic's
    default (``compounded_bud_days_if_missing``), said out loud.

    Returns the candidate dates and notes about inputs that were missing.
    """
    limits: list[RefillLimit] = []
    notes: list[str] = []
    if admixture_bud is not None:
        limits.append(RefillLimit(admixture_bud, "admixture beyond-use date"))
    missing_bud: list[str] = []
    for entry in program.drugs:
        drug = drugs.get(entry.drug)
        if drug is not None and drug.is_ziconotide:
            days, label = ziconotide_refill_limit_days(program, entry.drug, first_ziconotide_fill, settings)
            limits.append(RefillLimit(plus_days(fill_on, days), label))
        elif drug is not None and drug.stability_days is not None:
            limits.append(
                RefillLimit(plus_days(fill_on, drug.stability_days), f"{entry.drug} stability {drug.stability_days} days")
            )
        elif admixture_bud is None:
            missing_bud.append(entry.drug if drug is not None else f"{entry.drug} (not in the catalogue)")
    if missing_bud:
        days = settings.compounded_bud_days_if_missing
        limits.append(
            RefillLimit(plus_days(fill_on, days), f"no beyond-use date recorded for {', '.join(missing_bud)}: clinic default {days} days")
        )
        notes.append(
            f"compounded {', '.join(missing_bud)} without a pharmacy beyond-use date: "
            f"the clinic default of {days} days is used (rule 5)"
        )
    return limits, notes


# ============================================================== rule 4: refill due


@dataclass(frozen=True)
class RefillDue:
    due_on: dt.date
    latest_safe_on: dt.date
    alarm_on: dt.date | None
    limit_won: str
    why: str


def refill_due_date(
    alarm: AlarmForecast,
    limits: Sequence[RefillLimit],
    margin_days: int,
    *,
    not_before: dt.date,
) -> RefillDue:
    """Rule 4 (domain.md, Rules the software must encode): ``refill_due =
    min(low_alarm_date − margin, fill_date + drug_max_interval, admixture_BUD)``.

    An alarm date closer than the margin puts the booking on ``not_before`` (the fill
    or programming date), never before it.  The latest safe date is the earliest of
    the alarm date itself and the drug limits.
    """
    candidates: list[RefillLimit] = []
    parts: list[str] = []
    if alarm.alarm_on is not None:
        booked = plus_days(alarm.alarm_on, -margin_days)
        label = f"alarm − {margin_days} days margin"
        if booked < not_before:
            booked = not_before
            label += f" (before {not_before}, so {not_before})"
        candidates.append(RefillLimit(booked, label))
        parts.append(alarm.why)
        parts.append(f"{label} → {booked}")
    else:
        parts.append(alarm.why)
    for limit in limits:
        candidates.append(limit)
        parts.append(f"{limit.label} → {limit.on}")
    if not candidates:  # no flow and no drug limit: book at once rather than never
        candidates.append(RefillLimit(not_before, "no limit could be computed"))
        parts.append(f"no limit could be computed → {not_before}")
    winner = min(candidates, key=lambda c: c.on)
    hard = [c.on for c in limits]
    if alarm.alarm_on is not None:
        hard.append(alarm.alarm_on)
    latest_safe = min(hard) if hard else winner.on
    latest_safe = max(latest_safe, winner.on)
    if len(candidates) > 1:
        parts.append(f"earliest: {winner.label} → {winner.on}")
    return RefillDue(winner.on, latest_safe, alarm.alarm_on, winner.label, "; ".join(parts))


# ============================================================== pump timeline


@dataclass
class PumpFill:
    """A refill and the pump programming changes that followed it before the next one."""

    event: Event
    data: RefillData
    changes: list[tuple[Event, ProgrammingData]] = field(default_factory=list)


def pump_fills(events: Iterable[Event]) -> list[PumpFill]:
    """Refills in clinical order, each with its later pump programming changes."""
    fills: list[PumpFill] = []
    for event in clinical_order(events):
        if isinstance(event.data, RefillData):
            fills.append(PumpFill(event, event.data))
        elif isinstance(event.data, ProgrammingData) and event.data.pump_program is not None and fills:
            fills[-1].changes.append((event, event.data))
    return fills


@dataclass(frozen=True)
class Segment:
    start_on: dt.date
    end_on: dt.date
    program: PumpProgram

    @property
    def days(self) -> int:
        return max(0, (self.end_on - self.start_on).days)


def delivery_segments(fill: PumpFill, until: dt.date) -> list[Segment]:
    """The programs in force from the fill to ``until``, piece by piece."""
    segments: list[Segment] = []
    start, program = fill.event.occurred_on, fill.data.program
    for event, change in fill.changes:
        if event.occurred_on > until:
            break
        segments.append(Segment(start, event.occurred_on, program))
        start, program = event.occurred_on, change.pump_program  # type: ignore[assignment]
    segments.append(Segment(start, max(start, until), program))
    return segments


def low_alarm_ml_of(history: DeviceHistory, data: RefillData) -> float:
    if data.low_alarm_ml is not None:
        return data.low_alarm_ml
    if history.device.model.low_alarm_ml is not None:
        return history.device.model.low_alarm_ml
    return DEFAULT_LOW_ALARM_ML


def is_first_ziconotide_fill(fills: Sequence[PumpFill], index: int, drugs: Mapping[str, Drug]) -> bool:
    """Rule 5: the fill at ``index`` is the first fill with ziconotide in this device."""

    def has_ziconotide(fill: PumpFill) -> bool:
        return any((d := drugs.get(e.drug)) is not None and d.is_ziconotide for e in fill.data.program.drugs)

    return has_ziconotide(fills[index]) and not any(has_ziconotide(f) for f in fills[:index])


def refill_schedule(
    history: DeviceHistory,
    fills: Sequence[PumpFill],
    index: int,
    settings: Settings,
    drugs: Mapping[str, Drug],
) -> RefillDue:
    """Rules 1-5 for the fill at ``index``: when the next refill is due, and why.

    A pump programming change after the fill changes the daily volume: the alarm is
    recomputed from the reservoir volume at the change (as recorded, or else the
    volume expected on that date at the worst-case daily volume, which is said).
    """
    fill = fills[index]
    fill_on = fill.event.occurred_on
    low_alarm = low_alarm_ml_of(history, fill.data)
    anchor_on, volume, program = fill_on, fill.data.reservoir_volume_after_ml, fill.data.program
    history_parts = [f"filled to {fmt_ml(volume)} on {fill_on}; {describe_daily_volume(program, drugs)}"]
    for event, change in fill.changes:
        new_program = change.pump_program
        assert new_program is not None
        days = max(0, (event.occurred_on - anchor_on).days)
        if change.reservoir_volume_ml is not None:
            volume = change.reservoir_volume_ml
            source = f"{fmt_ml(volume)} recorded at the programming change on {event.occurred_on}"
        else:
            used = worst_case_daily_volume_ml(program) * days
            volume = max(0.0, volume - used)
            source = (
                f"no reservoir volume recorded at the programming change on {event.occurred_on}: "
                f"expected {fmt_ml(volume)} ({days} days at {fmt_ml_per_day(worst_case_daily_volume_ml(program))})"
            )
        anchor_on, program = event.occurred_on, new_program
        history_parts.append(f"{source}; new program {describe_daily_volume(program, drugs)}")
    alarm = low_reservoir_alarm_date(anchor_on, volume, low_alarm, worst_case_daily_volume_ml(program))
    limits, _notes = drug_stability_limits(
        fill_on,
        fill.data.program,
        drugs,
        settings,
        first_ziconotide_fill=is_first_ziconotide_fill(fills, index, drugs),
        admixture_bud=fill.data.admixture_bud,
    )
    due = refill_due_date(alarm, limits, settings.refill_margin_days, not_before=anchor_on)
    why = "; ".join(history_parts) + "; " + due.why
    observed = None
    if index > 0:
        reservoir_ml = history.device.model.reservoir_ml or 20.0
        observed = observed_over_delivery(fills[index - 1], fill_on, fill.data, reservoir_ml, settings)
    if observed is None:
        return RefillDue(due.due_on, due.latest_safe_on, due.alarm_on, due.limit_won, why)
    # Rule 27: the same limits from the rate observed over the last interval, from the fill.
    fill_program = fill.data.program
    allowance = bolus_allowance_ml_per_day(fill_program)
    observed_alarm = low_reservoir_alarm_date(
        fill_on, fill.data.reservoir_volume_after_ml, low_alarm, observed.rate_ml_per_day + allowance
    )
    by_observed = refill_due_date(observed_alarm, limits, settings.refill_margin_days, not_before=fill_on)
    rate_text = fmt_ml_per_day(observed.rate_ml_per_day)
    if allowance > 0:
        rate_text += f" + boluses {fmt_ml_per_day(allowance)} worst case"
    observed_why = (
        f"rule 27: {observed.why}; from the fill at the observed rate {rate_text}: "
        f"{observed_alarm.why}; refill due {by_observed.due_on} (observed) vs {due.due_on} (programmed)"
    )
    if by_observed.due_on < due.due_on:
        winner, label = by_observed, f"observed rate {fmt_ml_per_day(observed.rate_ml_per_day)}: {by_observed.limit_won}"
        observed_why += f": the earlier, observed, wins → {by_observed.due_on}"
    else:
        winner, label = due, due.limit_won
        observed_why += f": the earlier, programmed, wins → {due.due_on}"
    alarms = [a for a in (due.alarm_on, by_observed.alarm_on) if a is not None]
    return RefillDue(
        winner.due_on,
        min(due.latest_safe_on, by_observed.latest_safe_on),
        min(alarms) if alarms else None,
        label,
        f"{why}; {observed_why}",
    )


# ============================================================== rules 8 and 9


def expected_residual_ml(
    volume_after_fill_ml: float, segments: Sequence[tuple[int, float]], bolus_volume_ml: float
) -> float:
    """Rule 8 (domain.md, Rules the software must encode): ``expected_residual =
    vol_after_fill − daily_volume × days_elapsed − boluses_logged``.

    ``segments`` are (days, daily volume in mL/day) pieces, one per program in force
    since the fill.  A pump cannot hold less than nothing: the result is at least 0 mL.
    """
    delivered = sum(days * volume for days, volume in segments)
    return max(0.0, volume_after_fill_ml - delivered - bolus_volume_ml)


@dataclass(frozen=True)
class Discrepancy:
    expected_residual_ml: float
    withdrawn_ml: float
    discrepancy_ml: float  # withdrawn − expected
    limit_ml: float
    flagged: bool
    direction: str  # "" when withdrawn equals expected
    text: str


def refill_discrepancy(
    withdrawn_ml: float, expected_residual_ml: float, reservoir_ml: float, settings: Settings
) -> Discrepancy:
    """Rule 8 (domain.md, Rules the software must encode): flag ``|actual − expected|``
    above 1 mL (20 mL pump) or 2 mL (40 mL pump); less than expected is "over-delivery,
    leak or diversion", more than expected "under-delivery, stall or occlusion".

    The limit is strict: a discrepancy equal to it is not flagged.  Amounts are
    compared at 1 µL resolution so float noise cannot flag an exact 1.0 mL.
    """
    diff = round(withdrawn_ml - expected_residual_ml, 6)
    limit = settings.discrepancy_limit_ml(reservoir_ml)
    if diff < 0:
        direction = "over-delivery, leak or diversion"
        relation = "less than expected"
    elif diff > 0:
        direction = "under-delivery, stall or occlusion"
        relation = "more than expected"
    else:
        direction, relation = "", "as expected"
    flagged = abs(diff) > limit
    text = (
        f"withdrawn {fmt_ml(withdrawn_ml)} vs expected {fmt_ml(expected_residual_ml)}: "
        f"{diff:+.2f} mL ({relation})"
    )
    if flagged:
        text += f", beyond the {fmt_ml(limit)} limit for a {reservoir_ml:g} mL pump: {direction}"
    else:
        text += f", within the {fmt_ml(limit)} limit for a {reservoir_ml:g} mL pump"
    return Discrepancy(expected_residual_ml, withdrawn_ml, diff, limit, flagged, direction, text)


@dataclass(frozen=True)
class PocketFillCheck:
    flagged: bool
    text: str


def possible_pocket_fill(data: RefillData, settings: Settings) -> PocketFillCheck:
    """Rule 9 (domain.md, Rules the software must encode): a post-refill mismatch between
    the volume injected and the volume programmed or measured is a possible pocket fill.

    The reservoir is emptied at a refill, so the volume after should equal the volume
    added; a difference above ``settings.pocket_fill_tolerance_ml`` is flagged.
    """
    tolerance = settings.pocket_fill_tolerance_ml
    problems: list[str] = []
    added = data.volume_added_ml
    for label, value in (("programmed", data.reservoir_volume_after_ml), ("measured", data.measured_after_ml)):
        if value is None:
            continue
        gap = round(abs(value - added), 6)
        if gap > tolerance:
            problems.append(
                f"{label} {fmt_ml(value)} vs injected {fmt_ml(added)} differ by {fmt_ml(gap)} "
                f"(tolerance {fmt_ml(tolerance)})"
            )
    if problems:
        return PocketFillCheck(True, "possible pocket fill: " + "; ".join(problems))
    return PocketFillCheck(False, f"injected, programmed and measured volumes agree within {fmt_ml(tolerance)}")


@dataclass(frozen=True)
class ObservedRate:
    rate_ml_per_day: float
    why: str


def observed_over_delivery(
    previous: PumpFill, refill_on: dt.date, data: RefillData, reservoir_ml: float, settings: Settings
) -> ObservedRate | None:
    """Rule 27 (domain.md, Rules added): after a flagged shortfall (less withdrawn than
    expected, rule 8) the daily volume observed over the last interval,
    ``(volume after the previous fill − withdrawn − boluses logged) ÷ days elapsed``,
    is faster than the programmed one by more than the flag limit over the interval;
    the next refill is then computed from it as well.  None when the interval was not
    flagged as over-delivery (or had no days): the programmed rate stands, since a
    slower observed rate would only put the refill later.

    The boluses logged are taken out so that the observed rate compares with the
    programmed continuous one; the worst-case bolus allowance (rule 2) is added back
    to both alike.
    """
    rec = reconcile_refill(previous, refill_on, data, reservoir_ml, settings)
    days = (refill_on - previous.event.occurred_on).days
    if days <= 0 or not rec.discrepancy.flagged or rec.discrepancy.discrepancy_ml >= 0:
        return None
    after_ml = previous.data.reservoir_volume_after_ml
    used_ml = after_ml - data.volume_withdrawn_ml - (data.bolus_volume_since_last_fill_ml or 0.0)  # blank: assumed none
    rate = used_ml / days
    segments = delivery_segments(previous, refill_on)
    programmed = sum(s.days * daily_volume_ml(s.program) for s in segments) / days
    boluses = f" − {fmt_ml(data.bolus_volume_since_last_fill_ml)} boluses logged" if data.bolus_volume_since_last_fill_ml else ""
    why = (
        f"withdrawn {fmt_ml(data.volume_withdrawn_ml)} is {fmt_ml(-rec.discrepancy.discrepancy_ml)} less than the "
        f"{fmt_ml(rec.expected_residual_ml)} expected, beyond the {fmt_ml(rec.discrepancy.limit_ml)} limit; observed "
        f"({fmt_ml(after_ml)} after the fill on {previous.event.occurred_on} − {fmt_ml(data.volume_withdrawn_ml)} withdrawn"
        f"{boluses}) ÷ {days} days = {fmt_ml_per_day(rate)}, programmed {fmt_ml_per_day(programmed)}"
    )
    return ObservedRate(rate, why)


@dataclass(frozen=True)
class Reconciliation:
    expected_residual_ml: float
    why: str
    discrepancy: Discrepancy


def reconcile_refill(
    previous: PumpFill, refill_on: dt.date, data: RefillData, reservoir_ml: float, settings: Settings
) -> Reconciliation:
    """Rule 8 at one refill: the expected residual from the previous fill, piece by
    piece over the programs in force, and the discrepancy with what was withdrawn."""
    segments = delivery_segments(previous, refill_on)
    pieces = [(s.days, daily_volume_ml(s.program)) for s in segments]
    # Boluses left blank are unknown (None): none are subtracted, and the why says so
    # rather than pretending "0 mL" was read from the pump log (issue 13.5).
    logged = data.bolus_volume_since_last_fill_ml
    bolus_ml = logged if logged is not None else 0.0
    expected = expected_residual_ml(previous.data.reservoir_volume_after_ml, pieces, bolus_ml)
    terms = " − ".join(f"{days} days × {fmt_ml_per_day(v)}" for days, v in pieces)
    raw = previous.data.reservoir_volume_after_ml - sum(d * v for d, v in pieces) - bolus_ml
    boluses = f"{fmt_ml(logged)} boluses logged" if logged is not None else f"{fmt_ml(0.0)} (boluses not recorded: assumed none)"
    why = (
        f"{fmt_ml(previous.data.reservoir_volume_after_ml)} after the fill on {previous.event.occurred_on}"
        f" − {terms} − {boluses} = {fmt_ml(expected)} expected"
    )
    if raw < 0:
        why += f" (computed {raw:.2f} mL, a pump cannot hold less than 0 mL)"
    return Reconciliation(expected, why, refill_discrepancy(data.volume_withdrawn_ml, expected, reservoir_ml, settings))


# ============================================================== rules 6 and 7: doses


def applicable_limits(drug: Drug, settings: Settings, kind: LimitKind | None = None) -> list[DrugLimit]:
    """Issue 18.2: the drug's limits that apply under the clinic's settings: a label's
    limit of the clinic's region (or one naming no region), and consensus limits only
    when the clinic applies them (``consensus_limits``).  Of ``kind`` when given."""
    return [
        lim
        for lim in drug.all_limits()
        if (kind is None or lim.kind is kind)
        and (lim.region is None or lim.region == settings.region)
        and (settings.consensus_limits or not lim.consensus)
    ]


def limit_code(drug: Drug, limit: DrugLimit) -> str:
    """The code of a warning about ``limit``: an override names the limits it overrides by it."""
    return f"limit_{drug.code}_{limit.kind.value}_{limit.ref}"


_LIMIT_WORDS = {
    LimitKind.max_concentration: "maximum concentration",
    LimitKind.max_dose: "maximum daily dose",
    LimitKind.max_step: "largest increase",
    LimitKind.min_step_interval: "shortest time between increases",
}


def show_limit(drug: Drug, limit: DrugLimit) -> str:
    """A limit as people read it: ``20 mg/mL``, ``2.4 mcg/day``, ``24 h``."""
    if limit.kind is LimitKind.min_step_interval:
        return f"{limit.value:g} h"
    return drug.show(limit.value, limit.kind.per)


def describe_limit(drug: Drug, limit: DrugLimit) -> str:
    """``maximum daily dose 19.2 mcg/day (hard, US; source: ...)``: the limit, whether it
    blocks, its region and its source (issue 18.2: every limit names its source)."""
    where = f", {limit.region}" if limit.region else ""
    return f"{_LIMIT_WORDS[limit.kind]} {show_limit(drug, limit)} ({limit.severity}{where}; source: {limit.source})"


def _exceeded(drug: Drug, limit: DrugLimit, what: str, level: str | None = None) -> ClinicalWarning:
    level = level or ("block" if limit.severity == "hard" else "warn")
    return ClinicalWarning(
        level,
        limit_code(drug, limit),
        "rule 6" if drug.is_ziconotide else "rule 7",
        f"{what} is above the {describe_limit(drug, limit)}" + (": refused" if level == "block" else ""),
    )


def concentration_checks(drug: Drug, concentration_mg_per_ml: float, settings: Settings) -> list[ClinicalWarning]:
    """Rule 7 (domain.md, Rules the software must encode) and issue 18.2: a concentration
    above each applicable maximum concentration, naming that limit's source.

    A labelled strength (Infumorph 25 mg/mL) is never a hard block: a hard limit it
    exceeds is a soft one for it, and the message says it is a labelled strength."""
    warnings = []
    labelled = drug.is_labelled_strength(concentration_mg_per_ml)
    for lim in applicable_limits(drug, settings, LimitKind.max_concentration):
        if concentration_mg_per_ml <= lim.value + _EPS:
            continue
        what = f"{drug.name} {drug.show(concentration_mg_per_ml, '/mL')}"
        if labelled:
            what += " (a labelled strength: never a hard block)"
        warnings.append(_exceeded(drug, lim, what, "warn" if labelled else None))
    return warnings


def dose_checks(drug: Drug, dose_mg_per_day: float, settings: Settings) -> list[ClinicalWarning]:
    """Rules 6 and 7 (domain.md, Rules the software must encode) and issue 18.2: a daily
    dose above each applicable maximum daily dose (ziconotide's by region, hard; the
    Infumorph label's caution and the PACC maxima, soft), naming each one's source."""
    return [
        _exceeded(drug, lim, f"{drug.name} {drug.show(dose_mg_per_day, '/day')}")
        for lim in applicable_limits(drug, settings, LimitKind.max_dose)
        if dose_mg_per_day > lim.value + _EPS
    ]


def titration_checks(
    previous_doses: Sequence[tuple[dt.date, float]],
    new_dose_mg_per_day: float,
    on: dt.date,
    settings: Settings,
    drug: Drug,
) -> list[ClinicalWarning]:
    """Rule 6 (domain.md, Rules the software must encode) and issue 18.2: the titration
    limits of the library (ziconotide: an increase above 2.4 mcg/day is refused; one
    less than 24 h after the last is refused, less than 48 h warned).

    ``previous_doses`` are the (date, continuous mg/day) of earlier programs, oldest
    first; 0 when the drug was not in the pump.  Events carry dates, not times: the
    same day counts as 0 h since the last increase, the next day as 24 h, two days as
    48 h.  The first dose in a device is a start, not an increase: for ziconotide,
    above the largest step it is a warning (it may continue a replaced pump's dose).
    """
    warnings: list[ClinicalWarning] = []
    steps = applicable_limits(drug, settings, LimitKind.max_step)
    intervals = applicable_limits(drug, settings, LimitKind.min_step_interval)
    previous = previous_doses[-1][1] if previous_doses else 0.0
    increase = new_dose_mg_per_day - previous
    if increase <= _EPS or not (steps or intervals):
        return warnings
    if previous <= _EPS and not any(dose > _EPS for _, dose in previous_doses):
        for lim in steps:
            if drug.is_ziconotide and new_dose_mg_per_day > lim.value + _EPS:
                warnings.append(
                    ClinicalWarning(
                        "warn",
                        "ziconotide_start_dose",
                        "rule 6",
                        f"{drug.name} starts at {drug.show(new_dose_mg_per_day, '/day')}; the label starts at "
                        f"≤ {show_limit(drug, lim)} (ignore if this continues the dose of a replaced pump)",
                    )
                )
        return warnings
    change = f"{drug.show(previous, '/day')} → {drug.show(new_dose_mg_per_day, '/day')}"
    for lim in steps:
        if increase > lim.value + _EPS:
            warnings.append(_exceeded(drug, lim, f"{drug.name} increase of {drug.show(increase, '/day')} ({change})"))
    last_increase_on = None
    level = 0.0
    for when, dose in previous_doses:
        if dose > level + _EPS:
            last_increase_on = when
        level = dose
    if last_increase_on is not None:
        hours = (on - last_increase_on).days * 24
        unmet = [lim for lim in intervals if hours < lim.value - _EPS]
        if any(lim.severity == "hard" for lim in unmet):  # refused: a softer interval adds nothing
            unmet = [lim for lim in unmet if lim.severity == "hard"]
        for lim in unmet:
            ago = "the same day" if hours == 0 else f"{hours} h before"
            warnings.append(
                ClinicalWarning(
                    "block" if lim.severity == "hard" else "warn",
                    limit_code(drug, lim),
                    "rule 6" if drug.is_ziconotide else "rule 7",
                    f"{drug.name} was last increased on {last_increase_on} ({ago}, counting by dates); the "
                    f"{describe_limit(drug, lim)} is not met" + (": refused" if lim.severity == "hard" else ""),
                )
            )
    return warnings


def implausible_values(program: PumpProgram, drugs: Mapping[str, Drug], settings: Settings) -> list[tuple[str, float, str]]:
    """Issue 19 (numbers outside clinical ranges): a concentration or daily dose no clinic
    can have, refused whatever the settings' soft limits and overrides.

    Implausible means more than ``settings.implausible_factor`` times the highest number
    the library knows for that drug: any of its limits (every region, consensus or not)
    and its labelled strengths.  Hydromorphone: highest concentration 15 mg/mL (PACC),
    × 4 = 60 mg/mL, so 1000 mg/mL is refused; highest daily dose 25 mg/day (clinical
    range), × 4 = 100 mg/day, so 1000 mg/day is refused.  A drug the library gives no
    number for (sufentanil; baclofen's dose) is bounded only by the record's own range.

    Returns (field within the program, value, message) for each."""
    found: list[tuple[str, float, str]] = []
    factor = settings.implausible_factor
    doses = drug_doses_mg_per_day(program)
    for i, entry in enumerate(program.drugs):
        drug = drugs.get(entry.drug)
        if drug is None:
            continue
        limits = drug.all_limits()
        concs = [lim.value for lim in limits if lim.kind is LimitKind.max_concentration]
        concs += list(drug.labelled_concentrations_mg_per_ml)
        if concs and entry.concentration_mg_per_ml > factor * max(concs) + _EPS:
            found.append((
                f"drugs.{i}.concentration_mg_per_ml",
                entry.concentration_mg_per_ml,
                f"{drug.name} {drug.show(entry.concentration_mg_per_ml, '/mL')} is more than {factor:g} × the highest "
                f"concentration devicelog knows for it ({drug.show(max(concs), '/mL')}): not a value a clinic can have "
                "(check the unit: mg or mcg)",
            ))
        dose_limits = [lim.value for lim in limits if lim.kind is LimitKind.max_dose]
        dose = doses.get(entry.drug, 0.0)
        if dose_limits and dose > factor * max(dose_limits) + _EPS:
            where = "dose_mg_per_day" if i == 0 and program.dose_mg_per_day is not None else f"drugs.{i}.concentration_mg_per_ml"
            found.append((
                where,
                program.dose_mg_per_day if where == "dose_mg_per_day" else entry.concentration_mg_per_ml,
                f"{drug.name} {drug.show(dose, '/day')} is more than {factor:g} × the highest daily dose devicelog "
                f"knows for it ({drug.show(max(dose_limits), '/day')}): not a value a clinic can have "
                "(check the unit: mg or mcg)",
            ))
    return found


def overridable(warnings: Iterable[ClinicalWarning]) -> list[ClinicalWarning]:
    """The soft drug limits exceeded (issue 18.2): saving them needs an override with a reason."""
    return [w for w in warnings if w.level == "warn" and w.code.startswith("limit_")]


def override_problems(warnings: Iterable[ClinicalWarning], override: LimitOverride | None) -> list[str]:
    """Issue 18.2: why an entry with these dose warnings cannot be saved with this
    override (empty: it can).  Every soft limit exceeded is named by the override;
    an override names only limits that are exceeded."""
    soft = overridable(warnings)
    named = {lim.code for lim in override.limits} if override is not None else set()
    problems = [f"soft limit exceeded: {w.message}; give a reason to override it" for w in soft if w.code not in named]
    if override is not None:
        exceeded = {w.code for w in soft}
        stale = sorted(named - exceeded)
        if stale:
            problems.append(f"the override names limits this entry does not exceed: {', '.join(stale)}")
    return problems


def overridden_text(override: LimitOverride, on: dt.date, author: str) -> str:
    return f"overridden on {on} by {author}: {override.reason}"


def program_timeline(events: Iterable[Event]) -> list[tuple[Event, PumpProgram]]:
    """Every pump program set, by a refill or a programming change, in clinical order."""
    timeline: list[tuple[Event, PumpProgram]] = []
    for event in clinical_order(events):
        if isinstance(event.data, RefillData):
            timeline.append((event, event.data.program))
        elif isinstance(event.data, ProgrammingData) and event.data.pump_program is not None:
            timeline.append((event, event.data.pump_program))
    return timeline


def program_dose_warnings(
    earlier: Sequence[tuple[dt.date, PumpProgram]],
    program: PumpProgram,
    on: dt.date,
    settings: Settings,
    drugs: Mapping[str, Drug],
) -> list[ClinicalWarning]:
    """Rules 6 and 7 for a program set on ``on`` after the ``earlier`` ones."""
    warnings: list[ClinicalWarning] = []
    doses = drug_doses_mg_per_day(program)
    for entry in program.drugs:
        drug = drugs.get(entry.drug)
        if drug is None:
            warnings.append(
                ClinicalWarning("note", f"unknown_drug_{entry.drug}", "rule 7", f"{entry.drug} is not in the drug catalogue: no dose checks")
            )
            continue
        dose = doses[entry.drug]
        previous = [(when, drug_doses_mg_per_day(p).get(entry.drug, 0.0)) for when, p in earlier]
        warnings.extend(dose_checks(drug, dose, settings))
        warnings.extend(titration_checks(previous, dose, on, settings, drug))
        warnings.extend(concentration_checks(drug, entry.concentration_mg_per_ml, settings))
    return warnings


def dose_warnings(
    history: DeviceHistory,
    program: PumpProgram,
    occurred_on: dt.date,
    settings: Settings,
    drugs: DrugLookup,
) -> list[ClinicalWarning]:
    """Rules 6 and 7 for a program about to be saved (a refill or a programming change)
    on ``occurred_on``: compared with the programs logged on or before that date.
    The store refuses "block" warnings; "warn" ones are shown."""
    table = drug_table(drugs)
    earlier = [(e.occurred_on, p) for e, p in program_timeline(history.events) if e.occurred_on <= occurred_on]
    return program_dose_warnings(earlier, program, occurred_on, settings, table)


# ============================================================== items


def refill_reviews(events: Iterable[Event]) -> dict[int, list[Event]]:
    """Rule 26 (domain.md, Rules added): the reviews recorded of each refill, by the
    refill's event id, in clinical order.  A flagged refill discrepancy (rule 8) or
    possible pocket fill (rule 9) stays a due item until a review names the refill; a
    later refill or interrogation does not clear it."""
    found: dict[int, list[Event]] = {}
    for event in clinical_order(events):
        if isinstance(event.data, RefillReviewData) and event.data.refill_event_id is not None:
            found.setdefault(event.data.refill_event_id, []).append(event)
    return found


@dataclass(frozen=True)
class RefillFlags:
    """What is flagged at one refill (rules 8 and 9): the texts, empty when nothing is."""

    discrepancy: str | None  # the reconciliation and discrepancy text, when flagged
    pocket_fill: str | None  # the pocket-fill text (and reason given), when flagged

    @property
    def any(self) -> bool:
        return self.discrepancy is not None or self.pocket_fill is not None


def refill_flags(fills: Sequence[PumpFill], k: int, reservoir_ml: float, settings: Settings) -> RefillFlags:
    """The flags of the fill at ``k``: its discrepancy with the fill before (rule 8) and
    a possible pocket fill (rule 9)."""
    fill = fills[k]
    discrepancy = None
    if k > 0:
        rec = reconcile_refill(fills[k - 1], fill.event.occurred_on, fill.data, reservoir_ml, settings)
        if rec.discrepancy.flagged:
            discrepancy = f"{rec.why}; {rec.discrepancy.text}"
    pocket = possible_pocket_fill(fill.data, settings)
    pocket_text = None
    if pocket.flagged:
        reason = f"; reason given: {fill.data.pocket_fill_reason}" if fill.data.pocket_fill_reason else ""
        pocket_text = pocket.text + reason
    return RefillFlags(discrepancy, pocket_text)


def pump_items(history: DeviceHistory, settings: Settings, drugs: Mapping[str, Drug]) -> tuple[list[DueItem], list[ClinicalWarning]]:
    """The refill, discrepancy and pocket-fill items of a pump (rules 1-9), and the dose
    warnings of its current program (rules 6-7)."""
    items: list[DueItem] = []
    warnings: list[ClinicalWarning] = []
    events = clinical_order(history.events)
    fills = pump_fills(events)
    reservoir_ml = history.device.model.reservoir_ml or 20.0
    if not fills:
        items.append(
            make_item(
                history,
                what="Pump refill (no fill recorded)",
                code="refill",
                due_on=history.device.implanted_on,
                latest_safe_on=history.device.implanted_on,
                severity="high",
                rule="rule 4",
                why=f"no fill has been logged since the implant on {history.device.implanted_on}: "
                "the refill date cannot be forecast; log the implant fill or the last refill",
            )
        )
        return items, warnings

    latest = len(fills) - 1
    due = refill_schedule(history, fills, latest, settings, drugs)
    boxed = boxed_warnings(fills[latest].data.program, drugs)
    items.append(
        make_item(
            history,
            what="Pump refill",
            code="refill",
            due_on=due.due_on,
            latest_safe_on=due.latest_safe_on,
            severity="high",
            rule="rule 4",
            why="; ".join([due.why, *(w.message for w in boxed)]),
            source_event_id=fills[latest].event.id,
        )
    )
    _, notes = drug_stability_limits(
        fills[latest].event.occurred_on,
        fills[latest].data.program,
        drugs,
        settings,
        first_ziconotide_fill=False,
        admixture_bud=fills[latest].data.admixture_bud,
    )
    warnings.extend(ClinicalWarning("note", "compounded_bud_missing", "rule 5", n) for n in notes)

    reviewed = refill_reviews(events)
    open_until = "stays on the list until a review is recorded (rule 26)"
    for k, fill in enumerate(fills):
        if fill.event.id in reviewed:
            continue
        flags = refill_flags(fills, k, reservoir_ml, settings)
        if flags.discrepancy is not None:
            items.append(
                make_item(
                    history,
                    what="Review refill discrepancy",
                    code="refill_discrepancy_review",
                    due_on=fill.event.occurred_on,
                    latest_safe_on=fill.event.occurred_on,
                    severity="high",
                    rule="rule 8",
                    why=f"{flags.discrepancy}; {open_until}",
                    source_event_id=fill.event.id,
                )
            )
        if flags.pocket_fill is not None:
            items.append(
                make_item(
                    history,
                    what="Post-refill monitoring for possible pocket fill",
                    code="pocket_fill_monitoring",
                    due_on=fill.event.occurred_on,
                    latest_safe_on=fill.event.occurred_on,
                    severity="high",
                    rule="rule 9",
                    why=f"{flags.pocket_fill}; {open_until}",
                    source_event_id=fill.event.id,
                )
            )

    timeline = program_timeline(events)
    if timeline:
        event, program = timeline[-1]
        earlier = [(e.occurred_on, p) for e, p in timeline[:-1]]
        override = getattr(event.data, "limit_override", None)
        overridden = {lim.code for lim in override.limits} if override is not None else set()
        for w in program_dose_warnings(earlier, program, event.occurred_on, settings, drugs):
            if w.code in overridden:  # dealt with: said so, never dropped
                w = ClinicalWarning(w.level, w.code, w.rule, f"{w.message}; {overridden_text(override, event.occurred_on, event.author)}")
            warnings.append(w)
    return items, warnings


def boxed_warnings(program: PumpProgram, drugs: Mapping[str, Drug]) -> list[ClinicalWarning]:
    """Reference 8 (intrathecal baclofen): a drug label's boxed warning, shown with the
    refill items and previews of every pump holding that drug (baclofen withdrawal:
    refill scheduling and alarm awareness are the safeguards)."""
    found = []
    for entry in program.drugs:
        drug = drugs.get(entry.drug)
        if drug is not None and drug.boxed_warning:
            found.append(ClinicalWarning("warn", f"boxed_warning_{drug.code}", "reference 8", drug.boxed_warning))
    return found


# ============================================================== preview (before saving)


@dataclass(frozen=True)
class RefillPreview:
    """What the refill form shows before the refill is saved."""

    expected_residual_ml: float | None  # None: no earlier fill to reconcile with
    expected_residual_why: str
    discrepancy: Discrepancy | None
    pocket_fill: PocketFillCheck
    daily_volume_ml: float
    worst_case_daily_volume_ml: float
    low_reservoir_alarm_on: dt.date | None
    refill_due_on: dt.date
    refill_latest_safe_on: dt.date
    refill_due_why: str
    flags: tuple[str, ...]  # texts of what is flagged (discrepancy, pocket fill)
    warnings: tuple[ClinicalWarning, ...]  # dose warnings (rules 6, 7) and the rule 9 reason
    # Amending a refill that is not the latest: the next refill's date and its
    # reconciliation against the amended volumes, as the ledger will show it.
    next_fill: tuple[dt.date, Reconciliation] | None = None


def refill_preview(
    history: DeviceHistory,
    new_refill: RefillData,
    occurred_on: dt.date,
    settings: Settings,
    drugs: DrugLookup,
    *,
    amends: Event | None = None,
) -> RefillPreview:
    """Rules 1-9 for a refill not yet saved: expected residual, discrepancy and its
    flag, pocket-fill check, the new alarm date and the next refill due date with why.

    A new refill is placed after every event logged on or before ``occurred_on``,
    exactly where the store will put it, so the preview equals the saved forecast.

    ``amends``: the entry (as it stands) that this refill corrects.  The amendment takes
    its place in the whole history, with its id and date of record, as the store's
    ``effective_events`` will put it (issue 13.3: never compared with itself); the
    reconciliation is computed there with the same functions as the ledger
    (``reconcile_refill``), the dates are those of the latest fill as the forecast
    gives them (``refill_schedule``), and the refill after it, if any, is reconciled
    again against the amended volumes.
    """
    table = drug_table(drugs)
    existing = clinical_order(history.events)
    if amends is not None:
        new_event = amends.model_copy(update={"occurred_on": occurred_on, "data": new_refill})
        others = [e for e in existing if e.id != amends.id]
        history = history.model_copy(update={"events": tuple(others)})
        fills = pump_fills([*others, new_event])
    else:
        last_recorded = max((e.recorded_at for e in existing), default=dt.datetime(2000, 1, 1))
        new_event = Event(
            id=max((e.id for e in existing), default=0) + 1,
            device_id=history.device.id,
            occurred_on=occurred_on,
            author="(preview)",
            recorded_at=last_recorded + dt.timedelta(seconds=1),
            data=new_refill,
        )
        before = [e for e in existing if e.occurred_on <= occurred_on]
        fills = pump_fills([*before, new_event])
    index = next(k for k, f in enumerate(fills) if f.event is new_event)
    reservoir_ml = history.device.model.reservoir_ml or 20.0
    discrepancy = None
    expected = None
    expected_why = "no earlier fill is logged: nothing to reconcile"
    if index > 0:
        rec = reconcile_refill(fills[index - 1], occurred_on, new_refill, reservoir_ml, settings)
        discrepancy, expected, expected_why = rec.discrepancy, rec.expected_residual_ml, rec.why
    next_fill = None
    if index + 1 < len(fills):
        after = fills[index + 1]
        next_fill = (after.event.occurred_on, reconcile_refill(fills[index], after.event.occurred_on, after.data, reservoir_ml, settings))
    pocket = possible_pocket_fill(new_refill, settings)
    latest = len(fills) - 1
    due = refill_schedule(history, fills, latest, settings, table)
    due_why = due.why if latest == index else f"from the latest refill, of {fills[latest].event.occurred_on}: {due.why}"
    flags = []
    if discrepancy is not None and discrepancy.flagged:
        flags.append(discrepancy.text)
    warnings = dose_warnings(history, new_refill.program, occurred_on, settings, table)
    warnings += boxed_warnings(new_refill.program, table)
    if pocket.flagged:
        flags.append(pocket.text)
        if not new_refill.pocket_fill_reason:
            warnings.append(
                ClinicalWarning(
                    "block",
                    "pocket_fill_reason",
                    "rule 9",
                    "possible pocket fill: give a reason code and start post-refill monitoring",
                )
            )
    return RefillPreview(
        expected_residual_ml=expected,
        expected_residual_why=expected_why,
        discrepancy=discrepancy,
        pocket_fill=pocket,
        daily_volume_ml=daily_volume_ml(new_refill.program),
        worst_case_daily_volume_ml=worst_case_daily_volume_ml(new_refill.program),
        low_reservoir_alarm_on=due.alarm_on,
        refill_due_on=due.due_on,
        refill_latest_safe_on=due.latest_safe_on,
        refill_due_why=due_why,
        flags=tuple(flags),
        warnings=tuple(warnings),
        next_fill=next_fill,
    )


__all__ = [
    "AlarmForecast",
    "Discrepancy",
    "DrugLookup",
    "PocketFillCheck",
    "RefillDue",
    "RefillLimit",
    "ObservedRate",
    "RefillFlags",
    "RefillPreview",
    "bolus_allowance_ml_per_day",
    "boxed_warnings",
    "applicable_limits",
    "concentration_checks",
    "describe_limit",
    "dose_checks",
    "implausible_values",
    "limit_code",
    "overridable",
    "override_problems",
    "overridden_text",
    "show_limit",
    "titration_checks",
    "daily_volume_ml",
    "dose_warnings",
    "drug_stability_limits",
    "drug_table",
    "expected_residual_ml",
    "low_reservoir_alarm_date",
    "observed_over_delivery",
    "possible_pocket_fill",
    "refill_discrepancy",
    "refill_due_date",
    "refill_flags",
    "refill_preview",
    "refill_reviews",
    "worst_case_daily_volume_ml",
    "ziconotide_refill_limit_days",
]
