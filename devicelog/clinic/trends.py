"""Time series out of a device history, for the trend charts (issue 5, rule 23).

Pure: plain events in, plain points out; the TUI draws them with plotext, the text
report as sparklines, the PDF as small line charts.  Every series carries its unit;
a value that could not be worked out is named in the series' ``notes`` rather than
dropped without a word.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from devicelog.clinic.catalogue import Drug
from devicelog.clinic.history import clinical_order
from devicelog.clinic.mme import REFERENCE_ONLY, it_morphine_oral_reference_mg_per_day, oral_mme
from devicelog.clinic.pump import drug_doses_mg_per_day, program_timeline
from devicelog.clinic.records import (
    Event,
    InterrogationData,
    OutcomeData,
    ProgrammingData,
    RefillData,
    TrialEndData,
    TrialStartData,
)


@dataclass(frozen=True)
class Point:
    on: dt.date
    value: float
    event_id: int | None = None
    note: str = ""


@dataclass
class Series:
    key: str
    title: str
    unit: str
    points: list[Point] = field(default_factory=list)
    label: str = ""  # shown beside the title, e.g. "reference only, not for dosing"
    notes: list[str] = field(default_factory=list)
    step: bool = False  # holds its value until the next point (a programmed dose)

    @property
    def values(self) -> list[float]:
        return [p.value for p in self.points]

    @property
    def last(self) -> Point | None:
        return self.points[-1] if self.points else None


def reservoir_series(events: Iterable[Event]) -> Series:
    """Reservoir volume in mL: withdrawn (before) and after each refill, and every
    volume reported at an interrogation or a programming change."""
    series = Series("reservoir_ml", "Reservoir volume", "mL")
    for e in clinical_order(events):
        d = e.data
        if isinstance(d, RefillData):
            series.points.append(Point(e.occurred_on, d.volume_withdrawn_ml, e.id, "withdrawn at refill"))
            series.points.append(Point(e.occurred_on, d.reservoir_volume_after_ml, e.id, "after refill"))
        elif isinstance(d, (InterrogationData, ProgrammingData)) and d.reservoir_volume_ml is not None:
            series.points.append(Point(e.occurred_on, d.reservoir_volume_ml, e.id, e.kind.label.lower()))
    return series


def daily_dose_series(events: Iterable[Event], drugs: Mapping[str, Drug] | None = None) -> list[Series]:
    """The programmed daily dose of each drug, one series per drug, in the drug's
    display unit per day (mcg/day for ziconotide and clonidine, else mg/day)."""
    by_drug: dict[str, Series] = {}
    for event, program in program_timeline(events):
        doses = drug_doses_mg_per_day(program)
        for code in by_drug.keys() - doses.keys():  # a drug taken out of the pump drops to 0
            by_drug[code].points.append(Point(event.occurred_on, 0.0, event.id, "not in this program"))
        for code, mg in doses.items():
            drug = (drugs or {}).get(code)
            unit = drug.display_unit if drug else "mg"
            per_mg = drug.per_mg if drug else 1.0
            series = by_drug.setdefault(
                code, Series(f"dose_{code}", f"Daily dose, {drug.name if drug else code}", f"{unit}/day", step=True)
            )
            series.points.append(Point(event.occurred_on, round(mg * per_mg, 6), event.id))
    return list(by_drug.values())


def it_morphine_reference_series(events: Iterable[Event], oral_to_it_ratio: float) -> Series:
    """Rule 23: intrathecal morphine × the configured ratio, "reference only, not for dosing"."""
    series = Series(
        "it_morphine_oral_reference_mg_per_day",
        f"IT morphine as oral equivalent (ratio {oral_to_it_ratio:g}:1)",
        "mg/day",
        label=REFERENCE_ONLY,
        step=True,
    )
    for event, program in program_timeline(events):
        mg = drug_doses_mg_per_day(program).get("morphine")
        if mg is None:
            if series.points:
                series.points.append(Point(event.occurred_on, 0.0, event.id, "no morphine in this program"))
            continue
        series.points.append(
            Point(event.occurred_on, round(it_morphine_oral_reference_mg_per_day(mg, oral_to_it_ratio), 4), event.id, f"IT {mg:g} mg/day")
        )
    return series


def battery_series(events: Iterable[Event]) -> tuple[Series, Series]:
    """Battery readings from interrogations: percent, and volts (older IPGs)."""
    percent = Series("battery_percent", "Battery", "%")
    volts = Series("battery_v", "Battery voltage", "V")
    for e in clinical_order(events):
        d = e.data
        if isinstance(d, InterrogationData):
            state = "" if d.battery_state.value == "ok" else d.battery_state.value.upper()
            if d.battery_percent is not None:
                percent.points.append(Point(e.occurred_on, d.battery_percent, e.id, state))
            if d.battery_v is not None:
                volts.points.append(Point(e.occurred_on, d.battery_v, e.id, state))
    return percent, volts


def pain_series(events: Iterable[Event]) -> Series:
    """Pain NRS 0-10 from outcomes and trial start/end."""
    series = Series("pain_nrs", "Pain NRS", "/10")
    for e in clinical_order(events):
        d = e.data
        if isinstance(d, OutcomeData):
            series.points.append(Point(e.occurred_on, d.pain_nrs, e.id))
        elif isinstance(d, TrialStartData):
            series.points.append(Point(e.occurred_on, d.baseline_nrs, e.id, "trial baseline"))
        elif isinstance(d, TrialEndData):
            series.points.append(Point(e.occurred_on, d.end_nrs, e.id, "trial end"))
    return series


def oral_mme_series(events: Iterable[Event]) -> Series:
    """Total oral MME in mg/day (CDC 2022 factors) at each outcome.

    Computed from the listed opioids when there are any; otherwise the total the
    clinician recorded.  When an opioid has no factor, the point is the recorded total
    if there is one, else the partial sum, and a note says which opioid is missing.
    """
    series = Series("oral_mme_mg_per_day", "Oral MME (CDC 2022)", "mg/day")
    for e in clinical_order(events):
        d = e.data
        if not isinstance(d, OutcomeData):
            continue
        if d.opioids:
            mme = oral_mme(d.opioids)
            if mme.complete:
                series.points.append(Point(e.occurred_on, mme.total_mg_per_day, e.id, mme.why))
            elif d.oral_mme_mg_per_day is not None:
                series.points.append(Point(e.occurred_on, d.oral_mme_mg_per_day, e.id, "recorded total"))
                series.notes.append(f"{e.occurred_on}: recorded total used; {mme.why}")
            else:
                series.points.append(Point(e.occurred_on, mme.total_mg_per_day, e.id, "partial: " + mme.why))
                series.notes.append(f"{e.occurred_on}: partial total; {mme.why}")
        elif d.oral_mme_mg_per_day is not None:
            series.points.append(Point(e.occurred_on, d.oral_mme_mg_per_day, e.id, "recorded total"))
    return series


SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int | None = None) -> str:
    """A one-line chart of ``values`` (the last ``width`` of them)."""
    values = list(values)[-width:] if width else list(values)
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        return SPARK[3] * len(values)
    return "".join(SPARK[min(7, int((v - lo) / (hi - lo) * 7 + 0.5))] for v in values)


def all_series(
    events: Sequence[Event], drugs: Mapping[str, Drug] | None, oral_to_it_ratio: float
) -> list[Series]:
    """Every non-empty series of a history, in the order the reports show them."""
    percent, volts = battery_series(events)
    candidates = [
        reservoir_series(events),
        *daily_dose_series(events, drugs),
        it_morphine_reference_series(events, oral_to_it_ratio),
        percent,
        volts,
        pain_series(events),
        oral_mme_series(events),
    ]
    return [s for s in candidates if s.points]
