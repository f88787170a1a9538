"""Due items, warnings and their status: the vocabulary of the forecast.

A device's due items depend only on its record (patient, device, events), never on
today's date, so a store may cache them per device and recompute them only when the
record changes.  Whether an item is overdue, due or upcoming is a separate question
asked with ``status(item, as_of, settings)``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Literal

from devicelog.clinic.history import DeviceHistory
from devicelog.clinic.records import DeviceKind
from devicelog.settings import Settings

Severity = Literal["critical", "high", "routine"]
Status = Literal["overdue", "due", "upcoming"]
WarningLevel = Literal["block", "warn", "note"]

SEVERITY_ORDER: dict[str, int] = {"critical": 0, "high": 1, "routine": 2}
STATUS_ORDER: dict[str, int] = {"overdue": 0, "due": 1, "upcoming": 2}


@dataclass(frozen=True, slots=True)
class DueItem:
    """Something the clinic must do for one device, by a date, and why.

    ``code`` is a stable machine name ("refill", "wound_check_day_10"); together with
    ``device_id`` and ``source_event_id`` (the event that gave rise to the item, if one
    did) it identifies the item (``key``).  ``elective`` items are the ones rule 24
    suppresses at the end of life.
    """

    patient_id: int
    patient_mrn: str
    patient_name: str
    device_id: int
    device_serial: str
    device_model: str
    device_kind: DeviceKind
    what: str
    code: str
    due_on: dt.date
    latest_safe_on: dt.date | None
    severity: Severity
    rule: str
    why: str
    source_event_id: int | None = None
    elective: bool = False

    @property
    def key(self) -> str:
        """Stable identity: device, code and source event."""
        source = "" if self.source_event_id is None else str(self.source_event_id)
        return f"{self.device_id}:{self.code}:{source}"


@dataclass(frozen=True, slots=True)
class ClinicalWarning:
    """A warning about a value (a dose, a concentration, a missing input).

    ``level`` "block": the store refuses to save the entry; "warn": shown, saving
    allowed; "note": the forecast could not do something and says so.
    """

    level: WarningLevel
    code: str
    rule: str
    message: str


@dataclass(frozen=True, slots=True)
class SuppressedItem:
    """An item rule 24 (goals of care, death) keeps off the list, with the reason."""

    item: DueItem
    reason: str


@dataclass(frozen=True, slots=True)
class Forecast:
    """Everything the forecast says about one device."""

    items: tuple[DueItem, ...] = ()
    suppressed: tuple[SuppressedItem, ...] = ()
    warnings: tuple[ClinicalWarning, ...] = field(default_factory=tuple)


def make_item(
    history: DeviceHistory,
    *,
    what: str,
    code: str,
    due_on: dt.date,
    severity: Severity,
    rule: str,
    why: str,
    latest_safe_on: dt.date | None = None,
    source_event_id: int | None = None,
    elective: bool = False,
) -> DueItem:
    """A due item for the device of ``history``."""
    patient, device = history.patient, history.device
    return DueItem(
        patient_id=patient.id,
        patient_mrn=patient.mrn,
        patient_name=patient.name,
        device_id=device.id,
        device_serial=device.serial,
        device_model=device.model.label,
        device_kind=device.model.kind,
        what=what,
        code=code,
        due_on=due_on,
        latest_safe_on=latest_safe_on,
        severity=severity,
        rule=rule,
        why=why,
        source_event_id=source_event_id,
        elective=elective,
    )


def status(item: DueItem, as_of: dt.date, settings: Settings) -> Status:
    """Overdue when the due date has passed; due when it is within the lead time
    (``settings.lead_time_days``, inclusive); otherwise upcoming."""
    if item.due_on < as_of:
        return "overdue"
    if item.due_on <= as_of + dt.timedelta(days=settings.lead_time_days):
        return "due"
    return "upcoming"


#: Rules 11 and 28: the pump replacement after ERI (and, at the end of life, the decision
#: before the pump stops) is high severity but shown red, like a critical item.
RED_CODES = frozenset({"pump_replacement_eos", "eos_decision"})


def shown_red(item: DueItem) -> bool:
    """Whether a screen shows the item in red: critical items, and the tasks of ``RED_CODES``."""
    return item.severity == "critical" or item.code in RED_CODES


def sort_key(item: DueItem, item_status: Status) -> tuple:
    """Overdue first, then by due date, then by severity (critical first)."""
    return (
        STATUS_ORDER[item_status],
        item.due_on,
        SEVERITY_ORDER[item.severity],
        item.patient_mrn,
        item.device_serial,
        item.code,
        item.source_event_id or 0,
    )


# ------------------------------------------------------------------ shared helpers


def days_floor(days: float) -> int:
    """Whole days, cut down (dates that protect a patient round earlier).

    The count is first rounded to 6 decimals so that float noise (0.6 / 0.2 =
    2.9999999999999996) does not lose a whole day.
    """
    return math.floor(round(days, 6))


def plus_days(on: dt.date, days: int) -> dt.date:
    return on + dt.timedelta(days=days)


def plus_months(on: dt.date, months: int) -> dt.date:
    """Calendar months with pendulum: Jan 31 + 1 month = Feb 28 (or 29)."""
    import pendulum

    moved = pendulum.Date(on.year, on.month, on.day).add(months=months)
    return dt.date(moved.year, moved.month, moved.day)


def fmt_ml(volume_ml: float) -> str:
    """A volume for people: one decimal, more when needed (``18.0 mL``, ``0.25 mL``)."""
    return f"{_trim(volume_ml, 3, 1)} mL"


def fmt_ml_per_day(rate_ml_per_day: float) -> str:
    return f"{rate_ml_per_day:.3f} mL/day"


def _trim(value: float, places: int, keep: int) -> str:
    text = f"{value:.{places}f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(frac) < keep:
        frac = frac + "0" * (keep - len(frac))
    return f"{whole}.{frac}" if frac else whole
