"""The forecast: every due item of a device, and the clinic's due list.

Pure: plain values in, plain values out; no database, no screen, no clock.  The rules
themselves live in their own modules (pump, battery, wounds, trials, alarms, mri), one
function per rule named after it; this module gathers them, applies the goals of care
(rule 24), and sorts the list.

The items of a device depend only on its record, never on ``as_of``, so the store may
cache them per device; ``status(item, as_of, settings)`` says overdue, due or upcoming.

From the store::

    drugs = catalogue  # a Catalogue, a {code: Drug} mapping or a list of Drug
    forecast = forecast_device(history, settings, drugs)
    rows = due_items(histories, as_of=today, settings=settings, drugs=drugs, within_days=30)
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from devicelog.clinic.advisory import advisory_items
from devicelog.clinic.alarms import alarm_items, alarm_task_date, impedance_items, impedance_out_of_range
from devicelog.clinic.battery import (
    battery_items,
    eos_recorded,
    eri_recorded,
    planned_replacement_date,
    primary_cell_eri_projection,
    pump_end_of_service_date,
    recharge_due_date,
)
from devicelog.clinic.due import (
    ClinicalWarning,
    DueItem,
    Forecast,
    Status,
    SuppressedItem,
    make_item,
    plus_days,
    sort_key,
    status,
)
from devicelog.clinic.history import DeviceHistory
from devicelog.clinic.mri import post_mri_items
from devicelog.clinic.pump import (
    DrugLookup,
    RefillPreview,
    bolus_allowance_ml_per_day,
    applicable_limits,
    concentration_checks,
    describe_limit,
    dose_checks,
    implausible_values,
    overridable,
    override_problems,
    titration_checks,
    daily_volume_ml,
    dose_warnings,
    drug_stability_limits,
    drug_table,
    expected_residual_ml,
    low_reservoir_alarm_date,
    possible_pocket_fill,
    pump_items,
    refill_discrepancy,
    refill_due_date,
    refill_preview,
    worst_case_daily_volume_ml,
    ziconotide_refill_limit_days,
)
from devicelog.clinic.records import DeviceKind, Event, PatientStatus, ReinterventionData, ReinterventionKind
from devicelog.clinic.trials import TrialOutcome, pns_items, pns_lead_removal_date, trial_items, trial_outcome
from devicelog.clinic.wounds import wound_escalation_findings, wound_check_schedule, wound_items
from devicelog.settings import Settings


def _is_visit(event: Event) -> bool:
    """Whether a record counts as a follow-up visit.  Every kind does except the pre-MRI
    checklist (rule 13): it records that a checklist was gone through before a scan, not a
    review of the patient and device (it may be a phone call with radiology; a Prometra's
    emptying is in its free-text reason, not a field), so it must not push the routine
    follow-up back.  The post-MRI interrogation after the scan is an in-person visit and
    counts."""
    data = event.data
    return not (isinstance(data, ReinterventionData) and data.reintervention is ReinterventionKind.pre_mri_checklist)


def routine_follow_up_date(history: DeviceHistory, settings: Settings) -> dt.date | None:
    """Routine follow-up (reference 3, "visits monthly, tapering to yearly"; clinic
    setting ``follow_up_days`` per device kind): the last visit of any kind (not a
    pre-MRI checklist, :func:`_is_visit`), or the implant, plus the interval."""
    days = settings.follow_up_days.get(history.device.model.kind)
    if days is None:
        return None
    last = max([history.device.implanted_on, *(e.occurred_on for e in history.events if _is_visit(e))])
    return plus_days(last, days)


def _follow_up_items(history: DeviceHistory, settings: Settings) -> list[DueItem]:
    due = routine_follow_up_date(history, settings)
    if due is None:
        return []
    days = settings.follow_up_days[history.device.model.kind]
    last = plus_days(due, -days)
    return [
        make_item(
            history,
            what="Routine follow-up",
            code="follow_up",
            due_on=due,
            severity="routine",
            rule="reference 3",
            why=f"last visit {last} + {days} days ({history.device.model.kind.label} follow-up interval) → {due}",
        )
    ]


def removal_before_cremation_item(history: DeviceHistory) -> DueItem | None:
    """Rule 24 (domain.md, Rules the software must encode): add a "device removal
    before cremation" note at death, for a device still implanted."""
    patient = history.patient
    if not history.device.in_service:
        return None
    if patient.died_on is not None:
        on, when = patient.died_on, f"died {patient.died_on}"
    else:
        on = max([history.device.implanted_on, *(e.occurred_on for e in history.events)])
        when = f"deceased, date of death not recorded (last record {on})"
    return make_item(
        history,
        what="Device removal before cremation",
        code="removal_before_cremation",
        due_on=on,
        latest_safe_on=on,
        severity="high",
        rule="rule 24",
        why=f"patient {when}; {history.device.model.label} {history.device.serial} is still implanted: "
        "implanted batteries and pumps are removed before cremation",
    )


def _is_deceased(history: DeviceHistory) -> bool:
    return history.patient.status is PatientStatus.deceased or history.patient.died_on is not None


def goals_of_care_filter(history: DeviceHistory, items: list[DueItem]) -> tuple[list[DueItem], list[SuppressedItem]]:
    """Rule 24 (domain.md, Rules the software must encode): hospice or < 3 months
    expected survival suppresses elective replacement suggestions but never refill
    reminders (nor critical items).  Death keeps only the removal-before-cremation note.
    Nothing is dropped silently: what is kept off the list comes back with its reason."""
    patient = history.patient
    if _is_deceased(history):
        reason = f"patient deceased{f' on {patient.died_on}' if patient.died_on else ''}"
        suppressed = [SuppressedItem(item, reason) for item in items]
        note = removal_before_cremation_item(history)
        return ([note] if note else []), suppressed
    if patient.end_of_life:
        reason = f"elective item suppressed ({patient.goals_of_care.value.replace('_', ' ')})"
        kept = [i for i in items if not (i.elective and i.severity != "critical")]
        suppressed = [SuppressedItem(i, reason) for i in items if i.elective and i.severity != "critical"]
        return kept, suppressed
    return items, []


def _item_order(item: DueItem) -> tuple:
    return (item.due_on, item.code, item.source_event_id or 0)


def forecast_device(history: DeviceHistory, settings: Settings, drugs: DrugLookup) -> Forecast:
    """Every open due item of one device, the items rule 24 suppressed, and warnings.

    A device no longer in service (explanted, replaced) lists only what its explant
    or replacement requires: the wound checks after it, and wound escalation.
    """
    table = drug_table(drugs)
    items: list[DueItem] = []
    warnings: list[ClinicalWarning] = []
    device = history.device
    if device.in_service:
        if device.model.is_pump:
            pump, notes = pump_items(history, settings, table)
            items += pump
            warnings += notes
        battery, notes = battery_items(history, settings)
        items += battery
        warnings += notes
        items += alarm_items(history, settings)
        items += impedance_items(history, settings)
        items += trial_items(history, settings)
        items += pns_items(history)
        items += post_mri_items(history)
        items += _follow_up_items(history, settings)
        items += advisory_items(history)
    wounds, notes = wound_items(history, settings)
    items += wounds
    warnings += notes
    kept, suppressed = goals_of_care_filter(history, items)
    return Forecast(
        items=tuple(sorted(kept, key=_item_order)),
        suppressed=tuple(sorted(suppressed, key=lambda s: _item_order(s.item))),
        warnings=tuple(warnings),
    )


def due_items(
    histories: Iterable[DeviceHistory],
    as_of: dt.date,
    settings: Settings,
    drugs: DrugLookup,
    within_days: int | None = None,
    kinds: Iterable[DeviceKind] | None = None,
) -> list[tuple[DueItem, Status]]:
    """The clinic's due list on ``as_of``: overdue first, then by due date, then by
    severity.  ``within_days`` keeps overdue items and those due by ``as_of +
    within_days``; ``kinds`` keeps only those device kinds."""
    table = drug_table(drugs)
    wanted = None if kinds is None else set(kinds)
    horizon = None if within_days is None else plus_days(as_of, within_days)
    rows: list[tuple[DueItem, Status]] = []
    for history in histories:
        if wanted is not None and history.device.model.kind not in wanted:
            continue
        for item in forecast_device(history, settings, table).items:
            item_status = status(item, as_of, settings)
            if horizon is not None and item_status != "overdue" and item.due_on > horizon:
                continue
            rows.append((item, item_status))
    rows.sort(key=lambda row: sort_key(row[0], row[1]))
    return rows


__all__ = [
    "ClinicalWarning",
    "DueItem",
    "Forecast",
    "RefillPreview",
    "SuppressedItem",
    "TrialOutcome",
    "alarm_task_date",
    "bolus_allowance_ml_per_day",
    "applicable_limits",
    "concentration_checks",
    "describe_limit",
    "dose_checks",
    "implausible_values",
    "overridable",
    "override_problems",
    "titration_checks",
    "daily_volume_ml",
    "dose_warnings",
    "drug_stability_limits",
    "due_items",
    "eos_recorded",
    "eri_recorded",
    "expected_residual_ml",
    "forecast_device",
    "goals_of_care_filter",
    "impedance_out_of_range",
    "low_reservoir_alarm_date",
    "planned_replacement_date",
    "pns_lead_removal_date",
    "possible_pocket_fill",
    "primary_cell_eri_projection",
    "pump_end_of_service_date",
    "recharge_due_date",
    "refill_discrepancy",
    "refill_due_date",
    "refill_preview",
    "removal_before_cremation_item",
    "routine_follow_up_date",
    "status",
    "trial_outcome",
    "worst_case_daily_volume_ml",
    "wound_check_schedule",
    "wound_escalation_findings",
    "ziconotide_refill_limit_days",
]
