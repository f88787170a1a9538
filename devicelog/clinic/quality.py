"""The program quality report (issue 17, section 3): pure computation.

Plain values in (device histories, the period, the settings and the drug table), figures
out.  Every :class:`Figure` carries its numerator, its denominator, the period it covers
and the patients and devices that make it up (``members``, with ``members_label``
saying which: the late refills, the flagged refills, the escalations ...), so a reader
can check any number against the charts.

What the records of this version cannot give is said, not invented
(:attr:`QualityReport.not_available`): outcome completion at registry time points and
responder rates at 3, 6 and 12 months need the scheduled outcome time points of
issue 17 section 1.

Definitions (each also written in the figure's ``definition``):

* **On-time refill** (rules 1-5): a refill is on time when it was done on or before the
  latest safe date the previous fill gave (``pump.refill_schedule``: the earliest of
  the low-reservoir alarm date and the drug limits).  The first fill of a pump has no
  previous fill and is not counted.  Days overdue = refill date − latest safe date.
* **Flagged discrepancy** (rule 8) and **possible pocket fill** (rule 9): recomputed
  from each refill and the fill before it, per 1,000 refills done in the period.
  **Reviewed** (rule 26): a review naming the flagged refill recorded by the period's
  end; days to review = review date − refill date.
* **Wound escalation** (rule 22): a wound check within 90 days of an implant made in
  the period with a same-day escalation finding (``wounds.wound_escalation_findings``).
  **Infection**: such a check with a culture organism recorded, or an explant or
  revision within 90 days whose reason mentions infection.  Per 100 implants.
* **Device survival** (Kaplan-Meier): permanent implants up to the period's end, from
  the implant to the first surgical reintervention (explant, revision, migration,
  replacement: ``records.SURGICAL_REINTERVENTIONS``), censored at death or at the
  period's end.
* **Trial-to-permanent conversion**: a trial started in the period (SCS, DRG, PNS) is
  converted when the patient has a permanent device of the same kind implanted on or
  after the trial start.
* **MME change**: per patient, the first recorded total oral MME (CDC 2022 factors) and
  the latest one in the period; the median change in mg/day and in %.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from devicelog.clinic.catalogue import Drug
from devicelog.clinic.history import DeviceHistory, clinical_order
from devicelog.clinic.pump import (
    possible_pocket_fill,
    pump_fills,
    reconcile_refill,
    refill_reviews,
    refill_schedule,
)
from devicelog.clinic.records import (
    SURGICAL_REINTERVENTIONS,
    DeviceKind,
    ImplantType,
    ReinterventionData,
    ReinterventionKind,
    TrialStartData,
    WoundCheckData,
)
from devicelog.clinic.trends import oral_mme_series
from devicelog.clinic.wounds import wound_escalation_findings
from devicelog.settings import Settings

#: Wound surveillance window after an implant (reference 3, NHSN: 90 days).
SSI_WINDOW_DAYS = 90
#: Trials whose conversion is reported (issue 17: SCS, DRG, PNS).
TRIAL_KINDS = (DeviceKind.spinal_cord_stimulator, DeviceKind.drg_stimulator, DeviceKind.peripheral_nerve_stimulator)
#: Days-overdue bands of the refill distribution: (label, lowest day, highest day or None).
OVERDUE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("on time (0 days)", -100000, 0),
    ("1-3 days", 1, 3),
    ("4-7 days", 4, 7),
    ("8-14 days", 8, 14),
    ("15-30 days", 15, 30),
    ("over 30 days", 31, None),
)
#: Reinterventions counted as explants or revisions (by reason).
EXPLANT_OR_REVISION = SURGICAL_REINTERVENTIONS



@dataclass(frozen=True)
class Period:
    """The report's period, both days included."""

    start: dt.date
    end: dt.date

    def __contains__(self, on: dt.date) -> bool:
        return self.start <= on <= self.end

    def __str__(self) -> str:
        return f"{self.start} to {self.end}"


@dataclass(frozen=True)
class Member:
    """One patient and device counted in a figure, with the date and what was seen."""

    mrn: str
    name: str
    serial: str
    on: dt.date | None
    note: str = ""


@dataclass(frozen=True)
class Figure:
    """A rate: ``numerator / denominator × scale`` in ``unit``, over ``period``."""

    key: str
    label: str
    numerator: int
    denominator: int
    scale: int  # 100 for a percentage, 1000 for per 1,000 refills
    unit: str  # "%", "per 1,000 refills", "per 100 implants"
    period: Period
    definition: str
    members_label: str = ""
    members: tuple[Member, ...] = ()

    @property
    def value(self) -> float | None:
        """None when there is nothing to divide by (shown as "n/a", never 0)."""
        if self.denominator == 0:
            return None
        return self.numerator / self.denominator * self.scale

    def shown(self) -> str:
        value = self.value
        text = "n/a" if value is None else f"{value:.1f}"
        unit = "" if value is None else (self.unit if self.unit == "%" else f" {self.unit}")
        return f"{text}{unit} ({self.numerator} / {self.denominator})"


@dataclass(frozen=True)
class Median:
    key: str
    label: str
    value: float | None
    unit: str
    count: int
    period: Period
    definition: str
    members: tuple[Member, ...] = ()

    def shown(self) -> str:
        text = "n/a" if self.value is None else f"{self.value:+.1f} {self.unit}"
        return f"{text} (n = {self.count})"


@dataclass(frozen=True)
class KmStep:
    """One row of a Kaplan-Meier table: at ``day``, ``at_risk`` devices, ``events``
    failures and ``censored`` censorings; ``survival`` is S(t) just after ``day``."""

    day: int
    at_risk: int
    events: int
    censored: int
    survival: float


@dataclass(frozen=True)
class Survival:
    kind: DeviceKind
    devices: int
    events: int
    steps: tuple[KmStep, ...]
    period: Period
    members: tuple[Member, ...] = ()  # the devices that failed

    def survival_at(self, day: int) -> float | None:
        """S(day), or None when no device was followed that long."""
        if not self.steps or day > self.steps[-1].day:
            return None
        value = 1.0
        for step in self.steps:
            if step.day > day:
                break
            value = step.survival
        return value


@dataclass(frozen=True)
class MonthPoint:
    month: str  # "2026-03"
    on_time: int
    refills: int

    @property
    def percent(self) -> float | None:
        return self.on_time / self.refills * 100 if self.refills else None


@dataclass
class QualityReport:
    period: Period
    kinds: tuple[DeviceKind, ...]
    refill_on_time: Figure
    overdue_bands: list[Figure]
    monthly_on_time: list[MonthPoint]
    discrepancies: Figure
    pocket_fills: Figure
    reviews: str
    review_figure: Figure
    reviewed: tuple[Member, ...]  # the flagged refills reviewed, with the review date and days
    wound_escalations: Figure
    infections: Figure
    explants_revisions: list[Figure]
    survival: list[Survival]
    trial_conversion: list[Figure]
    mme_change: Median
    mme_change_percent: Median
    nrs_reduction_30: Figure
    nrs_reduction_50: Figure
    not_available: list[str] = field(default_factory=list)

    def figures(self) -> list[Figure]:
        """Every rate, in the order of the report."""
        return [
            self.refill_on_time,
            *self.overdue_bands,
            self.discrepancies,
            self.pocket_fills,
            self.review_figure,
            self.wound_escalations,
            self.infections,
            *self.explants_revisions,
            *self.trial_conversion,
            self.nrs_reduction_30,
            self.nrs_reduction_50,
        ]


# ====================================================================== Kaplan-Meier


def kaplan_meier(observations: Iterable[tuple[int, bool]]) -> list[KmStep]:
    """The Kaplan-Meier product-limit estimate: ``S(t) = Π (1 − d_i / n_i)`` over the
    days ``t_i ≤ t`` with failures, ``d_i`` failures among the ``n_i`` devices still at
    risk.  ``observations`` are (days followed, failed).  A device censored on a day
    with failures counts as at risk on that day (the usual convention).  One row per
    day with a failure or a censoring."""
    by_day: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    total = 0
    for days, failed in observations:
        by_day[days][0 if failed else 1] += 1
        total += 1
    steps: list[KmStep] = []
    at_risk, survival = total, 1.0
    for day in sorted(by_day):
        events, censored = by_day[day]
        if events:
            survival *= 1 - events / at_risk
        steps.append(KmStep(day, at_risk, events, censored, survival))
        at_risk -= events + censored
    return steps


# ====================================================================== the report


def _member(history: DeviceHistory, on: dt.date | None, note: str = "") -> Member:
    return Member(history.patient.mrn, history.patient.name, history.device.serial, on, note)


def _band(days_overdue: int) -> int:
    for index, (_label, low, high) in enumerate(OVERDUE_BANDS):
        if days_overdue >= low and (high is None or days_overdue <= high):
            return index
    raise AssertionError(days_overdue)


def _mentions_infection(text: str) -> bool:
    text = text.lower()
    return "infect" in text or "abscess" in text or "sepsis" in text


@dataclass
class _PatientMme:
    first: tuple[dt.date, float, int | None] | None = None  # (date, oral MME mg/day, NRS)
    last: tuple[dt.date, float, int | None] | None = None
    member: Member | None = None


def quality_report(
    histories: Iterable[DeviceHistory],
    *,
    period: Period,
    settings: Settings,
    drugs: Mapping[str, Drug],
    kinds: Sequence[DeviceKind] = (),
) -> QualityReport:
    """The program quality figures over ``period`` for the devices of ``kinds`` (all
    when empty), from one pass over ``histories`` (which may be a stream).

    A history may hold only the event kinds the report reads (refills, pump programming
    changes, wound checks, reinterventions, trial starts and ends, outcomes)."""
    wanted = set(kinds)
    on_time = 0  # a count: the on-time refills are not listed (the late ones are)
    late: list[Member] = []
    bands: list[list[Member]] = [[] for _ in OVERDUE_BANDS]
    months: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    refills_in_period = 0
    flagged: list[Member] = []
    pocket: list[Member] = []
    reviewed: list[Member] = []  # flagged refills reviewed by the period's end
    unreviewed: list[Member] = []
    review_days: list[int] = []
    implants: list[Member] = []
    escalations: list[Member] = []
    infections: list[Member] = []
    reinterventions: list[tuple[ReinterventionKind, str, Member]] = []
    survival_obs: dict[DeviceKind, list[tuple[int, bool]]] = defaultdict(list)
    survival_failed: dict[DeviceKind, list[Member]] = defaultdict(list)
    permanent_by_patient: dict[int, list[tuple[DeviceKind, dt.date]]] = defaultdict(list)
    trials: list[tuple[int, DeviceKind, dt.date, Member]] = []
    mme: dict[int, _PatientMme] = defaultdict(_PatientMme)

    for history in histories:
        device = history.device
        kind = device.model.kind
        if wanted and kind not in wanted:
            continue
        patient = history.patient
        events = clinical_order(history.events)
        if device.implant_type is ImplantType.permanent:
            permanent_by_patient[patient.id].append((kind, device.implanted_on))

        # Refills: on time (rules 1-5), discrepancy (rule 8), pocket fill (rule 9).
        if device.model.is_pump:
            fills = pump_fills(events)
            reservoir_ml = device.model.reservoir_ml or 20.0
            reviews = refill_reviews(events)
            for index, fill in enumerate(fills):
                on = fill.event.occurred_on
                if on not in period:
                    continue
                refills_in_period += 1
                flags = []
                if possible_pocket_fill(fill.data, settings).flagged:
                    pocket.append(_member(history, on, "possible pocket fill"))
                    flags.append("possible pocket fill")
                if index > 0:
                    reconciliation = reconcile_refill(fills[index - 1], on, fill.data, reservoir_ml, settings)
                    if reconciliation.discrepancy.flagged:
                        flagged.append(_member(history, on, reconciliation.discrepancy.text))
                        flags.append("discrepancy")
                if flags:
                    review = next((r for r in reviews.get(fill.event.id, []) if r.occurred_on <= period.end), None)
                    if review is None:
                        unreviewed.append(_member(history, on, " and ".join(flags) + ": no review recorded"))
                    else:
                        days = max(0, (review.occurred_on - on).days)
                        review_days.append(days)
                        reviewed.append(_member(history, on, f"{' and '.join(flags)}: reviewed {review.occurred_on} by {review.author} ({days} days)"))
                if index == 0:
                    continue
                due = refill_schedule(history, fills, index - 1, settings, drugs)
                overdue_days = (on - due.latest_safe_on).days
                month = months[on.strftime("%Y-%m")]
                month[1] += 1
                if overdue_days <= 0:
                    month[0] += 1
                    on_time += 1
                else:
                    member = _member(history, on, f"{overdue_days} day{'' if overdue_days == 1 else 's'} after the latest safe date {due.latest_safe_on}")
                    late.append(member)
                    bands[_band(overdue_days)].append(member)

        # Wound escalations and infections within 90 days of an implant in the period.
        surgical = [e for e in events if isinstance(e.data, ReinterventionData) and e.data.reintervention in SURGICAL_REINTERVENTIONS]
        if device.implanted_on in period:
            implants.append(_member(history, device.implanted_on, f"{device.implant_type.value} implant"))
            window_end = device.implanted_on + dt.timedelta(days=SSI_WINDOW_DAYS)
            escalated = infected = None
            for e in events:
                if not device.implanted_on <= e.occurred_on <= window_end:
                    continue
                if isinstance(e.data, WoundCheckData):
                    findings = wound_escalation_findings(e.data, kind)
                    if findings and escalated is None:
                        escalated = _member(history, e.occurred_on, "; ".join(findings))
                    if e.data.organism and infected is None:
                        infected = _member(history, e.occurred_on, f"culture: {e.data.organism}")
                elif e in surgical and infected is None and _mentions_infection(e.data.reason):  # type: ignore[union-attr]
                    infected = _member(history, e.occurred_on, f"{e.data.reintervention.value.replace('_', ' ')}: {e.data.reason}")  # type: ignore[union-attr]
            if escalated is not None:
                escalations.append(escalated)
            if infected is not None:
                infections.append(infected)

        # Explants and revisions by reason, in the period.
        for e in surgical:
            if e.occurred_on in period:
                data = e.data
                assert isinstance(data, ReinterventionData)
                reinterventions.append((data.reintervention, " ".join(data.reason.lower().split()), _member(history, e.occurred_on, data.reason)))

        # Survival: permanent implants up to the period's end.
        if device.implant_type is ImplantType.permanent and device.implanted_on <= period.end:
            failure = next((e for e in surgical if e.occurred_on >= device.implanted_on), None)
            end = period.end
            if patient.died_on is not None:
                end = min(end, patient.died_on)
            if failure is not None and failure.occurred_on <= end:
                survival_obs[kind].append(((failure.occurred_on - device.implanted_on).days, True))
                survival_failed[kind].append(_member(history, failure.occurred_on, failure.data.reintervention.value.replace("_", " ")))  # type: ignore[union-attr]
            else:
                survival_obs[kind].append((max(0, (end - device.implanted_on).days), False))

        # Trials started in the period.
        if kind in TRIAL_KINDS:
            for e in events:
                if isinstance(e.data, TrialStartData) and e.occurred_on in period:
                    trials.append((patient.id, kind, e.occurred_on, _member(history, e.occurred_on, f"{kind.label} trial")))

        # Oral MME: the patient's first recorded total and the latest in the period.
        for point in oral_mme_series(events).points:
            if point.note.startswith("partial") or point.on > period.end:
                continue
            record = mme[patient.id]
            nrs = next((e.data.pain_nrs for e in events if e.id == point.event_id), None)  # type: ignore[union-attr]
            value = (point.on, point.value, nrs)
            if record.first is None or point.on < record.first[0]:
                record.first = value
            if point.on in period and (record.last is None or point.on >= record.last[0]):
                record.last = value
                record.member = _member(history, point.on)

    # ------------------------------------------------------------------ assemble
    refills_counted = on_time + len(late)
    refill_on_time = Figure(
        "refill_on_time",
        "Refills done by their latest safe date",
        on_time,
        refills_counted,
        100,
        "%",
        period,
        "refills in the period after a previous fill; on time = done on or before the latest safe date "
        "that fill gave (earliest of the low-reservoir alarm date and the drug limits, rules 1-5)",
        "refills after their latest safe date",
        tuple(late),
    )
    bands_counts = [on_time, *(len(members) for members in bands[1:])]
    overdue_bands = [
        Figure(
            f"overdue_{index}",
            f"Days overdue at the visit: {label}",
            bands_counts[index],
            refills_counted,
            100,
            "%",
            period,
            "days from the latest safe date to the refill",
            "refills in this band" if index else "",
            tuple(members) if index else (),
        )
        for index, ((label, _low, _high), members) in enumerate(zip(OVERDUE_BANDS, bands))
    ]
    monthly = [MonthPoint(month, counts[0], counts[1]) for month, counts in sorted(months.items())]
    discrepancies = Figure(
        "discrepancies",
        "Flagged refill discrepancies",
        len(flagged),
        refills_counted,
        1000,
        "per 1,000 refills",
        period,
        "|withdrawn − expected residual| above the limit of the reservoir size (rule 8), "
        "per 1,000 refills with a previous fill",
        "flagged refills",
        tuple(flagged),
    )
    pocket_fills = Figure(
        "pocket_fills",
        "Possible pocket fills",
        len(pocket),
        refills_in_period,
        1000,
        "per 1,000 refills",
        period,
        "volume after the fill differs from the volume injected beyond the tolerance (rule 9), per 1,000 refills",
        "refills flagged as possible pocket fills",
        tuple(pocket),
    )
    wound = Figure(
        "wound_escalations",
        "Wound-check escalations within 90 days of implant",
        len(escalations),
        len(implants),
        100,
        "per 100 implants",
        period,
        "implants in the period with a wound check within 90 days that met rule 22 (purulent drainage, "
        "exposed hardware, fever > 38.0 °C, meningism with a pump)",
        "first escalating check per implant",
        tuple(escalations),
    )
    infection = Figure(
        "infections",
        "Infections within 90 days of implant",
        len(infections),
        len(implants),
        100,
        "per 100 implants",
        period,
        "implants in the period with, within 90 days, a wound check with a culture organism "
        "or an explant or revision whose reason mentions infection",
        "first sign of infection per implant",
        tuple(infections),
    )
    by_reason: dict[tuple[ReinterventionKind, str], list[Member]] = defaultdict(list)
    for what, reason, member in reinterventions:
        by_reason[(what, reason)].append(member)
    explants_revisions = [
        Figure(
            f"reintervention_{what.value}_{n}",
            f"{what.value.replace('_', ' ')}: {reason}",
            len(members),
            len(reinterventions),
            100,
            "%",
            period,
            "share of all explants and revisions in the period (kind: reason as recorded)",
            "reinterventions",
            tuple(members),
        )
        for n, ((what, reason), members) in enumerate(sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0][0].value, kv[0][1])))
    ]
    survival = [
        Survival(
            kind,
            len(obs),
            sum(1 for _d, failed in obs if failed),
            tuple(kaplan_meier(obs)),
            period,
            tuple(survival_failed[kind]),
        )
        for kind in DeviceKind
        if (obs := survival_obs.get(kind))
    ]
    conversions = []
    for kind in TRIAL_KINDS:
        if wanted and kind not in wanted:
            continue
        started = [t for t in trials if t[1] is kind]
        converted = [
            member
            for patient_id, _k, on, member in started
            if any(k is kind and implanted >= on for k, implanted in permanent_by_patient.get(patient_id, []))
        ]
        conversions.append(
            Figure(
                f"trial_conversion_{kind.value}",
                f"{kind.label} trial to permanent implant",
                len(converted),
                len(started),
                100,
                "%",
                period,
                "trials started in the period followed by a permanent device of the same kind",
                "converted trials",
                tuple(converted),
            )
        )
    pairs = [(r.first, r.last, r.member) for r in mme.values() if r.first and r.last and r.last[0] > r.first[0]]
    changes = [last[1] - first[1] for first, last, _m in pairs]
    percents = [(last[1] - first[1]) / first[1] * 100 for first, last, _m in pairs if first[1] > 0]
    members = tuple(
        Member(m.mrn, m.name, m.serial, m.on, f"{first[1]:g} → {last[1]:g} mg/day")
        for first, last, m in pairs
        if m is not None
    )
    mme_definition = "per patient: first recorded total oral MME (CDC 2022) to the latest in the period"
    mme_change = Median("mme_change", "Median oral MME change", statistics.median(changes) if changes else None, "mg/day", len(changes), period, mme_definition, members)
    mme_percent = Median(
        "mme_change_percent",
        "Median oral MME change",
        statistics.median(percents) if percents else None,
        "%",
        len(percents),
        period,
        mme_definition + " (patients whose first total was above 0 mg/day)",
    )
    nrs_pairs = [(first, last, m) for first, last, m in pairs if first[2] and last[2] is not None]
    reduction = [((first[2] - last[2]) / first[2] * 100, first, last, m) for first, last, m in nrs_pairs]  # type: ignore[operator]

    def nrs_figure(threshold: int) -> Figure:
        hit = [
            Member(m.mrn, m.name, m.serial, m.on, f"NRS {first[2]} → {last[2]} ({pct:.0f} %)")
            for pct, first, last, m in reduction
            if pct >= threshold - 1e-9 and m is not None
        ]
        return Figure(
            f"nrs_reduction_{threshold}",
            f"NRS reduction ≥ {threshold} % (first to latest recorded outcome)",
            len(hit),
            len(reduction),
            100,
            "%",
            period,
            "patients with an NRS at their first MME record and at their latest in the period; "
            "not at registry time points (see 'not yet available')",
            "patients with the reduction",
            tuple(hit),
        )

    not_available = [
        "outcome completion at each time point (% done within its window): needs scheduled outcome time points (issue 17, section 1)",
        "responder rates at 3, 6 and 12 months (IMMPACT): needs baseline and scheduled time points (issue 17, section 1)",
    ]
    flagged_count = len(reviewed) + len(unreviewed)
    reviews_figure = Figure(
        "reviews",
        "Flagged refills reviewed by the period's end",
        len(reviewed),
        flagged_count,
        100,
        "%",
        period,
        "refills in the period with a flagged discrepancy or possible pocket fill, and a review recorded (rule 26) "
        "on or before the period's end; days = review date − refill date",
        "flagged refills with no review recorded",
        tuple(unreviewed),
    )
    if review_days:
        ordered = sorted(review_days)
        reviews = (
            f"reviews: {len(reviewed)} of {flagged_count} flagged refills reviewed; days to review: "
            f"median {statistics.median(ordered):g}, longest {ordered[-1]}"
        )
    elif flagged_count:
        reviews = f"reviews: none of {flagged_count} flagged refills reviewed"
    else:
        reviews = "reviews: no flagged refills in the period"
    return QualityReport(
        period=period,
        kinds=tuple(kinds),
        refill_on_time=refill_on_time,
        overdue_bands=overdue_bands,
        monthly_on_time=monthly,
        discrepancies=discrepancies,
        pocket_fills=pocket_fills,
        reviews=reviews,
        review_figure=reviews_figure,
        reviewed=tuple(reviewed),
        wound_escalations=wound,
        infections=infection,
        explants_revisions=explants_revisions,
        survival=survival,
        trial_conversion=conversions,
        mme_change=mme_change,
        mme_change_percent=mme_percent,
        nrs_reduction_30=nrs_figure(30),
        nrs_reduction_50=nrs_figure(50),
        not_available=not_available,
    )
