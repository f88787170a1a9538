"""Wound and pocket checks after an implant or a revision, and same-day escalation
(clinical reference rules 20-22)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

from devicelog.clinic.due import ClinicalWarning, DueItem, make_item, plus_days
from devicelog.clinic.history import DeviceHistory, clinical_order
from devicelog.clinic.records import (
    SURGICAL_REINTERVENTIONS,
    Dehiscence,
    DeviceKind,
    Drainage,
    Event,
    ReinterventionData,
    ReinterventionKind,
    WoundCheckData,
)
from devicelog.settings import Settings, WoundCheck

#: Rule 22: fever above this is an escalation (strictly above).
FEVER_ESCALATION_C = 38.0

#: Reinterventions that end a device's service: on an explanted or replaced device only
#: the wound checks these require are still listed.
ENDING_REINTERVENTIONS = frozenset(
    {ReinterventionKind.explant, ReinterventionKind.pump_replacement, ReinterventionKind.ipg_replacement}
)


@dataclass(frozen=True)
class SurgeryStart:
    """Something that opened the wound: the implant or a surgical reintervention."""

    on: dt.date
    label: str
    event_id: int | None


def wound_check_schedule(surgery_on: dt.date, check: WoundCheck) -> tuple[dt.date, dt.date, dt.date]:
    """Rule 20 (domain.md, Rules the software must encode): wound and pocket checks after
    any implant or revision, day 10 (window 7-14), then day 30 and day 90.

    Returns (window start, due date, window end = latest safe date).
    """
    return (
        plus_days(surgery_on, check.window_start_day),
        plus_days(surgery_on, check.day),
        plus_days(surgery_on, check.window_end_day),
    )


def wound_escalation_findings(data: WoundCheckData, device_kind: DeviceKind) -> list[str]:
    """Rule 22 (domain.md, Rules the software must encode): escalate same day on
    purulent drainage, dehiscence with exposed hardware, temperature > 38.0 °C, or
    meningism in an intrathecal (pump) patient."""
    findings: list[str] = []
    if data.drainage is Drainage.purulent:
        findings.append("purulent drainage")
    if data.dehiscence is Dehiscence.exposed_hardware:
        findings.append("dehiscence with exposed hardware")
    if data.fever_c is not None and data.fever_c > FEVER_ESCALATION_C:
        findings.append(f"fever {data.fever_c:g} °C (> {FEVER_ESCALATION_C:g} °C)")
    if data.meningism and device_kind is DeviceKind.intrathecal_pump:
        findings.append("meningism in an intrathecal pump patient")
    return findings


def surgery_starts(history: DeviceHistory, events: Sequence[Event]) -> list[SurgeryStart]:
    """The implant (trial implants too) and every surgical reintervention (rule 20).

    For a device no longer in service, only the explant or replacement that ended it.
    """
    surgical_events = [
        e
        for e in events
        if isinstance(e.data, ReinterventionData) and e.data.reintervention in SURGICAL_REINTERVENTIONS
    ]
    if not history.device.in_service:
        surgical_events = [e for e in surgical_events if e.data.reintervention in ENDING_REINTERVENTIONS][-1:]  # type: ignore[union-attr]
    surgical = [
        SurgeryStart(e.occurred_on, e.data.reintervention.value.replace("_", " "), e.id)  # type: ignore[union-attr]
        for e in surgical_events
    ]
    if not history.device.in_service:
        return surgical
    implant = SurgeryStart(history.device.implanted_on, f"{history.device.implant_type.value} implant", None)
    return [implant, *surgical]


def surveillance_closed_on(surgery_on: dt.date, settings: Settings) -> dt.date:
    """Rule 20: "The SSI window closes at day 90"; with the clinic's wound checks, the
    surveillance ends when the last check's window ends (day 104 by default)."""
    return plus_days(surgery_on, max(c.window_end_day for c in settings.wound_checks))


def wound_items(history: DeviceHistory, settings: Settings) -> tuple[list[DueItem], list[ClinicalWarning]]:
    """Rules 20 and 22 for one device.

    A check never logged stays due, then overdue, until a wound check is logged, except
    when the record shows the patient was seen again after the surveillance window
    closed (a device brought into devicelog years after its implant, say): a check can
    no longer be done then, so it is reported as a note ("never logged") instead of an
    item that could never be satisfied.
    """
    events = clinical_order(history.events)
    checks = [e for e in events if isinstance(e.data, WoundCheckData)]
    items: list[DueItem] = []
    notes: list[ClinicalWarning] = []
    for start in surgery_starts(history, events):
        closed_on = surveillance_closed_on(start.on, settings)
        seen_after_close = any(e.occurred_on > closed_on for e in events)
        for check in settings.wound_checks:
            window_start, due, window_end = wound_check_schedule(start.on, check)
            if any(c.occurred_on >= window_start for c in checks):
                continue
            if seen_after_close:
                notes.append(
                    ClinicalWarning(
                        "note",
                        f"wound_check_day_{check.day}_missed",
                        "rule 20",
                        f"wound check day {check.day} after the {start.label} on {start.on} was never logged; "
                        f"the surveillance window closed {closed_on} and the patient was seen since",
                    )
                )
                continue
            items.append(
                make_item(
                    history,
                    what=f"Wound check day {check.day}",
                    code=f"wound_check_day_{check.day}",
                    due_on=due,
                    latest_safe_on=window_end,
                    severity="routine",
                    rule="rule 20",
                    why=f"{start.label} on {start.on} + {check.day} days → {due}; "
                    f"window day {check.window_start_day}-{check.window_end_day} ({window_start} to {window_end})",
                    source_event_id=start.event_id,
                )
            )
    escalation = _open_escalation(history, events)
    if escalation is not None:
        items.append(escalation)
    return items, notes


def _open_escalation(history: DeviceHistory, events: Sequence[Event]) -> DueItem | None:
    """Rule 22: the latest wound check, if it has escalation findings and no surgical
    reintervention followed it.  A later wound check either clears an escalation or
    raises its own, so only the latest one can be open."""
    last_index = max((i for i, e in enumerate(events) if isinstance(e.data, WoundCheckData)), default=None)
    if last_index is None:
        return None
    check = events[last_index]
    findings = wound_escalation_findings(check.data, history.device.model.kind)  # type: ignore[arg-type]
    if not findings:
        return None
    for later in events[last_index + 1 :]:
        if isinstance(later.data, ReinterventionData) and later.data.reintervention in SURGICAL_REINTERVENTIONS:
            return None
    return make_item(
        history,
        what="Wound escalation: same-day review",
        code="wound_escalation",
        due_on=check.occurred_on,
        latest_safe_on=check.occurred_on,
        severity="critical",
        rule="rule 22",
        why=f"wound check on {check.occurred_on}: {', '.join(findings)}",
        source_event_id=check.id,
    )
