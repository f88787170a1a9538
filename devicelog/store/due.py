"""The due list: the one place the TUI and every report read due items from.

``due_list(session, as_of=…, settings=…, within_days=…, kinds=…)`` asks a
*forecast source* for each device's ``Forecast`` (its due items, the items rule 24
suppressed, and its notes), then keeps what falls in the range, gives each item its
status on ``as_of`` and sorts the list: overdue first, then by date
(``devicelog.clinic.due.sort_key``).

A device's forecast depends only on its record, never on today's date
(``devicelog.clinic.due``), so it is stored: the maintained next-due table
(``devicelog.store.forecasts``, issue 8.2) is refreshed in the same transaction as
every write that changes a device's record.  With no ``source=`` given, the list
is read from that table when it was computed with the caller's settings, the same
forecast code and catalogue (``forecasts.is_fresh``): one pass over the table for
the items due by ``until``, listed and suppressed (kinds and devices filtered in SQL;
``forecasts.read_range`` says why it does not use an index) and one query for the
notes; statuses are given and the list sorted in Python.  Otherwise (a table that could not be rebuilt, a caller with other settings)
every forecast is computed (``ComputedForecasts``: load every history and run the
forecast), which is also the reference the tests compare the table with.

The functions take a sqlmodel ``Session`` or a plain SQLAlchemy ``Connection``; the
stored path imports neither the ORM nor the forecast modules, so ``devicelog due``
starts fast.  Every format of ``devicelog due`` is written from the ``DueList`` made
here (``reports.due``).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Collection, Iterable, Iterator, Protocol, Sequence

from devicelog.clinic.acks import Ack, hides
from devicelog.clinic.due import (
    SEVERITY_ORDER,
    STATUS_ORDER,
    ClinicalWarning,
    DueItem,
    Forecast,
    Status,
    SuppressedItem,
    sort_key,
    status,
)
from devicelog.clinic.records import DeviceKind
from devicelog.store import forecasts

if TYPE_CHECKING:
    from sqlmodel import Session

    from devicelog.clinic.history import DeviceHistory
    from devicelog.settings import Settings

#: Short names people type for ``--kind`` (and the full names).
KIND_ALIASES: dict[str, DeviceKind] = {
    "pump": DeviceKind.intrathecal_pump,
    "itp": DeviceKind.intrathecal_pump,
    "scs": DeviceKind.spinal_cord_stimulator,
    "drg": DeviceKind.drg_stimulator,
    "pns": DeviceKind.peripheral_nerve_stimulator,
    **{k.value: k for k in DeviceKind},
}

MAX_WITHIN_DAYS = forecasts.MAX_WITHIN_DAYS


def parse_kind(text: str) -> DeviceKind:
    """A device kind from its full or short name; ``ValueError`` naming the choices."""
    try:
        return KIND_ALIASES[text.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown device kind {text!r}: give pump, scs, drg or pns (or "
            + ", ".join(k.value for k in DeviceKind)
            + ")"
        ) from None


@dataclass(frozen=True, slots=True)
class DueEntry:
    """One due item with its status on the list's as-of date, and the acknowledgement or
    snooze that hides it (``ack``, None for an active item: issue 14.2)."""

    item: DueItem
    status: Status
    ack: Ack | None = None


@dataclass(frozen=True, slots=True)
class DeviceNote:
    """A forecast warning about a device (a value out of range, or something the forecast
    could not work out), kept with the list so it is never dropped silently."""

    patient_name: str
    patient_mrn: str
    device_serial: str
    device_model: str
    warning: ClinicalWarning


@dataclass(frozen=True)
class DueList:
    """What is due in a range, in order, with what was suppressed and why.

    ``until`` is the last due date included (``as_of + within_days``), or None for
    everything the forecast knows.  Overdue items are always included.
    """

    as_of: dt.date
    until: dt.date | None
    kinds: tuple[DeviceKind, ...]
    entries: tuple[DueEntry, ...]
    suppressed: tuple[SuppressedItem, ...] = ()
    notes: tuple[DeviceNote, ...] = ()
    redacted: bool = False
    clinic_name: str = ""
    #: Items an acknowledgement or a snooze in force hides (issue 14.2), in list order:
    #: left out of ``entries`` unless ``show_acknowledged``, then listed there, marked.
    hidden: tuple[DueEntry, ...] = ()
    show_acknowledged: bool = False

    def hidden_counts(self) -> tuple[int, int]:
        """(acknowledged, snoozed) items hidden (or shown marked) on this list."""
        acked = sum(1 for e in self.hidden if e.ack is not None and e.ack.kind == "acknowledge")
        return acked, len(self.hidden) - acked

    def hidden_text(self) -> str:
        """The foot line about acknowledged and snoozed items; empty when there are none.
        Never silent: an acknowledged item is counted here and reachable with the option."""
        acked, snoozed = self.hidden_counts()
        if not acked and not snoozed:
            return ""
        parts = [f"{acked} acknowledged"] if acked else []
        parts += [f"{snoozed} snoozed"] if snoozed else []
        noun = "item" if acked + snoozed == 1 else "items"
        if self.show_acknowledged:
            return f"{' and '.join(parts)} {noun} listed, marked as such (not counted as active)."
        return f"{' and '.join(parts)} {noun} not listed (devicelog due --show-acknowledged, or h on the due screen, lists them)."

    @property
    def within_days(self) -> int | None:
        return None if self.until is None else (self.until - self.as_of).days

    @property
    def items(self) -> list[DueItem]:
        return [e.item for e in self.entries]

    def suppressed_by_reason(self) -> list[tuple[str, int]]:
        """(reason, how many), most frequent first."""
        counts = Counter(s.reason for s in self.suppressed)
        return sorted(counts.items(), key=lambda rc: (-rc[1], rc[0]))

    def suppressed_by_kind_of_reason(self) -> list[tuple[str, int]]:
        """``suppressed_by_reason`` with the dates taken out of dated reasons ("patient
        deceased on 2025-08-25" counts as "patient deceased on various dates" when the
        dates differ), so a large clinic's foot line stays one line; the JSON keeps
        every reason as it is (``suppressed_by_reason``)."""
        dated: dict[str, set[str]] = {}
        counts: Counter = Counter()
        for reason, count in self.suppressed_by_reason():
            m = _DATED_REASON.fullmatch(reason)
            kind = m.group(1) if m else reason
            counts[kind] += count
            if m:
                dated.setdefault(kind, set()).add(m.group(2))
        shown = {
            kind: (f"{kind} on various dates" if len(dated[kind]) > 1 else f"{kind} on {next(iter(dated[kind]))}")
            if kind in dated
            else kind
            for kind in counts
        }
        return sorted(((shown[k], c) for k, c in counts.items()), key=lambda rc: (-rc[1], rc[0]))

    def range_text(self) -> str:
        """The range in words, e.g. "overdue, and due 2026-11-23 to 2026-12-23"."""
        if self.until is None:
            return f"overdue, and due from {self.as_of.isoformat()} on"
        return f"overdue, and due {self.as_of.isoformat()} to {self.until.isoformat()}"

    def empty_text(self) -> str:
        """What an empty list says instead of a blank page (issue 6.6)."""
        if self.until is None:
            return f"Nothing overdue, and nothing due from {self.as_of.isoformat()} on."
        return f"Nothing overdue, and nothing due between {self.as_of.isoformat()} and {self.until.isoformat()}."

    def suppressed_text(self) -> str:
        """The foot line about suppressed elective items; empty when none were."""
        if not self.suppressed:
            return ""
        n = len(self.suppressed)
        reasons = "; ".join(f"{count} × {reason}" for reason, count in self.suppressed_by_kind_of_reason())
        noun = "item" if n == 1 else "items"
        return f"{n} {noun} suppressed by goals of care (rule 24), not listed: {reasons}."

    def kinds_text(self) -> str:
        return "all device kinds" if not self.kinds else ", ".join(k.label for k in self.kinds)


@dataclass(frozen=True, slots=True)
class DeviceForecast:
    """A device's forecast with the history it came from (for naming the device in notes)."""

    history: DeviceHistory
    forecast: Forecast


class ForecastSource(Protocol):
    """Where ``due_list`` gets each device's forecast from.

    ``device_ids`` (keyword, optional: a source may leave it out when it is None)
    restricts the forecasts to those devices.
    """

    def forecasts(
        self, session: Session, *, settings: Settings, kinds: Sequence[DeviceKind]
    ) -> Iterable[DeviceForecast]: ...


@dataclass(frozen=True)
class ComputedForecasts:
    """Load every device's history and run the forecast on it (no cache): the reference."""

    def forecasts(
        self,
        session: Session,
        *,
        settings: Settings,
        kinds: Sequence[DeviceKind],
        device_ids: Collection[int] | None = None,
    ) -> Iterator[DeviceForecast]:
        from devicelog.clinic.forecast import forecast_device
        from devicelog.store import queries

        session = forecasts._orm_session(session)
        drugs = queries.drugs_by_code(session)
        wanted = set(kinds)
        ids = None if device_ids is None else sorted(set(device_ids))
        if ids == []:
            return
        for history in queries.load_histories(session, ids):
            if wanted and history.device.model.kind not in wanted:
                continue
            yield DeviceForecast(history, forecast_device(history, settings, drugs))


@dataclass(frozen=True)
class StoredForecasts:
    """Read the maintained next-due table (``devicelog.store.forecasts``) as it is.

    ``due_list`` picks it by itself when the table is fresh for the caller's settings;
    passing it explicitly reads the table even when it is not (tests compare it with
    ``ComputedForecasts``)."""

    def due_list(
        self,
        session,
        *,
        as_of: dt.date,
        settings: Settings,
        until: dt.date | None,
        kinds: tuple[DeviceKind, ...],
        device_ids: Collection[int] | None,
    ) -> DueList:
        kind_values = [k.value for k in kinds]
        lead = as_of + dt.timedelta(days=settings.lead_time_days)
        entries: list[DueEntry] = []
        suppressed: list[SuppressedItem] = []
        kinds_by_value = _KINDS
        # One object per distinct value: the driver gives a new string or date for every
        # row, and a whole list at 100,000 patients (206,000 items) held ~90 MB of copies
        # of the same MRNs, names, serials, models, labels, rules and dates.
        same: dict = {}
        one = same.setdefault
        as_date = functools.lru_cache(maxsize=None)(forecasts.as_date)
        for r in forecasts.read_range(session, until=until, kinds=kind_values, device_ids=device_ids):
            item = DueItem(
                r[0], one(r[1], r[1]), one(r[2], r[2]), r[3], one(r[4], r[4]), one(r[5], r[5]), kinds_by_value[r[6]],
                one(r[7], r[7]), one(r[8], r[8]), as_date(r[9]), as_date(r[10]), one(r[11], r[11]), one(r[12], r[12]),
                *r[13:16],
            )
            if r[16] is None:
                due_on = item.due_on
                entries.append(DueEntry(item, "overdue" if due_on < as_of else ("due" if due_on <= lead else "upcoming")))
            else:
                suppressed.append(SuppressedItem(item, r[16]))
        entries.sort(key=_entry_key)
        return self._list(session, as_of, settings, until, kinds, device_ids, entries, suppressed)

    @staticmethod
    def _list(session, as_of, settings, until, kinds, device_ids, entries, suppressed) -> DueList:
        notes = [
            DeviceNote(r[0], r[1], r[2], r[3], ClinicalWarning(*r[4:]))
            for r in forecasts.read_notes(session, kinds=[k.value for k in kinds], device_ids=device_ids)
        ]
        return _assemble(as_of, until, kinds, settings, entries, suppressed, notes)


def _assemble(as_of, until, kinds, settings, entries, suppressed, notes) -> DueList:
    """The ``DueList`` of entries already in order; the suppressed items are sorted here."""
    suppressed.sort(key=_suppressed_key)
    return DueList(
        as_of=as_of,
        until=until,
        kinds=kinds,
        entries=tuple(entries),
        suppressed=tuple(suppressed),
        notes=tuple(notes),
        clinic_name=settings.clinic_name,
    )


_KINDS = {k.value: k for k in DeviceKind}
_DATED_REASON = re.compile(r"(.*\S) on (\d{4}-\d{2}-\d{2})")


def _item(row) -> DueItem:
    """A ``DueItem`` from a row of ``forecasts.ITEM_COLUMNS`` (and maybe more after),
    its dates ISO text or dates."""
    as_date = forecasts.as_date
    return DueItem(*row[:6], _KINDS[row[6]], row[7], row[8], as_date(row[9]), as_date(row[10]), *row[11:16])


def _entry_key(e: DueEntry) -> tuple:
    return sort_key(e.item, e.status)


def _suppressed_key(s: SuppressedItem) -> tuple:
    return (s.item.due_on, s.item.patient_mrn, s.item.device_serial, s.item.code)


def _use_table(session, settings: Settings, source) -> bool:
    if isinstance(source, StoredForecasts):
        return True
    return source is None and forecasts.is_fresh(session, settings)


def due_list(
    session: Session,
    *,
    as_of: dt.date,
    settings: Settings,
    within_days: int | None = None,
    kinds: Sequence[DeviceKind] = (),
    device_ids: Collection[int] | None = None,
    source: ForecastSource | None = None,
    show_acknowledged: bool = False,
) -> DueList:
    """Everything overdue, and due from ``as_of`` to ``as_of + within_days`` (or all ahead).

    ``kinds`` keeps only devices of those kinds (empty: all); ``device_ids`` only those
    devices (None: all).  Suppressed items and forecast notes are kept with the list,
    in the same range, so a report can say so.  Items an acknowledgement or snooze in
    force hides (issue 14.2) are left out, counted in ``hidden``; with
    ``show_acknowledged`` they stay in the list, marked (``DueEntry.ack``).
    """
    dl = _due_list(session, as_of=as_of, settings=settings, within_days=within_days, kinds=kinds,
                   device_ids=device_ids, source=source)
    return apply_acks(session, dl, device_ids=device_ids, show_acknowledged=show_acknowledged)


def apply_acks(session, dl: DueList, *, device_ids: Collection[int] | None = None, show_acknowledged: bool = False) -> DueList:
    """``dl`` with the items hidden by an acknowledgement or snooze in force taken out
    (or marked).  One query for the records in force (``store.acks``), then a key lookup
    for the items of the devices that have one: nothing more when none is in force."""
    from dataclasses import replace

    from devicelog.store import acks

    found = acks.in_force(session, device_ids=device_ids)
    if not found:
        return replace(dl, show_acknowledged=show_acknowledged)
    devices = {a.device_id for a in found.values()}
    entries: list[DueEntry] = []
    hidden: list[DueEntry] = []
    for e in dl.entries:
        if e.item.device_id in devices:
            record = found.get(e.item.key)
            if hides(record, e.item, dl.as_of):
                e = DueEntry(e.item, e.status, record)
                hidden.append(e)
                if not show_acknowledged:
                    continue
        entries.append(e)
    return replace(dl, entries=tuple(entries), hidden=tuple(hidden), show_acknowledged=show_acknowledged)


def _due_list(session, *, as_of, settings, within_days, kinds, device_ids, source) -> DueList:
    if within_days is not None and not 0 <= within_days <= MAX_WITHIN_DAYS:
        raise ValueError(f"within_days = {within_days}: must be 0 to {MAX_WITHIN_DAYS} days")
    until = None if within_days is None else as_of + dt.timedelta(days=within_days)
    kinds = tuple(dict.fromkeys(kinds or ()))
    if _use_table(session, settings, source):
        return StoredForecasts().due_list(
            session, as_of=as_of, settings=settings, until=until, kinds=kinds, device_ids=device_ids
        )
    source = source or ComputedForecasts()
    entries: list[DueEntry] = []
    suppressed: list[SuppressedItem] = []
    notes: list[DeviceNote] = []
    found_all = (
        source.forecasts(session, settings=settings, kinds=kinds)
        if device_ids is None
        else source.forecasts(session, settings=settings, kinds=kinds, device_ids=device_ids)
    )
    for found in found_all:
        fc = found.forecast
        entries += [DueEntry(i, status(i, as_of, settings)) for i in fc.items if _in_range(i, until)]
        suppressed += [s for s in fc.suppressed if _in_range(s.item, until)]
        if fc.warnings:
            p, d = found.history.patient, found.history.device
            notes += [DeviceNote(p.name, p.mrn, d.serial, d.model.label, w) for w in fc.warnings]
    entries.sort(key=_entry_key)
    return _assemble(as_of, until, kinds, settings, entries, suppressed, notes)


def _in_range(item: DueItem, until: dt.date | None) -> bool:
    return until is None or item.due_on <= until


def urgency_key(item: DueItem, item_status: Status) -> tuple:
    """The order of a device's most urgent item (the TUI's rule): overdue first; among
    overdue or due items a critical one before an earlier routine one; then the earliest."""
    severity = SEVERITY_ORDER[item.severity] if item_status != "upcoming" else 0
    return (STATUS_ORDER[item_status], severity, item.due_on)


def most_urgent(
    session: Session, *, device_ids: Collection[int], as_of: dt.date, settings: Settings, source: ForecastSource | None = None
) -> dict[int, tuple[DueItem, Status]]:
    """Each device's most urgent item with its status (devices with no item are left out).

    Ties keep the due list's order (``sort_key``)."""
    ids = set(device_ids)
    if not ids:
        return {}
    dl = due_list(session, as_of=as_of, settings=settings, device_ids=ids, source=source)
    found: dict[int, tuple[DueItem, Status]] = {}
    best: dict[int, tuple] = {}
    for e in dl.entries:  # already in sort_key order, so the first of equals wins
        key = urgency_key(e.item, e.status)
        d = e.item.device_id
        if d not in best or key < best[d]:
            best[d] = key
            found[d] = (e.item, e.status)
    return found


def warnings_key(item: DueItem, item_status: Status) -> tuple:
    """Critical items lead the warnings; then the due list's order."""
    return (item.severity != "critical", *sort_key(item, item_status))


def clinic_warnings(
    session: Session, *, as_of: dt.date, settings: Settings, limit: int = 200, source: ForecastSource | None = None
) -> tuple[list[tuple[DueItem, Status]], int]:
    """Items nobody may miss: every overdue item and every critical one (whatever its
    date), critical first, then in the due list's order; at most ``limit``, and how many
    there are in all (so a screen can say "and 312 more")."""
    limit = max(0, limit)
    if _use_table(session, settings, source):
        hidden = hidden_warnings(session, as_of=as_of, settings=settings, source=source)
        lead = as_of + dt.timedelta(days=settings.lead_time_days)
        found, total = forecasts.read_warnings(session, as_of=as_of, limit=limit + len(hidden))
        rows = [
            (item, "overdue" if item.due_on < as_of else ("due" if item.due_on <= lead else "upcoming"))
            for item in map(_item, found)
        ]
        rows = [r for r in rows if r[0].key not in hidden]
        total -= len(hidden)
    else:
        dl = due_list(session, as_of=as_of, settings=settings, source=source)
        rows = [(e.item, e.status) for e in dl.entries if e.status == "overdue" or e.item.severity == "critical"]
        total = len(rows)
    rows.sort(key=lambda r: warnings_key(*r))
    return rows[:limit], total


def hidden_warnings(
    session: Session, *, as_of: dt.date, settings: Settings, source: ForecastSource | None = None
) -> dict[str, tuple[DueItem, Ack]]:
    """The items ``clinic_warnings`` would show (overdue or critical) that an
    acknowledgement or snooze in force hides, by key: not counted as active, but a
    screen says how many there are (issue 14.2)."""
    from devicelog.store import acks

    found = acks.in_force(session)
    if not found:
        return {}
    devices = {a.device_id for a in found.values()}
    dl = _due_list(session, as_of=as_of, settings=settings, within_days=None, kinds=(), device_ids=devices, source=source)
    return {
        e.item.key: (e.item, found[e.item.key])
        for e in dl.entries
        if (e.status == "overdue" or e.item.severity == "critical") and hides(found.get(e.item.key), e.item, as_of)
    }


def device_forecast(session: Session, *, device_id: int, settings: Settings, source: ForecastSource | None = None) -> Forecast:
    """One device's forecast: its items, what rule 24 suppressed, and its notes
    (an empty ``Forecast`` for an unknown device)."""
    if _use_table(session, settings, source):
        rows, notes = forecasts.read_device(session, device_id)
        return Forecast(
            items=tuple(_item(r) for r in rows if r[-1] is None),
            suppressed=tuple(SuppressedItem(_item(r), r[-1]) for r in rows if r[-1] is not None),
            warnings=tuple(ClinicalWarning(*n) for n in notes),
        )
    found = list(ComputedForecasts().forecasts(session, settings=settings, kinds=(), device_ids=[device_id]))
    return found[0].forecast if found else Forecast()


def load_due_list(
    engine,
    *,
    as_of: dt.date,
    settings: Settings,
    within_days: int | None = None,
    kinds: Sequence[DeviceKind] = (),
) -> DueList:
    """``due_list`` in its own read transaction (for callers holding an engine)."""
    from devicelog.store.db import read_session

    with read_session(engine) as session:
        return due_list(session, as_of=as_of, settings=settings, within_days=within_days, kinds=kinds)


def with_entries(dl: DueList, entries: Iterable[DueEntry], **changes) -> DueList:
    """A copy of ``dl`` with other entries (and other fields changed)."""
    from dataclasses import replace

    return replace(dl, entries=tuple(entries), **changes)


__all__ = [
    "ComputedForecasts",
    "StoredForecasts",
    "DeviceForecast",
    "DeviceNote",
    "DueEntry",
    "DueList",
    "ForecastSource",
    "KIND_ALIASES",
    "clinic_warnings",
    "device_forecast",
    "due_list",
    "load_due_list",
    "most_urgent",
    "parse_kind",
]
