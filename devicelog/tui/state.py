"""What the screens show, read from the store for the rows on screen (no textual here).

Nothing here reads the whole clinic: every function asks the store for what one
screen shows, so a 100,000-patient registry opens as fast as a small one.

- ``search``: the patients a search finds (``queries.search_patients``, at most 50),
  their devices, and each device's most urgent item (``store.due.most_urgent``).
- ``opening_warnings``: the overdue and critical items shown on opening
  (``store.due.clinic_warnings``): the first rows and how many there are in all.
- ``device_view``: one device's history, forecast and entry rows (amendments and
  voids included), read together.
- ``due_view``: the due list of the due screen (``store.due.due_list``).

Each function opens its own read session, so the app calls them from worker threads.

The first screen's reads (``load_catalogue``, ``search``, ``most_urgent``,
``opening_warnings``) use a Core ``Connection`` and ``store.queries``' Core functions,
never the ORM: ``devicelog tui`` paints its first screen without importing
sqlalchemy.orm, sqlmodel and ``store.tables`` (~110 ms of CPU at start, when every
millisecond of Python delays the first frame).  ``warm_up`` imports them after it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Collection, Sequence

from devicelog.clinic.catalogue import Catalogue
from devicelog.clinic.due import DueItem, Forecast, Status, sort_key
from devicelog.clinic.history import DeviceHistory, DeviceInfo, PatientInfo
from devicelog.clinic.records import DeviceKind, Event
from devicelog.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from devicelog.store.due import DueList

Row = tuple[DueItem, Status]

SEARCH_LIMIT = 50
WARNINGS_LIMIT = 200


def load_catalogue(engine: Engine) -> Catalogue:
    """The device models and drugs the clinic knows (a few dozen rows)."""
    from devicelog.store import queries

    with engine.connect() as conn:
        return queries.catalogue(conn)


# ----------------------------------------------------------------------------- search


@dataclass(frozen=True)
class PatientHit:
    """A patient a search found, with their devices in the order the screen lists them."""

    patient: PatientInfo
    devices: tuple[DeviceInfo, ...] = ()


@dataclass(frozen=True)
class SearchResult:
    text: str
    hits: tuple[PatientHit, ...]
    urgent: dict[int, Row] = field(default_factory=dict)  # device id -> most urgent item
    limit: int = SEARCH_LIMIT

    @property
    def device_ids(self) -> list[int]:
        return [d.id for h in self.hits for d in h.devices]


def search(
    engine: Engine,
    text: str,
    *,
    as_of: dt.date,
    settings: Settings,
    catalogue: Catalogue,
    limit: int = SEARCH_LIMIT,
    cancelled: Callable[[], bool] = lambda: False,
) -> SearchResult | None:
    """Patients whose MRN, name or a device serial contains ``text`` (at most ``limit``),
    their devices, and each device's most urgent item on ``as_of``: three queries.

    ``cancelled`` is asked between the queries: when it says yes (a newer keystroke),
    the search stops and returns None."""
    from devicelog.store import due, queries

    models = {m.code: m for m in catalogue.device_models}
    with engine.connect() as conn:  # one read transaction; Core only (see the module's docstring)
        ids = queries.search_patient_ids(conn, text, limit=limit)
        if cancelled():
            return None
        patients = queries.patients_by_id(conn, ids)
        # One query for every found patient's devices (not one per patient).
        rows = queries.devices_of_patients(conn, ids, models)
        by_patient: dict[int, list[DeviceInfo]] = {}
        for patient_id, device in rows:
            by_patient.setdefault(patient_id, []).append(device)
        device_ids = [d.id for _, d in rows]
        if cancelled():
            return None
        urgent = due.most_urgent(conn, device_ids=device_ids, as_of=as_of, settings=settings) if device_ids else {}
    hits = tuple(
        PatientHit(p, tuple(sorted(by_patient.get(p.id, []), key=lambda d: (not d.in_service, d.implanted_on, d.id))))
        for p in patients
    )
    return SearchResult(text=text, hits=hits, urgent=dict(urgent), limit=limit)


def most_urgent(engine: Engine, device_ids: Collection[int], *, as_of: dt.date, settings: Settings) -> dict[int, Row]:
    """The most urgent item of each of these devices (devices with nothing due are left out)."""
    from devicelog.store import due

    if not device_ids:
        return {}
    with engine.connect() as conn:
        return dict(due.most_urgent(conn, device_ids=list(device_ids), as_of=as_of, settings=settings))


# ----------------------------------------------------------------------------- warnings


@dataclass(frozen=True)
class Warnings:
    """The first overdue and critical items (critical first), and how many there are."""

    rows: tuple[Row, ...]
    total: int
    #: Overdue or critical items an acknowledgement or snooze hides: not counted in
    #: ``total`` (not active), but said on the banner so none is lost (issue 14.2).
    acknowledged: int = 0

    @property
    def complete(self) -> bool:
        return self.total <= len(self.rows)


def opening_warnings(engine: Engine, *, as_of: dt.date, settings: Settings, limit: int = WARNINGS_LIMIT) -> Warnings:
    from devicelog.store import due

    with engine.connect() as conn:
        rows, total = due.clinic_warnings(conn, as_of=as_of, settings=settings, limit=limit)
        acknowledged = len(due.hidden_warnings(conn, as_of=as_of, settings=settings))
    return Warnings(rows=tuple(rows), total=total, acknowledged=acknowledged)


# ----------------------------------------------------------------------------- one device


@dataclass(frozen=True)
class DeviceView:
    """One device as its screen shows it: the history (effective events), the forecast,
    and every entry row (originals, amendments and voids) so the original stays visible."""

    history: DeviceHistory
    forecast: Forecast
    entries: tuple[Event, ...] = ()
    #: Item key -> the acknowledgement or snooze in force (issue 14.2; ``clinic.acks.hides`` says if it applies).
    acks: dict = field(default_factory=dict)

    def items(self, as_of: dt.date, settings: Settings) -> list[Row]:
        """The device's due items with their status, in the due list's order."""
        from devicelog.clinic.due import status

        rows = [(item, status(item, as_of, settings)) for item in self.forecast.items]
        return sorted(rows, key=lambda r: sort_key(*r))


def device_view(engine: Engine, device_id: int, *, settings: Settings) -> DeviceView | None:
    """This one device's history, forecast and entries in one read (None if unknown)."""
    from devicelog.store import due, queries
    from devicelog.store.db import read_session

    with read_session(engine) as session:
        history = next(queries.load_histories(session, [device_id]), None)
        if history is None:
            return None
        forecast = due.device_forecast(session, device_id=device_id, settings=settings)
        entries = queries.raw_events(session, [device_id]).get(device_id, [])
        from devicelog.store import acks

        in_force = acks.in_force(session, device_ids=[device_id])
    return DeviceView(history=history, forecast=forecast, entries=tuple(entries), acks=in_force)


# ----------------------------------------------------------------------------- due list


def due_view(
    engine: Engine,
    *,
    as_of: dt.date,
    settings: Settings,
    within_days: int | None,
    kinds: Sequence[DeviceKind] = (),
    show_acknowledged: bool = False,
) -> DueList:
    """The due list with its suppressed items and forecast notes (``store.due.due_list``);
    acknowledged and snoozed items counted, and listed with ``show_acknowledged``."""
    from devicelog.store import due
    from devicelog.store.db import read_session

    with read_session(engine) as session:
        return due.due_list(session, as_of=as_of, settings=settings, within_days=within_days, kinds=tuple(kinds or ()),
                            show_acknowledged=show_acknowledged)
