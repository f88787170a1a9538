"""Stimulator trials and the PNS 60-day lead (clinical reference rules 15, 16)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from devicelog.clinic.due import DueItem, make_item, plus_days
from devicelog.clinic.history import DeviceHistory, clinical_order
from devicelog.clinic.records import (
    AnalgesicChange,
    ReinterventionData,
    ReinterventionKind,
    TrialEndData,
    TrialStartData,
)
from devicelog.settings import Settings

PNS_LEAD_ENDINGS = frozenset({ReinterventionKind.lead_removal, ReinterventionKind.explant})


@dataclass(frozen=True)
class TrialOutcome:
    relief_percent: float | None  # None when the baseline NRS is 0
    success: bool
    why: str


def trial_relief_percent(baseline_nrs: int, end_nrs: int) -> float | None:
    """Rule 15: pain relief % = (baseline NRS − end NRS) / baseline NRS × 100."""
    if baseline_nrs == 0:
        return None
    return (baseline_nrs - end_nrs) / baseline_nrs * 100.0


def trial_outcome(start: TrialStartData, end: TrialEndData, settings: Settings) -> TrialOutcome:
    """Rule 15 (domain.md, Rules the software must encode; reference 2, "Trial
    success"): success if relief ≥ 50% (``trial_success_relief_percent``) with
    analgesics stable or reduced, and the patient satisfied."""
    relief = trial_relief_percent(start.baseline_nrs, end.end_nrs)
    threshold = settings.trial_success_relief_percent
    reasons: list[str] = []
    if relief is None:
        reasons.append("baseline NRS 0: relief cannot be measured")
    else:
        verdict = "≥" if relief >= threshold - 1e-9 else "<"
        reasons.append(
            f"NRS {start.baseline_nrs} → {end.end_nrs}: ({start.baseline_nrs} − {end.end_nrs}) / {start.baseline_nrs} "
            f"× 100 = {relief:.1f}% relief {verdict} {threshold:g}%"
        )
    analgesics_ok = end.analgesics in (AnalgesicChange.stable, AnalgesicChange.reduced)
    reasons.append(f"analgesics {end.analgesics.value}")
    reasons.append("patient satisfied" if end.patient_satisfied else "patient not satisfied")
    success = relief is not None and relief >= threshold - 1e-9 and analgesics_ok and end.patient_satisfied
    return TrialOutcome(relief, success, ("success: " if success else "not a success: ") + "; ".join(reasons))


def trial_items(history: DeviceHistory, settings: Settings) -> list[DueItem]:
    """Rule 15 (domain.md, Rules the software must encode): record trial start and end
    (default 3-8 days, warn if > 21 days).  Each trial start without a later trial end
    gives a "trial end" item at start + planned days (capped at
    ``scs_trial_days_max``) and a warning item on the day the trial passes 21 days."""
    events = clinical_order(history.events)
    items: list[DueItem] = []
    for i, event in enumerate(events):
        if not isinstance(event.data, TrialStartData):
            continue
        if any(isinstance(e.data, TrialEndData) for e in events[i + 1 :]):
            continue
        start = event.occurred_on
        planned = event.data.planned_days
        days = min(planned, settings.scs_trial_days_max)
        capped = f", capped at {settings.scs_trial_days_max} days" if planned > days else ""
        due = plus_days(start, days)
        warn_on = plus_days(start, settings.scs_trial_warn_days)
        items.append(
            make_item(
                history,
                what="Trial end",
                code="trial_end",
                due_on=due,
                latest_safe_on=warn_on,
                severity="routine",
                rule="rule 15",
                why=f"trial started {start}, planned {planned} days{capped} → end {due}; "
                f"record end NRS, analgesics and satisfaction",
                source_event_id=event.id,
            )
        )
        items.append(
            make_item(
                history,
                what=f"Trial open longer than {settings.scs_trial_warn_days} days",
                code="trial_too_long",
                due_on=warn_on,
                latest_safe_on=warn_on,
                severity="high",
                rule="rule 15",
                why=f"trial started {start} + {settings.scs_trial_warn_days} days → {warn_on}; "
                "a trial past that needs review",
                source_event_id=event.id,
            )
        )
    return items


def pns_lead_removal_date(history: DeviceHistory) -> dt.date | None:
    """Rule 16 (domain.md, Rules the software must encode): PNS SPRINT lead removal
    at implant + day 60 (the model's ``lead_removal_day``)."""
    day = history.device.model.lead_removal_day
    return None if day is None else plus_days(history.device.implanted_on, day)


def pns_items(history: DeviceHistory) -> list[DueItem]:
    """Rule 16: the lead-removal task, satisfied by a lead removal or an explant."""
    due = pns_lead_removal_date(history)
    if due is None:
        return []
    if any(
        isinstance(e.data, ReinterventionData) and e.data.reintervention in PNS_LEAD_ENDINGS for e in history.events
    ):
        return []
    day = history.device.model.lead_removal_day
    return [
        make_item(
            history,
            what="PNS lead removal",
            code="pns_lead_removal",
            due_on=due,
            latest_safe_on=due,
            severity="high",
            rule="rule 16",
            why=f"percutaneous lead implanted {history.device.implanted_on} + {day} days → {due}",
        )
    ]
