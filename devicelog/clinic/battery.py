"""Battery rules: pump ERI → EOS, planned pump replacement, primary-cell IPG projection,
rechargeable IPG charging, EOS as "therapy off" (clinical reference rules 11, 14, 19)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

from devicelog.clinic.due import ClinicalWarning, DueItem, days_floor, make_item, plus_days, plus_months
from devicelog.clinic.history import DeviceHistory, clinical_order
from devicelog.clinic.records import (
    AlarmCode,
    BatteryState,
    Event,
    InterrogationData,
    PowerSource,
    ReinterventionData,
    ReinterventionKind,
)
from devicelog.settings import Settings

ERI_ALARMS = frozenset({AlarmCode.eri, AlarmCode.premature_eri})
EOS_ALARMS = frozenset({AlarmCode.eos, AlarmCode.premature_eos})
#: Reinterventions after which the old battery's story is over.
BATTERY_RENEWALS = frozenset(
    {ReinterventionKind.pump_replacement, ReinterventionKind.ipg_replacement, ReinterventionKind.explant}
)


def eri_recorded(data: InterrogationData) -> bool:
    """Rule 11/19: the interrogation shows ERI (battery state or an ERI alarm)."""
    return data.battery_state is BatteryState.eri or any(a.code in ERI_ALARMS for a in data.alarms)


def eos_recorded(data: InterrogationData) -> bool:
    """Rule 19: the interrogation shows EOS (battery state or an EOS alarm)."""
    return data.battery_state is BatteryState.eos or any(a.code in EOS_ALARMS for a in data.alarms)


def pump_end_of_service_date(eri_on: dt.date, eri_to_eos_days: int) -> dt.date:
    """Rule 11 (domain.md, Rules the software must encode): ``EOS = ERI + 90 d`` on a
    SynchroMed (the model's ``eri_to_eos_days``)."""
    return plus_days(eri_on, eri_to_eos_days)


def planned_replacement_date(implanted_on: dt.date, planned_replacement_months: int) -> dt.date:
    """Rule 11 (domain.md, Rules the software must encode): replacement task at
    ``implant_date + 7 y − 6 months`` for SynchroMed II (the model's
    ``planned_replacement_months``, 78).  Calendar months: Jan 31 + 1 month = Feb 28."""
    return plus_months(implanted_on, planned_replacement_months)


@dataclass(frozen=True)
class BatteryProjection:
    eri_on: dt.date | None
    slope_percent_per_day: float | None
    why: str


def primary_cell_eri_projection(
    readings: Sequence[tuple[dt.date, float]], eri_percent: float
) -> BatteryProjection:
    """Rule 19 (domain.md, Rules the software must encode): a primary-cell IPG "stores %
    ... with trend-based ERI projection".

    Least-squares line through (day, battery %) readings; ERI is the day the line
    reaches ``eri_percent``, cut down to a whole day.  Needs readings on at least two
    different dates; a flat or rising line gives no projection.  A latest reading
    already at or below ERI puts ERI on that reading's date.
    """
    readings = sorted(readings)
    if len({d for d, _ in readings}) < 2:
        return BatteryProjection(
            None,
            None,
            f"{len(readings)} battery reading(s): at least 2 on different dates are needed to project ERI",
        )
    last_on, last_percent = readings[-1]
    if last_percent <= eri_percent:
        return BatteryProjection(
            last_on, None, f"battery {last_percent:g}% on {last_on} is at or below the ERI level of {eri_percent:g}%"
        )
    origin = readings[0][0]
    xs = [(d - origin).days for d, _ in readings]
    ys = [p for _, p in readings]
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    listed = ", ".join(f"{p:g}% on {d}" for d, p in readings)
    if slope >= 0:
        return BatteryProjection(None, slope, f"battery readings {listed} are not falling: no ERI projection")
    day = days_floor((eri_percent - intercept) / slope)
    eri_on = max(plus_days(origin, day), last_on)
    return BatteryProjection(
        eri_on,
        slope,
        f"least-squares trend of {listed}: {slope:.4f} %/day; reaches the ERI level of {eri_percent:g}% "
        f"after {day} days from {origin} → {eri_on}",
    )


def recharge_due_date(last_full_charge_on: dt.date, recharge_interval_days: float, grace_days: int) -> dt.date:
    """Rule 19 (domain.md, Rules the software must encode): a rechargeable IPG "stores
    charge interval and last full charge": the next full charge is due by
    ``last_full_charge + interval + grace`` (a fractional interval is cut down)."""
    return plus_days(last_full_charge_on, days_floor(recharge_interval_days) + grace_days)


def _since_last_renewal(events: Sequence[Event]) -> list[Event]:
    start = 0
    for i, event in enumerate(events):
        if isinstance(event.data, ReinterventionData) and event.data.reintervention in BATTERY_RENEWALS:
            start = i + 1
    return list(events[start:])


def _renewed(events: Sequence[Event]) -> bool:
    return any(
        isinstance(e.data, ReinterventionData) and e.data.reintervention in BATTERY_RENEWALS for e in events
    )


def battery_items(history: DeviceHistory, settings: Settings) -> tuple[list[DueItem], list[ClinicalWarning]]:
    """Rules 11, 14 and 19 for one device.  Devices without a battery (constant-flow
    pumps, external PNS generators) get none (rule 14)."""
    model = history.device.model
    if model.power is PowerSource.none:
        return [], []
    events = clinical_order(history.events)
    current = _since_last_renewal(events)
    interrogations = [e for e in current if isinstance(e.data, InterrogationData)]
    items: list[DueItem] = []
    warnings: list[ClinicalWarning] = []

    eos = next((e for e in interrogations if eos_recorded(e.data)), None)  # type: ignore[arg-type]
    eri = next((e for e in interrogations if eri_recorded(e.data)), None)  # type: ignore[arg-type]
    device_word = "Pump" if model.is_pump else "IPG"
    if eos is not None:
        items.append(
            make_item(
                history,
                what=f"{device_word} at end of service: therapy off",
                code="therapy_off_eos",
                due_on=eos.occurred_on,
                latest_safe_on=eos.occurred_on,
                severity="critical",
                rule="rule 19" if not model.is_pump else "rule 11",
                why=f"EOS recorded on {eos.occurred_on}: the {device_word.lower()} no longer delivers therapy; "
                "replace or explant",
                source_event_id=eos.id,
            )
        )
    elif eri is not None and model.is_pump:
        items += _pump_eri_items(history, eri, settings)
    elif eri is not None:
        due = plus_days(eri.occurred_on, settings.noncritical_alarm_days)
        items.append(
            make_item(
                history,
                what="IPG replacement (ERI)",
                code="ipg_replacement_eri",
                due_on=due,
                severity="high",
                rule="rule 19",
                why=f"ERI recorded on {eri.occurred_on}: schedule replacement; "
                f"booked within {settings.noncritical_alarm_days} days → {due}",
                source_event_id=eri.id,
                elective=True,
            )
        )

    if model.is_pump and model.planned_replacement_months and not _renewed(events):
        # Rule 28: no planned replacement after the pump stops (EOS recorded, or ERI + the
        # model's ERI-to-EOS days); the ERI replacement item says so.
        stops_on = eos.occurred_on if eos is not None else None
        if stops_on is None and eri is not None and model.eri_to_eos_days is not None:
            stops_on = pump_end_of_service_date(eri.occurred_on, model.eri_to_eos_days)
        planned = _planned_replacement_item(history, stops_on)
        if planned is not None:
            items.append(planned)

    if not model.is_pump and model.power is PowerSource.battery and eos is None and eri is None:
        readings = [
            (e.occurred_on, e.data.battery_percent)  # type: ignore[union-attr]
            for e in interrogations
            if e.data.battery_percent is not None  # type: ignore[union-attr]
        ]
        projection = primary_cell_eri_projection(readings, settings.ipg_eri_battery_percent)
        if projection.eri_on is None:
            warnings.append(ClinicalWarning("note", "battery_projection", "rule 19", projection.why))
        else:
            items.append(
                make_item(
                    history,
                    what="IPG replacement (projected ERI)",
                    code="ipg_replacement_projected_eri",
                    due_on=projection.eri_on,
                    severity="routine",
                    rule="rule 19",
                    why=projection.why,
                    elective=True,
                )
            )

    if model.power is PowerSource.rechargeable and eos is None:
        item, note = _recharge_item(history, interrogations, settings)
        if item is not None:
            items.append(item)
        if note is not None:
            warnings.append(note)
    return items, warnings


def pump_replacement_due_date(eri_on: dt.date, eos_on: dt.date, margin_days: int) -> dt.date:
    """Rule 28 (domain.md, Rules added): after ERI the pump replacement is due a margin
    (``eri_replacement_margin_days``) before EOS, never before the ERI itself; the
    latest safe date is EOS."""
    return max(eri_on, plus_days(eos_on, -margin_days))


#: Rule 24: the words of the item kept at the end of life in place of the elective replacement.
EOS_DECISION = "decide replacement or change to systemic analgesia before then"


def _pump_eri_items(history: DeviceHistory, eri: Event, settings: Settings) -> list[DueItem]:
    """Rules 11 and 28: ERI on a pump is a non-critical alarm.  The replacement is a
    high-severity (red) elective item due a margin before EOS, latest safe EOS.  At the
    end of life (hospice or < 3 months expected survival, rule 24) the elective
    replacement is suppressed, so a non-elective item stays: the pump stops at EOS and
    intrathecal drug must never lapse unplanned."""
    model = history.device.model
    days = model.eri_to_eos_days
    eri_on = eri.occurred_on
    items: list[DueItem] = []
    if days is None:
        why = (
            f"ERI recorded on {eri_on}; the catalogue gives no ERI-to-EOS interval for {model.label}: "
            "the day the pump stops is unknown, replace as soon as possible"
        )
        items.append(
            make_item(
                history,
                what="Pump replacement (ERI)",
                code="pump_replacement_eos",
                due_on=eri_on,
                severity="high",
                rule="rule 11",
                why=why,
                source_event_id=eri.id,
                elective=True,
            )
        )
        if history.patient.end_of_life:
            items.append(
                make_item(
                    history,
                    what=f"Pump at ERI, stop date unknown: {EOS_DECISION}",
                    code="eos_decision",
                    due_on=eri_on,
                    severity="high",
                    rule="rule 28",
                    why=f"{why}; {history.patient.goals_of_care.value.replace('_', ' ')}: the elective replacement is "
                    "not listed, but intrathecal drug must never lapse unplanned",
                    source_event_id=eri.id,
                )
            )
        return items
    eos_on = pump_end_of_service_date(eri_on, days)
    margin = settings.eri_replacement_margin_days
    due = pump_replacement_due_date(eri_on, eos_on, margin)
    clamp = f" (before the ERI on {eri_on}, so {eri_on})" if due != plus_days(eos_on, -margin) else ""
    why = (
        f"ERI recorded on {eri_on} + {days} days ({model.label} ERI to EOS) = EOS {eos_on}: the pump stops then; "
        f"due EOS − {margin} days (clinic margin eri_replacement_margin_days) = {plus_days(eos_on, -margin)}{clamp} → {due}; "
        f"latest safe date EOS {eos_on}"
    )
    if model.planned_replacement_months and not _renewed(clinical_order(history.events)):
        planned_on = planned_replacement_date(history.device.implanted_on, model.planned_replacement_months)
        if planned_on > eos_on:
            why += (
                f"; the planned replacement (implanted {history.device.implanted_on} + {model.planned_replacement_months} "
                f"months = {planned_on}) falls after EOS and is not listed"
            )
    items.append(
        make_item(
            history,
            what="Pump replacement before EOS",
            code="pump_replacement_eos",
            due_on=due,
            latest_safe_on=eos_on,
            severity="high",
            rule="rule 11",
            why=why,
            source_event_id=eri.id,
            elective=True,
        )
    )
    if history.patient.end_of_life:
        items.append(
            make_item(
                history,
                what=f"Pump stops on {eos_on}: {EOS_DECISION}",
                code="eos_decision",
                due_on=due,
                latest_safe_on=eos_on,
                severity="high",
                rule="rule 28",
                why=f"{why}; {history.patient.goals_of_care.value.replace('_', ' ')}: the elective replacement is not "
                "listed (rule 24), but intrathecal drug must never lapse unplanned",
                source_event_id=eri.id,
            )
        )
    return items


def _planned_replacement_item(history: DeviceHistory, stops_on: dt.date | None = None) -> DueItem | None:
    """Rule 11's planned replacement; None when it would fall after the day the pump
    stops (``stops_on``, rule 28), whose latest safe date also caps it."""
    model, implanted_on = history.device.model, history.device.implanted_on
    months = model.planned_replacement_months
    assert months is not None
    due = planned_replacement_date(implanted_on, months)
    if stops_on is not None and due > stops_on:
        return None
    latest = None
    why = f"implanted {implanted_on} + {months} months"
    if model.battery_life_years:
        life_months = int(round(model.battery_life_years * 12))
        latest = plus_months(implanted_on, life_months)
        why += (
            f" ({life_months - months} months before the {model.battery_life_years:g}-year battery limit "
            f"on {latest}) → {due}"
        )
    else:
        why += f" → {due}"
    if stops_on is not None and (latest is None or stops_on < latest):
        latest = stops_on
        why += f"; the pump stops on {stops_on} (EOS): latest safe date {stops_on}"
    return make_item(
        history,
        what="Planned pump replacement",
        code="planned_replacement",
        due_on=due,
        latest_safe_on=latest,
        severity="routine",
        rule="rule 11",
        why=why,
        elective=True,
    )


def _recharge_item(
    history: DeviceHistory, interrogations: Sequence[Event], settings: Settings
) -> tuple[DueItem | None, ClinicalWarning | None]:
    """Rule 19 and issue 3: a rechargeable IPG is flagged when, at an interrogation, its
    last full charge is older than the recorded recharge interval (+ grace): the patient
    missed a charge.  The clinic cannot see charging between visits, so nothing is
    predicted forward; the item asks for a call within the non-critical alarm horizon
    and is satisfied by a later interrogation that shows a charge within the interval.
    """
    charged = [e for e in interrogations if e.data.last_full_charge_on is not None]  # type: ignore[union-attr]
    if not charged:
        return None, ClinicalWarning("note", "recharge_unknown", "rule 19", "no last full charge recorded for this rechargeable IPG")
    latest = max(charged, key=lambda e: (e.occurred_on, e.recorded_at, e.id))
    last_on = latest.data.last_full_charge_on  # type: ignore[union-attr]
    interval = next(
        (e.data.recharge_interval_days for e in reversed(interrogations) if e.data.recharge_interval_days),  # type: ignore[union-attr]
        history.device.recharge_interval_days,
    )
    if interval is None:
        return None, ClinicalWarning("note", "recharge_interval_unknown", "rule 19", "no recharge interval recorded for this rechargeable IPG")
    due_by = recharge_due_date(last_on, interval, settings.recharge_grace_days)
    if latest.occurred_on <= due_by:
        return None, None
    days_since = (latest.occurred_on - last_on).days
    call_by = plus_days(latest.occurred_on, settings.noncritical_alarm_days)
    item = make_item(
        history,
        what="Recharge missed: contact patient",
        code="recharge_missed",
        due_on=call_by,
        severity="high",
        rule="rule 19",
        why=f"at the interrogation on {latest.occurred_on} the last full charge was {last_on}, "
        f"{days_since} days before; recharge interval {interval:g} days + grace "
        f"{settings.recharge_grace_days} days → charge was due by {due_by} (missed); "
        f"contact within {settings.noncritical_alarm_days} days → {call_by}",
        source_event_id=latest.id,
    )
    return item, None
