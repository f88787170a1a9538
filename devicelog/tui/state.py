"""What the screens show, read from the store and the forecast (no textual here).

The app loads a ``ClinicState`` in a worker thread at start and refreshes the devices a
saved entry touched.  Each device's forecast depends only on its record (see
``devicelog.clinic.forecast``), so it is computed once per load and the status of its
items (overdue, due, upcoming) is asked for with the app's ``today``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable

from sqlalchemy import Engine

from devicelog.clinic.catalogue import Catalogue
from devicelog.clinic.due import DueItem, Forecast, SEVERITY_ORDER, Status, sort_key, status
from devicelog.clinic.history import DeviceHistory, PatientInfo
from devicelog.clinic.records import DeviceKind
from devicelog.settings import Settings
from devicelog.store import queries
from devicelog.store.db import read_session

Row = tuple[DueItem, Status]


@dataclass
class ClinicState:
    catalogue: Catalogue
    histories: dict[int, DeviceHistory] = field(default_factory=dict)
    forecasts: dict[int, Forecast] = field(default_factory=dict)

    def items(self, device_id: int, as_of: dt.date, settings: Settings) -> list[Row]:
        """The device's due items with their status, most urgent first."""
        forecast = self.forecasts.get(device_id)
        if forecast is None:
            return []
        rows = [(item, status(item, as_of, settings)) for item in forecast.items]
        return sorted(rows, key=lambda r: sort_key(r[0], r[1]))

    def most_urgent(self, device_id: int, as_of: dt.date, settings: Settings) -> Row | None:
        rows = self.items(device_id, as_of, settings)
        if not rows:
            return None
        # Overdue first, then a critical item before an earlier routine one.
        return min(rows, key=lambda r: (_status_rank(r[1]), SEVERITY_ORDER[r[0].severity] if r[1] != "upcoming" else 0, r[0].due_on))

    def devices_of(self, patient_id: int) -> list[DeviceHistory]:
        return sorted(
            (h for h in self.histories.values() if h.patient.id == patient_id),
            key=lambda h: (not h.device.in_service, h.device.implanted_on, h.device.id),
        )

    def due(
        self,
        as_of: dt.date,
        settings: Settings,
        within_days: int | None = None,
        kinds: Iterable[DeviceKind] | None = None,
    ) -> list[Row]:
        """The clinic's due list: the forecast's ``due_items`` over the loaded histories."""
        from devicelog.clinic.forecast import due_items

        return due_items(
            self.histories.values(), as_of, settings, self.catalogue, within_days=within_days, kinds=kinds
        )

    def warnings(self, as_of: dt.date, settings: Settings) -> list[Row]:
        """Items nobody may miss: every overdue item, and every critical one."""
        return [r for r in self.due(as_of, settings) if r[1] == "overdue" or r[0].severity == "critical"]

    def patient(self, patient_id: int) -> PatientInfo | None:
        for h in self.histories.values():
            if h.patient.id == patient_id:
                return h.patient
        return None


def _status_rank(s: str) -> int:
    return {"overdue": 0, "due": 1, "upcoming": 2}[s]


def _forecast(history: DeviceHistory, settings: Settings, catalogue: Catalogue) -> Forecast:
    from devicelog.clinic.forecast import forecast_device

    return forecast_device(history, settings, catalogue)


def load_state(engine: Engine, settings: Settings) -> ClinicState:
    """Every device's history and forecast."""
    with read_session(engine) as session:
        catalogue = queries.catalogue(session)
        histories = {h.device.id: h for h in queries.load_histories(session)}
    forecasts = {i: _forecast(h, settings, catalogue) for i, h in histories.items()}
    return ClinicState(catalogue=catalogue, histories=histories, forecasts=forecasts)


def reload_devices(state: ClinicState, engine: Engine, settings: Settings, device_ids: Iterable[int]) -> ClinicState:
    """A new state with these devices (and their patients' other devices) read again."""
    ids = set(device_ids)
    with read_session(engine) as session:
        fresh = {h.device.id: h for h in queries.load_histories(session, ids)}
        patient_ids = {h.patient.id for h in fresh.values()}
        if patient_ids:
            # A patient's details are shared by their devices; read the siblings too.
            siblings = [d.id for pid in patient_ids for d in queries.devices_of_patient(session, pid) if d.id not in fresh]
            fresh.update({h.device.id: h for h in queries.load_histories(session, siblings)})
    histories = dict(state.histories)
    forecasts = dict(state.forecasts)
    for device_id, history in fresh.items():
        histories[device_id] = history
        forecasts[device_id] = _forecast(history, settings, state.catalogue)
    return ClinicState(catalogue=state.catalogue, histories=histories, forecasts=forecasts)


@dataclass(frozen=True)
class PatientHit:
    patient: PatientInfo
    device_ids: tuple[int, ...]


def search(engine: Engine, text: str, limit: int = 50) -> list[PatientHit]:
    """Patients whose MRN, name or a device serial contains ``text``."""
    with read_session(engine) as session:
        rows = queries.search_patients(session, text, limit=limit)
        hits = []
        for row in rows:
            devices = queries.devices_of_patient(session, row.id)
            hits.append(PatientHit(queries.to_patient(row), tuple(d.id for d in devices)))
    return hits
