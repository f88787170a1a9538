"""Issue 7: several processes writing at once lose nothing and never see "database is locked"."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import traceback

from sqlalchemy import func
from sqlmodel import select

from devicelog.store import audit, tables
from devicelog.store.db import make_engine, read_session
from devicelog.store.schema import prepare
from tests.conftest import requires_sqlite
from tests.safety_data import TODAY, make_clinic

WRITERS = 4
EVENTS_EACH = 250


def _writer(path: str, n: int, start, results) -> None:
    """One nurse's process: EVENTS_EACH wound checks, one transaction each, as the services do them."""
    from devicelog import services
    from devicelog.clinic.records import EventIn, WoundCheckData
    from devicelog.store.db import write_session

    errors: list[str] = []
    written = 0
    engine = make_engine(path)
    prepare(engine)  # every process opens the database as a command would
    start.wait()
    for i in range(EVENTS_EACH):
        try:
            with write_session(engine) as s:
                services.record_event(
                    session=s,
                    event=EventIn(
                        device_serial="NGP100",
                        occurred_on=dt.date(2026, 1, 1) + dt.timedelta(days=i % 300),
                        author=f"writer{n}",
                        data=WoundCheckData(site=f"w{n}-{i}"),
                    ),
                    today=TODAY,
                )
            written += 1
        except Exception:
            errors.append(traceback.format_exc(limit=3))
    engine.dispose()
    results.put((n, written, errors))


@requires_sqlite
def test_four_processes_writing_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "clinic.db")
    engine = make_engine(path)
    prepare(engine)
    make_clinic(engine)
    before = audit.verify(engine)
    engine.dispose()

    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(WRITERS)
    results = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, n, start, results)) for n in range(WRITERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    all_errors = [e for _, _, errors in outcomes for e in errors]
    assert all_errors == []  # in particular, nobody saw "database is locked"
    assert sorted((n, written) for n, written, _ in outcomes) == [(n, EVENTS_EACH) for n in range(WRITERS)]

    engine = make_engine(path)
    with read_session(engine) as s:
        for n in range(WRITERS):
            sites = s.exec(select(tables.EventRow.data).where(tables.EventRow.author == f"writer{n}")).all()
            assert sorted(d["site"] for d in sites) == sorted(f"w{n}-{i}" for i in range(EVENTS_EACH))
        assert s.exec(select(func.count()).select_from(tables.EventRow)).one() == 5 + WRITERS * EVENTS_EACH
        authors = s.exec(select(tables.AuditEntry.author).order_by(tables.AuditEntry.id)).all()
    # The writers really ran at the same time: their entries interleave.
    switches = sum(1 for a, b in zip(authors, authors[1:]) if a != b and a.startswith("writer"))
    assert switches > WRITERS
    report = audit.verify(engine)
    assert report.problems == []
    assert report.entries == before.entries + WRITERS * EVENTS_EACH
    engine.dispose()
