"""Following a due item through (issue 14.2): acknowledging and snoozing an item.

An *acknowledgement* says a person dealt with a due item ("E2 programmed off,
impedance accepted"); a *snooze* puts it off until a date, with a reason.  Both are
generic: they name the item by its stable key (``DueItem.key``: device, code, source
event) and carry a reason, so any due item (an advisory's too) can use them.

What "its inputs changed" means
-------------------------------
A record keeps, beside the item's key, the item's **fingerprint** at the time it was
recorded (:func:`fingerprint`): a hash of the item's code, due date, latest safe date,
severity and why (not of the key itself, whose ids are the database's own: an
export imported elsewhere keeps its acknowledgements).  The why holds every input of the item with its unit (the
reading, its date, the program, the limit that won), so a new interrogation, a new
refill or a new program changes either the key (a new source event) or the why and
the dates, and the record no longer applies: the item is back on the list, active.
The acknowledgement itself stays in the device's history.  (A change of devicelog's
wording of a why brings an acknowledged item back too: that errs on the safe side.)

When a record is in force
-------------------------
Records are append-only.  For each item key the newest record decides
(:func:`in_force`): an acknowledgement hides the item while its fingerprint matches;
a snooze hides it while its fingerprint matches and the list's date is before the
snooze's ``until`` date (on that date it is back); a withdrawal (an amendment of an
earlier acknowledgement or snooze) hides nothing.

Pure: no database, no screen.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Iterable, Literal

from devicelog.clinic.due import DueItem

AckKind = Literal["acknowledge", "snooze", "withdraw"]
ACK_KINDS: tuple[str, ...] = ("acknowledge", "snooze", "withdraw")
#: The word a list shows beside a hidden item.
STATE_WORD = {"acknowledge": "acknowledged", "snooze": "snoozed"}
MAX_REASON_CHARS = 500


def fingerprint(item: DueItem) -> str:
    """The item's inputs as the forecast saw them: 16 hex characters of SHA-256 over
    code, due date, latest safe date, severity and why (see the module docstring)."""
    parts = (item.code, item.due_on.isoformat(), item.latest_safe_on.isoformat() if item.latest_safe_on else "",
             item.severity, item.why)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledgement, snooze or withdrawal as recorded."""

    id: int
    device_id: int
    item_key: str
    fingerprint: str
    kind: AckKind
    reason: str
    author: str
    recorded_at: dt.datetime
    until: dt.date | None = None
    withdraws_id: int | None = None
    what: str = ""
    due_on: dt.date | None = None

    @property
    def word(self) -> str:
        """"acknowledged", "snoozed" or "withdrawn"."""
        return STATE_WORD.get(self.kind, "withdrawn")

    def text(self) -> str:
        """One line a person reads: who, when, what and why."""
        when = self.recorded_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        until = f" until {self.until}" if self.kind == "snooze" and self.until else ""
        return f"{self.word}{until} by {self.author} on {when}: {self.reason}"


def in_force(records: Iterable[Ack]) -> dict[str, Ack]:
    """Item key -> the newest acknowledgement or snooze, where the newest record of the
    key is one (a withdrawal as the newest leaves the key out)."""
    newest: dict[str, Ack] = {}
    for r in records:
        have = newest.get(r.item_key)
        if have is None or r.id > have.id:
            newest[r.item_key] = r
    return {k: r for k, r in newest.items() if r.kind != "withdraw"}


def hides(record: Ack | None, item: DueItem, as_of: dt.date) -> bool:
    """Whether ``record`` (the one in force for the item's key) hides ``item`` on ``as_of``:
    the item's inputs are the ones acknowledged, and a snooze has not run out
    (a snooze until 2026-12-20 hides the item up to 2026-12-19; it is back on the 20th)."""
    if record is None or record.fingerprint != fingerprint(item):
        return False
    if record.kind == "snooze":
        return record.until is not None and as_of < record.until
    return record.kind == "acknowledge"


def snooze_refusals(
    item: DueItem, until: dt.date, as_of: dt.date, *, alarm_on: dt.date | None = None
) -> list[tuple[str, object, str]]:
    """Why the item cannot be snoozed until ``until`` on ``as_of``: (field, value, message).

    - a critical item is never snoozed;
    - ``until`` is after ``as_of`` and never past the item's latest safe date;
    - a refill is never snoozed up to its low-reservoir alarm date (``alarm_on``):
      the alarm sounds on that day, so ``until`` must be before it.
    """
    found: list[tuple[str, object, str]] = []
    if item.severity == "critical":
        found.append(("item", item.key, f"{item.what} is critical: a critical item is never snoozed (acknowledge it, or do it)"))
        return found
    if until <= as_of:
        found.append(("until", until.isoformat(), f"must be after today ({as_of})"))
    if item.latest_safe_on is not None and until > item.latest_safe_on:
        found.append(("until", until.isoformat(), f"is past the item's latest safe date ({item.latest_safe_on})"))
    if item.code == "refill" and alarm_on is not None and until >= alarm_on:
        found.append(("until", until.isoformat(),
                      f"the pump's low-reservoir alarm sounds on {alarm_on}: snooze a refill to {alarm_on - dt.timedelta(days=1)} at the latest"))
    return found


def refill_alarm_on(history, settings, drugs) -> dt.date | None:
    """The pump's low-reservoir alarm date from its latest fill, as the refill item is
    computed (``clinic.pump.refill_schedule``, rule 2); None without a fill or a flow."""
    from devicelog.clinic.history import clinical_order
    from devicelog.clinic.pump import pump_fills, refill_schedule

    fills = pump_fills(clinical_order(history.events))
    if not fills:
        return None
    return refill_schedule(history, fills, len(fills) - 1, settings, drugs).alarm_on
