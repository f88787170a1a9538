"""Device alarms and lead impedance (clinical reference rules 12 and 18)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

from devicelog.clinic.due import DueItem, Severity, make_item, plus_days
from devicelog.clinic.history import DeviceHistory, clinical_order
from devicelog.clinic.records import (
    Alarm,
    AlarmCode,
    ContactImpedance,
    Event,
    InterrogationData,
    RefillData,
    ReinterventionData,
    ReinterventionKind,
)
from devicelog.clinic.words import plural
from devicelog.settings import Settings

#: A refill answers these alarms.
RESERVOIR_ALARMS = frozenset({AlarmCode.low_reservoir, AlarmCode.empty_reservoir})
#: A replacement or explant answers these alarms.
BATTERY_ALARMS = frozenset(
    {
        AlarmCode.eri,
        AlarmCode.eos,
        AlarmCode.premature_eri,
        AlarmCode.premature_eos,
        AlarmCode.low_battery_reset,
    }
)
RENEWALS = frozenset(
    {ReinterventionKind.pump_replacement, ReinterventionKind.ipg_replacement, ReinterventionKind.explant}
)
LEAD_FIXES = frozenset(
    {ReinterventionKind.lead_revision, ReinterventionKind.migration, ReinterventionKind.explant, ReinterventionKind.lead_removal}
)


def alarm_task_date(alarm: Alarm, on: dt.date, settings: Settings) -> tuple[dt.date, Severity]:
    """Rule 12 (domain.md, Rules the software must encode): critical alarms (empty
    reservoir, EOS, motor stall, critical memory error, Low Battery Reset) create a
    same-day task; non-critical alarms a task within 7 days (``noncritical_alarm_days``)."""
    if alarm.critical:
        return plus_days(on, settings.critical_alarm_days), "critical"
    return plus_days(on, settings.noncritical_alarm_days), "high"


def _answered(alarm: AlarmCode, later: Sequence[Event]) -> bool:
    for event in later:
        if isinstance(event.data, InterrogationData):
            return True  # without the alarm it clears it; with it, it raises its own item
        if alarm in RESERVOIR_ALARMS and isinstance(event.data, RefillData):
            return True
        if (
            alarm in BATTERY_ALARMS
            and isinstance(event.data, ReinterventionData)
            and event.data.reintervention in RENEWALS
        ):
            return True
    return False


def alarm_items(history: DeviceHistory, settings: Settings) -> list[DueItem]:
    """Rule 12 for one device: one item per alarm of an interrogation, until a later
    interrogation (or a refill, for reservoir alarms; a replacement, for battery ones)."""
    events = clinical_order(history.events)
    items: list[DueItem] = []
    for i, event in enumerate(events):
        if not isinstance(event.data, InterrogationData):
            continue
        seen: set[AlarmCode] = set()
        for alarm in event.data.alarms:
            if alarm.code in seen or _answered(alarm.code, events[i + 1 :]):
                continue
            seen.add(alarm.code)
            due, severity = alarm_task_date(alarm, event.occurred_on, settings)
            kind = "Critical alarm" if alarm.critical else "Alarm"
            name = alarm.code.label
            horizon = "same day" if alarm.critical else f"within {plural(settings.noncritical_alarm_days, 'day')}"
            # A note that only repeats the label ("elective replacement indicator" on an ERI) is not said twice.
            note = f" ({alarm.note})" if alarm.note and alarm.note.strip().lower() not in name.lower() else ""
            items.append(
                make_item(
                    history,
                    what=f"{kind}: {name}",
                    code=f"alarm_{alarm.code.value}",
                    due_on=due,
                    latest_safe_on=due,
                    severity=severity,
                    rule="rule 12",
                    why=f"{name} alarm{note} at the interrogation on {event.occurred_on}: "
                    f"{'critical' if alarm.critical else 'non-critical'}, task {horizon} → {due}",
                    source_event_id=event.id,
                )
            )
    return items


@dataclass(frozen=True)
class ImpedanceFinding:
    contact: str
    impedance_ohm: float
    problem: str  # "open" or "short"


def impedance_out_of_range(impedances: Sequence[ContactImpedance], settings: Settings) -> list[ImpedanceFinding]:
    """Rule 18 (domain.md, Rules the software must encode): flag open above
    (``impedance_open_ohm``, 4,000 Ω) and short below (``impedance_short_ohm``, 250 Ω);
    both limits are strict."""
    findings = []
    for reading in impedances:
        if reading.impedance_ohm > settings.impedance_open_ohm:
            findings.append(ImpedanceFinding(reading.contact, reading.impedance_ohm, "open"))
        elif reading.impedance_ohm < settings.impedance_short_ohm:
            findings.append(ImpedanceFinding(reading.contact, reading.impedance_ohm, "short"))
    return findings


def impedance_items(history: DeviceHistory, settings: Settings) -> list[DueItem]:
    """Rule 18 for one device: the latest interrogation that measured impedances, if any
    contact is out of range, gives an item within ``noncritical_alarm_days``, until a
    later impedance measurement or a lead revision, migration fix, removal or explant."""
    events = clinical_order(history.events)
    measured = [i for i, e in enumerate(events) if isinstance(e.data, InterrogationData) and e.data.impedances]
    if not measured:
        return []
    index = measured[-1]
    event = events[index]
    if any(
        isinstance(e.data, ReinterventionData) and e.data.reintervention in LEAD_FIXES for e in events[index + 1 :]
    ):
        return []
    findings = impedance_out_of_range(event.data.impedances, settings)  # type: ignore[union-attr]
    if not findings:
        return []
    due = plus_days(event.occurred_on, settings.noncritical_alarm_days)
    listed = ", ".join(
        f"contact {f.contact} {f.impedance_ohm:,.0f} Ω ({f.problem}: "
        f"{'>' if f.problem == 'open' else '<'} {(settings.impedance_open_ohm if f.problem == 'open' else settings.impedance_short_ohm):,.0f} Ω)"
        for f in findings
    )
    return [
        make_item(
            history,
            what="Lead impedance out of range",
            code="impedance",
            due_on=due,
            latest_safe_on=due,
            severity="high",
            rule="rule 18",
            why=f"interrogation on {event.occurred_on}: {listed}; review within "
            f"{settings.noncritical_alarm_days} days → {due}",
            source_event_id=event.id,
        )
    ]
