"""The due list as an iCalendar file (issue 6.2).

One all-day event per due item, on its due date, with a display reminder
``settings.calendar_reminder_days`` before.  Importing a newer file must *update*
the events of an older one, not add a second copy, so an event's UID names the task,
not its date:

- UID = hash(device serial, item code).  The refill of pump NGP100 keeps its UID
  from one export to the next while its date moves with each refill.
- When one export holds two items with the same serial and code (two alarm tasks
  from two interrogations, say), the one from the earliest record keeps that UID and
  each other one adds the id of the record that produced it.
- SEQUENCE is the export time in minutes since 2020-01-01 and DTSTAMP the export
  time, so a later export always carries the higher sequence number and calendars
  take its date and text.

Memory (issue 8): the calendar is not built as one ``Calendar`` holding every event
(162 MB at 5,700 items, growing with the list); its own lines are written by an empty
``Calendar``, then each event is built, turned into bytes and dropped.  The bytes are
those ``Calendar.to_ical()`` gives (it writes its properties, then each component in
order, then ``END:VCALENDAR``); a test holds the two equal.

A calendar keeps an event that a newer file no longer holds (a task done); that is
the iCalendar import model, not something a PUBLISH file can undo.  icalendar is
imported inside the function.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import BinaryIO

from devicelog.clinic.due import DueItem
from devicelog.reports.safe import visible
from devicelog.store.due import DueList

UID_DOMAIN = "devicelog"
SEQUENCE_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
PRIORITY = {"critical": 1, "high": 3, "routine": 5}


def base_uid(serial: str, code: str, source_event_id: int | None = None) -> str:
    text = f"{serial}\x1f{code}" + ("" if source_event_id is None else f"\x1f{source_event_id}")
    return f"{hashlib.sha256(text.encode('utf-8')).hexdigest()[:32]}@{UID_DOMAIN}"


def uids(items: list[DueItem], *, redacted: bool = False) -> dict[str, str]:
    """UID of each item (by ``DueItem.key``); see the module docstring for the rule."""
    first = _first_of_task(items)
    return {i.key: _uid(i, first, redacted) for i in items}


def _first_of_task(items) -> dict[tuple[int, str], DueItem]:
    """The item of each (serial, code) that keeps the plain UID: the one from the
    earliest record (no record first), then the earliest due; the list's order between
    equals.  Only the winner is kept per task, not a UID per item: a whole list at
    100,000 patients (206,000 items) held ~70 MB of keys and UIDs."""
    first: dict[tuple[int, str], DueItem] = {}
    for i in items:
        task = (i.device_id, i.code)
        held = first.get(task)
        if held is None or _rank(i) < _rank(held):
            first[task] = i
    return first


def _rank(i: DueItem) -> tuple:
    return (i.source_event_id is not None, i.source_event_id or 0, i.due_on)


def _uid(i: DueItem, first: dict[tuple[int, str], DueItem], redacted: bool = False) -> str:
    # A redacted copy shows only a serial's last 4 characters, which two devices may
    # share: its UIDs are made from the device's id instead, never from the serial.
    serial = f"device {i.device_id}" if redacted else i.device_serial
    if first[(i.device_id, i.code)] is i:
        return base_uid(serial, i.code)
    return base_uid(serial, i.code, i.source_event_id if i.source_event_id is not None else -1)


def sequence(generated_at: dt.datetime) -> int:
    return max(0, int((generated_at - SEQUENCE_EPOCH).total_seconds() // 60))


def render_ics(dl: DueList, *, reminder_days: int, generated_at: dt.datetime) -> bytes:
    """The calendar as bytes (CRLF lines, UTF-8).  ``generated_at`` must be time-zone aware."""
    import io

    out = io.BytesIO()
    write_ics(dl, out, reminder_days=reminder_days, generated_at=generated_at)
    return out.getvalue()


def write_ics(dl: DueList, out: BinaryIO, *, reminder_days: int, generated_at: dt.datetime) -> None:
    """The calendar written to a binary file an event at a time (what ``-o`` should call:
    :func:`render_ics` holds the whole file, ~50 MB at 57,000 items, as bytes)."""
    from icalendar import Calendar

    if generated_at.tzinfo is None:
        raise ValueError("generated_at must be time-zone aware")
    stamp = generated_at.astimezone(dt.timezone.utc)
    seq = sequence(stamp)
    cal = Calendar()
    cal.add("prodid", "-//devicelog//due list//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    name = visible(f"{dl.clinic_name or 'Device clinic'}: due list", one_line=True) + (" (redacted)" if dl.redacted else "")
    cal.add("x-wr-calname", name)
    first = _first_of_task(e.item for e in dl.entries)
    head = cal.to_ical()
    end = b"END:VCALENDAR\r\n"
    if not head.endswith(end):  # pragma: no cover - icalendar's layout changed
        raise RuntimeError("unexpected iCalendar layout")
    out.write(head[: -len(end)])
    for e in dl.entries:
        out.write(_event(e, dl, _uid(e.item, first, dl.redacted), stamp, seq, reminder_days).to_ical())
    out.write(end)


def _event(e, dl: DueList, uid: str, stamp: dt.datetime, seq: int, reminder_days: int):
    """One due item as a VEVENT with its VALARM; every text from the database shown
    through ``visible`` (a calendar shows it on a screen: no control character passes)."""
    from icalendar import Alarm, Event

    i = e.item
    from devicelog.reports.due import why_text

    what, why = visible(i.what, one_line=True), visible(why_text(e))
    name, mrn = visible(i.patient_name, one_line=True), visible(i.patient_mrn, one_line=True)
    model, serial = visible(i.device_model, one_line=True), visible(i.device_serial, one_line=True)
    ev = Event()
    ev.add("uid", uid)
    ev.add("dtstamp", stamp)
    ev.add("last-modified", stamp)
    ev.add("sequence", seq)
    ev.add("dtstart", i.due_on)
    ev.add("dtend", i.due_on + dt.timedelta(days=1))
    ev.add("summary", f"{what}: {name} ({mrn})")
    lines = [
        f"Due {i.due_on.isoformat()}"
        + (f"; latest safe date {i.latest_safe_on.isoformat()}" if i.latest_safe_on else ""),
        f"Patient {name}, MRN {mrn}",
        f"Device {model}, SN {serial}",
        f"Why: {why}",
        f"Severity {i.severity}; {e.ack.word if e.ack is not None else e.status} as of {dl.as_of.isoformat()} ({i.rule})",
    ]
    ev.add("description", "\n".join(lines))
    ev.add("categories", ["devicelog", i.severity])
    ev.add("priority", PRIORITY.get(i.severity, 5))
    ev.add("transp", "TRANSPARENT")
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", f"Due {i.due_on.isoformat()}: {what} ({name})")
    alarm.add("trigger", -dt.timedelta(days=reminder_days))
    ev.add_component(alarm)
    return ev
