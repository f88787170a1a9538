"""Reads are one consistent snapshot while others write (issue 19, section 4).

On PostgreSQL, READ COMMITTED gave each statement its own snapshot: during concurrent
writes an export listed devices whose patients it had not read (and could not be
imported again) and verify named rows written between two of its queries as
"inserted outside devicelog".  Both now read one REPEATABLE READ, READ ONLY snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import traceback

from devicelog import services
from devicelog.clinic.records import DeviceIn, EventIn, PatientIn, WoundCheckData
from devicelog.store import audit
from devicelog.store.db import write_session
from devicelog.transfer import export_text
from tests.safety_data import TODAY, make_clinic

ROUNDS = 20


def _writer(engine, stop: threading.Event, errors: list[str]) -> None:
    """A nurse registering patients and their devices and logging wound checks, one
    transaction each, as fast as the database lets her."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            with write_session(engine) as s:
                services.add_patient(session=s, patient=PatientIn(mrn=f"W{n:05d}", name=f"Writer Patient {n}", birth_date=dt.date(1960, 1, 1)), author="rn.w", today=TODAY)
            with write_session(engine) as s:
                services.add_device(
                    session=s,
                    device=DeviceIn(patient_mrn=f"W{n:05d}", model="synchromed-ii-20", serial=f"WSN{n:05d}", implanted_on=dt.date(2025, 1, 5)),
                    author="rn.w",
                    today=TODAY,
                )
            with write_session(engine) as s:
                services.record_event(
                    session=s,
                    event=EventIn(device_serial=f"WSN{n:05d}", occurred_on=dt.date(2025, 1, 15), author="rn.w", data=WoundCheckData(site="pocket")),
                    today=TODAY,
                )
        except Exception:  # noqa: BLE001 - reported by the test
            errors.append(traceback.format_exc(limit=4))
            return


def test_export_and_verify_read_one_snapshot_while_others_write(engine):
    make_clinic(engine)
    stop, errors = threading.Event(), []
    writer = threading.Thread(target=_writer, args=(engine, stop, errors))
    writer.start()
    try:
        for _ in range(ROUNDS):
            report = audit.verify(engine)
            assert report.ok, [str(p) for p in report.problems]
            doc = json.loads(export_text(engine))
            mrns = {p["mrn"] for p in doc["patients"]}
            serials = {d["serial"] for d in doc["devices"]}
            assert {d["patient_mrn"] for d in doc["devices"]} <= mrns
            assert {e["device_serial"] for e in doc["events"]} <= serials
    finally:
        stop.set()
        writer.join()
    assert errors == []
