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
    from devicelog.store.db import read_session

    with read_session(engine) as session:
        return queries.catalogue(session)


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
    from sqlmodel import select

    from devicelog.store import due, queries, tables
    from devicelog.store.db import read_session

    models = {m.code: m for m in catalogue.device_models}
    with read_session(engine) as session:
        patients = queries.search_patients(session, text, limit=limit)
        if cancelled():
            return None
        ids = [p.id for p in patients]
        rows = []
        if ids:
            # One query for every found patient's devices (not one per patient).
            rows = list(session.exec(select(tables.Device).where(tables.Device.patient_id.in_(ids))).all())
        by_patient: dict[int, list[DeviceInfo]] = {}
        for row in rows:
            by_patient.setdefault(row.patient_id, []).append(queries.to_device(row, models[row.model_code]))
        device_ids = [r.id for r in rows]
        if cancelled():
            return None
        urgent = due.most_urgent(session, device_ids=device_ids, as_of=as_of, settings=settings) if device_ids else {}
    hits = tuple(
        PatientHit(
            queries.to_patient(p),
            tuple(sorted(by_patient.get(p.id, []), key=lambda d: (not d.in_service, d.implanted_on, d.id))),
        )
        for p in patients
    )
    return SearchResult(text=text, hits=hits, urgent=dict(urgent), limit=limit)


def most_urgent(engine: Engine, device_ids: Collection[int], *, as_of: dt.date, settings: Settings) -> dict[int, Row]:
    """The most urgent item of each of these devices (devices with nothing due are left out)."""
    from devicelog.store import due
    from devicelog.store.db import read_session

    if not device_ids:
        return {}
    with read_session(engine) as session:
        return dict(due.most_urgent(session, device_ids=list(device_ids), as_of=as_of, settings=settings))


# ----------------------------------------------------------------------------- warnings


@dataclass(frozen=True)
class Warnings:
    """The first overdue and critical items (critical first), and how many there are."""

    rows: tuple[Row, ...]
    total: int

    @property
    def complete(self) -> bool:
        return self.total <= len(self.rows)


def opening_warnings(engine: Engine, *, as_of: dt.date, settings: Settings, limit: int = WARNINGS_LIMIT) -> Warnings:
    from devicelog.store import due
    from devicelog.store.db import read_session

    with read_session(engine) as session:
        rows, total = due.clinic_warnings(session, as_of=as_of, settings=settings, limit=limit)
    return Warnings(rows=tuple(rows), total=total)


# ----------------------------------------------------------------------------- one device


@dataclass(frozen=True)
class DeviceView:
    """One device as its screen shows it: the history (effective events), the forecast,
    and every entry row (originals, amendments and voids) so the original stays visible."""

    history: DeviceHistory
    forecast: Forecast
    entries: tuple[Event, ...] = ()

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
    return DeviceView(history=history, forecast=forecast, entries=tuple(entries))


# ----------------------------------------------------------------------------- due list


def due_view(
    engine: Engine,
    *,
    as_of: dt.date,
    settings: Settings,
    within_days: int | None,
    kinds: Sequence[DeviceKind] = (),
) -> DueList:
    """The due list with its suppressed items and forecast notes (``store.due.due_list``)."""
    from devicelog.store import due
    from devicelog.store.db import read_session

    with read_session(engine) as session:
        return due.due_list(session, as_of=as_of, settings=settings, within_days=within_days, kinds=tuple(kinds or ()))
