"""The refill ledger of a pump and the trend of its discrepancies (rule 8, reference 1.4).

Each refill's expected residual, discrepancy and flag come from the pump rules
(``devicelog.clinic.pump.reconcile_refill``), never recomputed here.  What this module
adds is the view across refills: a slow leak or a repeated shortfall shows as a run
of discrepancies in the same direction or as a slope, even when no single refill
crossed its limit ("residual volume repeatedly far below expected has signalled
self-withdrawal or diversion", reference 1.4).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping, Sequence

from devicelog.clinic.catalogue import Drug
from devicelog.clinic.history import DeviceHistory
from devicelog.clinic.pump import possible_pocket_fill, pump_fills, reconcile_refill, refill_reviews
from devicelog.clinic.records import PumpProgram
from devicelog.settings import Settings

#: Discrepancies are compared at 0.01 mL (a syringe reads to 0.1 mL); a smaller one has no direction.
DIRECTION_RESOLUTION_ML = 0.01
#: A run of this many consecutive discrepancies in the same direction is flagged.
RUN_LENGTH = 3

LESS = "less than expected (over-delivery, leak or diversion)"
MORE = "more than expected (under-delivery, stall or occlusion)"


def drugs_label(program: PumpProgram, drugs: Mapping[str, Drug] | None = None) -> str:
    """``morphine 10 mg/mL + clonidine 75 mcg/mL`` in each drug's display unit."""
    parts = []
    for entry in program.drugs:
        drug = (drugs or {}).get(entry.drug)
        amount = drug.show(entry.concentration_mg_per_ml, "/mL") if drug else f"{entry.concentration_mg_per_ml:g} mg/mL"
        parts.append(f"{entry.drug} {amount}")
    return " + ".join(parts)


@dataclass(frozen=True)
class LedgerReview:
    """A review recorded of a flagged refill (rule 26): who, when, what was found or done."""

    event_id: int
    reviewed_on: dt.date
    author: str
    finding: str  # ReviewFinding value
    finding_label: str
    note: str

    @property
    def line(self) -> str:
        note = f" — {self.note}" if self.note else ""
        return f"reviewed {self.reviewed_on} by {self.author}: {self.finding_label}{note}"


@dataclass(frozen=True)
class LedgerRow:
    """One refill as the ledger shows it.  ``expected_residual_ml`` and the discrepancy
    are None for the first fill of a device (nothing to reconcile with)."""

    event_id: int
    refilled_on: dt.date
    author: str
    drugs: str
    expected_residual_ml: float | None
    withdrawn_ml: float
    discrepancy_ml: float | None  # withdrawn − expected
    limit_ml: float | None
    flagged: bool
    direction: str
    added_ml: float
    after_ml: float
    pocket_fill_flagged: bool
    why: str
    reviews: tuple[LedgerReview, ...] = ()  # rule 26, in the order recorded

    @property
    def review_open(self) -> bool:
        """Flagged (discrepancy or possible pocket fill) and not reviewed yet: on the due list."""
        return (self.flagged or self.pocket_fill_flagged) and not self.reviews

    @property
    def review_text(self) -> str:
        """The review column: "" when nothing is flagged, "REVIEW DUE" while open."""
        if self.reviews:
            return "; ".join(r.line for r in self.reviews)
        return "REVIEW DUE" if self.flagged or self.pocket_fill_flagged else ""


def refill_ledger(history: DeviceHistory, settings: Settings, drugs: Mapping[str, Drug] | None = None) -> list[LedgerRow]:
    """Every refill of the pump in clinical order with rule 8's reconciliation."""
    fills = pump_fills(history.events)
    reservoir_ml = history.device.model.reservoir_ml or 20.0
    reviewed = refill_reviews(history.events)
    rows = []
    for k, fill in enumerate(fills):
        data = fill.data
        pocket = possible_pocket_fill(data, settings)
        if k == 0:
            expected = discrepancy = limit = None
            flagged, direction = False, ""
            why = "first fill logged for this device: nothing to reconcile"
        else:
            rec = reconcile_refill(fills[k - 1], fill.event.occurred_on, data, reservoir_ml, settings)
            expected = rec.expected_residual_ml
            discrepancy = rec.discrepancy.discrepancy_ml
            limit = rec.discrepancy.limit_ml
            flagged = rec.discrepancy.flagged
            direction = rec.discrepancy.direction
            why = f"{rec.why}; {rec.discrepancy.text}"
        if pocket.flagged:
            why += f"; {pocket.text}"
        rows.append(
            LedgerRow(
                event_id=fill.event.id,
                refilled_on=fill.event.occurred_on,
                author=fill.event.author,
                drugs=drugs_label(data.program, drugs),
                expected_residual_ml=expected,
                withdrawn_ml=data.volume_withdrawn_ml,
                discrepancy_ml=discrepancy,
                limit_ml=limit,
                flagged=flagged,
                direction=direction,
                added_ml=data.volume_added_ml,
                after_ml=data.reservoir_volume_after_ml,
                pocket_fill_flagged=pocket.flagged,
                why=why,
                reviews=tuple(
                    LedgerReview(e.id, e.occurred_on, e.author, e.data.finding.value, e.data.finding.label, e.data.note)
                    for e in reviewed.get(fill.event.id, ())
                ),
            )
        )
    return rows


@dataclass(frozen=True)
class Run:
    """Consecutive reconciled refills whose discrepancies point the same way."""

    start_on: dt.date
    end_on: dt.date
    length: int
    direction: str  # LESS or MORE


@dataclass(frozen=True)
class DiscrepancyTrend:
    count: int
    mean_ml: float | None
    slope_ml_per_refill: float | None  # least squares over refill number; None below 2 refills
    runs: tuple[Run, ...]  # every run of RUN_LENGTH or more

    @property
    def flagged(self) -> bool:
        return bool(self.runs)

    @property
    def text(self) -> str:
        if self.count == 0:
            return "no reconciled refills yet (the first fill has nothing to compare with)"
        parts = [f"{self.count} reconciled refill{'s' if self.count != 1 else ''}", f"mean discrepancy {self.mean_ml:+.2f} mL"]
        if self.slope_ml_per_refill is not None:
            parts.append(f"slope {self.slope_ml_per_refill:+.3f} mL per refill")
        for run in self.runs:
            parts.append(f"FLAG: {run.length} consecutive refills {run.direction}, {run.start_on} to {run.end_on}")
        if not self.runs:
            parts.append(f"no run of {RUN_LENGTH} or more in the same direction")
        return "; ".join(parts)


def direction_of(discrepancy_ml: float) -> int:
    """-1 less than expected, +1 more than expected, 0 within ``DIRECTION_RESOLUTION_ML``."""
    value = round(discrepancy_ml, 6)
    if abs(value) < DIRECTION_RESOLUTION_ML:
        return 0
    return -1 if value < 0 else 1


def least_squares_slope(values: Sequence[float]) -> float | None:
    """Slope of the least-squares line through (0, v0), (1, v1), …; None below 2 values."""
    n = len(values)
    if n < 2:
        return None
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    sxx = sum((i - mean_x) ** 2 for i in range(n))
    sxy = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    return sxy / sxx


def discrepancy_trend(points: Sequence[tuple[dt.date, float]], run_length: int = RUN_LENGTH) -> DiscrepancyTrend:
    """Reference 1.4 across refills: mean discrepancy, least-squares slope in mL per
    refill, and every run of ``run_length`` or more consecutive discrepancies in the same
    direction.  A discrepancy under 0.01 mL has no direction and ends a run.

    ``points`` are (refill date, withdrawn − expected in mL), oldest first.
    """
    values = [v for _, v in points]
    if not values:
        return DiscrepancyTrend(0, None, None, ())
    runs: list[Run] = []
    start = 0
    for i in range(1, len(points) + 1):
        ended = i == len(points) or direction_of(values[i]) != direction_of(values[start]) or direction_of(values[i]) == 0
        if ended:
            sign = direction_of(values[start])
            length = i - start
            if sign != 0 and length >= run_length:
                runs.append(Run(points[start][0], points[i - 1][0], length, LESS if sign < 0 else MORE))
            start = i
    return DiscrepancyTrend(len(values), sum(values) / len(values), least_squares_slope(values), tuple(runs))


def ledger_trend(rows: Sequence[LedgerRow], run_length: int = RUN_LENGTH) -> DiscrepancyTrend:
    """The discrepancy trend of a ledger (reconciled refills only)."""
    return discrepancy_trend([(r.refilled_on, r.discrepancy_ml) for r in rows if r.discrepancy_ml is not None], run_length)
