"""Issue 7: a writer killed (SIGKILL) in the middle of a multi-row write leaves all or nothing.

A forked child writes batches (a patient, a device and many events in one
transaction), telling the parent over a pipe when a batch starts and when it has been
committed; the parent kills it at a random moment, 20 times over (seeded, so a failure
can be replayed).  Afterwards the file passes SQLite's integrity check, the audit chain
verifies, every batch reported done is complete and every other batch is either
complete (killed between commit and report) or absent.

Two writers: the services in one ``write_session`` (always), and the real importer
(``devicelog.transfer.import_text``) when it is present.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import random
import signal
import time
import sqlite3

import pytest

from devicelog.store import audit
from devicelog.store.db import make_engine, write_session
from devicelog.store.schema import prepare
from tests.conftest import requires_sqlite
from tests.safety_data import TODAY

pytestmark = requires_sqlite

KILLS = 20
EVENTS_PER_BATCH = 60


def _services_batch(engine, tag: str) -> None:
    from devicelog import services
    from devicelog.clinic.records import DeviceIn, EventIn, PatientIn, WoundCheckData

    with write_session(engine) as s:
        services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn=tag, name="Crash Test", birth_date=dt.date(1960, 1, 1)), author="w")
        services.add_device(
            session=s,
            device=DeviceIn(patient_mrn=tag, model="medtronic-intellis", serial=tag, implanted_on=dt.date(2025, 1, 1)),
            author="w",
            today=TODAY,
        )
        for i in range(EVENTS_PER_BATCH):
            services.record_event(
                session=s,
                event=EventIn(device_serial=tag, occurred_on=dt.date(2025, 2, 1) + dt.timedelta(days=i), author="w", data=WoundCheckData(site=f"{i}")),
                today=TODAY,
            )


def _import_batch(engine, tag: str) -> None:
    from devicelog.transfer import import_text

    document = {
        "format": "devicelog",
        "version": 1,
        "patients": [{"mrn": tag, "name": "Crash Test", "birth_date": "1960-01-01"}],
        "devices": [{"patient_mrn": tag, "model": "medtronic-intellis", "serial": tag, "implanted_on": "2025-01-01"}],
        "events": [
            {
                "device_serial": tag,
                "occurred_on": (dt.date(2025, 2, 1) + dt.timedelta(days=i)).isoformat(),
                "author": "w",
                "data": {"kind": "wound_check", "site": f"{i}"},
            }
            for i in range(EVENTS_PER_BATCH)
        ],
    }
    import_text(engine, json.dumps(document), author="w", today=TODAY)


WRITERS = {"services": _services_batch, "import": _import_batch}


def _child(path: str, writer: str, run: int, pipe) -> None:
    engine = make_engine(path)
    prepare(engine)
    for batch in range(10_000):
        tag = f"C{run:02d}-{batch:04d}"
        pipe.send(("start", tag))
        WRITERS[writer](engine, tag)
        pipe.send(("ok", tag))


@pytest.mark.parametrize("writer", ["services", "import"])
def test_sigkill_mid_write_leaves_all_or_nothing(tmp_path, writer):
    if writer == "import":
        pytest.importorskip("devicelog.transfer")
    path = str(tmp_path / "clinic.db")
    engine = make_engine(path)
    prepare(engine)
    engine.dispose()
    rng = random.Random(7)
    ctx = multiprocessing.get_context("fork")
    started, reported = set(), set()
    for run in range(KILLS):
        ours, theirs = ctx.Pipe()
        child = ctx.Process(target=_child, args=(path, writer, run, theirs))
        child.start()
        assert ours.poll(30), "the writer did not start"
        # Kill after a random number of messages plus a random delay inside the next batch.
        for _ in range(rng.randrange(0, 4)):
            if ours.poll(10):
                _record(ours.recv(), started, reported)
        time.sleep(rng.uniform(0.0, 0.2))
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        assert child.exitcode == -signal.SIGKILL
        while ours.poll(0):
            _record(ours.recv(), started, reported)
        ours.close()

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    counts = dict(
        conn.execute(
            "SELECT d.serial, count(e.id) FROM device d LEFT JOIN event e ON e.device_id = d.id GROUP BY d.serial"
        ).fetchall()
    )
    patients = {m for (m,) in conn.execute("SELECT mrn FROM patient")}
    conn.close()

    assert reported, "no batch ever completed: the test proves nothing"
    assert started - reported, "no batch was ever interrupted: the test proves nothing"
    for tag in reported:
        assert counts.get(tag) == EVENTS_PER_BATCH and tag in patients, tag
    for tag in started - reported:  # interrupted: nothing, or everything if killed after the commit
        assert counts.get(tag) in (None, EVENTS_PER_BATCH), tag
        assert (tag in patients) == (tag in counts), tag
    assert set(counts) <= started and all(n == EVENTS_PER_BATCH for n in counts.values())

    engine = make_engine(path)
    report = audit.verify(engine)
    engine.dispose()
    assert report.problems == []


def _record(message, started: set, reported: set) -> None:
    what, tag = message
    (started if what == "start" else reported).add(tag)
