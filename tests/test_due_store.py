"""Issue 8.2: the maintained next-due table (``devicelog.store.forecasts``).

The stored due list must equal the computed one (``ComputedForecasts``, the
reference) exactly; the table changes in the same transaction as the write that
changes a forecast, and only then; a change of settings makes it stale and the next
open rebuilds it.

Hand-worked dates (clinic of ``tests/test_due_clinic.py``): Ann Lee's SynchroMed II
20 mL NGP100, refilled 2026-11-01 to 20 mL of morphine 10 mg/mL at 2 mg/day →
0.2 mL/day; (20 − 2 mL alarm volume) / 0.2 = 90 days → low-reservoir alarm
2027-01-30; refill due = min(alarm − 7 days margin = 2027-01-23, fill + 90 days
morphine stability = 2027-01-30) = 2027-01-23.  With a 10-day margin: 2027-01-20.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from sqlalchemy import text

from devicelog import demo, services
from devicelog.clinic.records import (
    DeviceKind,
    DrugConcentration,
    EventIn,
    PumpProgram,
    RefillData,
)
from devicelog.services import InputError
from devicelog.settings import Settings
from devicelog.store import audit, forecasts
from devicelog.store.db import make_engine, read_session, write_session
from devicelog.store.due import (
    ComputedForecasts,
    StoredForecasts,
    clinic_warnings,
    device_forecast,
    due_list,
    most_urgent,
)
from devicelog.store.schema import prepare
from tests.conftest import TODAY
from tests.test_due_clinic import build_clinic

D = dt.date
RANGES = (None, 0, 14, 30, 365)
KINDS = ((), (DeviceKind.intrathecal_pump,), (DeviceKind.spinal_cord_stimulator, DeviceKind.peripheral_nerve_stimulator))


def stored_refill_due(engine, serial: str = "NGP100") -> list[dt.date]:
    with engine.connect() as conn:
        return [
            _date(r[0])
            for r in conn.execute(
                text("SELECT due_on FROM due_item WHERE device_serial = :s AND code = 'refill'"), {"s": serial}
            )
        ]


def _date(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def refill(withdrawn: float, added: float = 20.0) -> RefillData:
    return RefillData(
        volume_withdrawn_ml=withdrawn,
        volume_added_ml=added,
        reservoir_volume_after_ml=20.0,
        program=PumpProgram(drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=10)], dose_mg_per_day=2),
    )


def assert_same_lists(engine, settings: Settings, as_of: dt.date = TODAY) -> int:
    """Every range and kind filter, most_urgent, clinic_warnings and device_forecast:
    the table and the computed forecasts agree exactly.  Returns the devices compared."""
    stored, computed = StoredForecasts(), ComputedForecasts()
    with read_session(engine) as s:
        assert forecasts.is_fresh(s, settings)
        for within in RANGES:
            for kinds in KINDS:
                a = due_list(s, as_of=as_of, settings=settings, within_days=within, kinds=kinds, source=stored)
                b = due_list(s, as_of=as_of, settings=settings, within_days=within, kinds=kinds, source=computed)
                assert a == b, (within, kinds)
        ids = [r[0] for r in s.execute(text("SELECT id FROM device ORDER BY id"))]
        some = ids[::3]
        a = due_list(s, as_of=as_of, settings=settings, within_days=30, device_ids=some, source=stored)
        assert a == due_list(s, as_of=as_of, settings=settings, within_days=30, device_ids=some, source=computed)
        assert {e.item.device_id for e in a.entries} <= set(some)
        assert most_urgent(s, device_ids=ids, as_of=as_of, settings=settings, source=stored) == most_urgent(
            s, device_ids=ids, as_of=as_of, settings=settings, source=computed
        )
        for limit in (0, 1, 5, 37, 10_000):  # cut in SQL: in the critical part, the overdue part, or not at all
            assert clinic_warnings(s, as_of=as_of, settings=settings, limit=limit, source=stored) == clinic_warnings(
                s, as_of=as_of, settings=settings, limit=limit, source=computed
            ), limit
        for device_id in ids:
            assert device_forecast(s, device_id=device_id, settings=settings, source=stored) == device_forecast(
                s, device_id=device_id, settings=settings, source=computed
            )
    return len(ids)


# --------------------------------------------------------------------- stored == computed


@pytest.fixture
def clinic(engine):
    build_clinic(engine)
    return engine


def test_hand_built_clinic_stored_equals_computed(clinic):
    assert assert_same_lists(clinic, Settings()) == 5
    with read_session(clinic) as s:
        dl = due_list(s, as_of=TODAY, settings=Settings(), within_days=90)  # picks the table by itself
    items = {(i.device_serial, i.code): i.due_on for i in dl.items}
    assert items[("NGP100", "refill")] == D(2027, 1, 23)
    assert items[("SCS300", "wound_check_day_10")] == D(2026, 11, 23)
    assert items[("PNS500", "pns_lead_removal")] == D(2026, 11, 30)
    assert ("NGP400", "refill") not in items  # explanted
    assert [(s.item.device_serial, s.item.code, s.item.due_on) for s in dl.suppressed] == [
        ("NGP200", "planned_replacement", D(2026, 9, 1))
    ]


def test_demo_clinic_checked_path_stored_equals_computed(engine):
    demo.build(engine, patients=60, seed=1, as_of=TODAY)
    assert assert_same_lists(engine, Settings()) > 60
    with read_session(engine) as s:
        dl = due_list(s, as_of=TODAY, settings=Settings(), within_days=30)
    assert dl.entries and any(e.status == "overdue" for e in dl.entries) and dl.notes


def test_demo_clinic_bulk_path_stored_equals_computed(engine):
    demo.build(engine, patients=300, seed=3, as_of=TODAY, method="bulk")
    assert assert_same_lists(engine, Settings(), as_of=TODAY) > 300
    assert assert_same_lists(engine, Settings(), as_of=TODAY + dt.timedelta(days=45)) > 300


def test_most_urgent_and_warnings_follow_the_tui_rule(clinic):
    with read_session(clinic) as s:
        ids = {r[1]: r[0] for r in s.execute(text("SELECT id, serial FROM device"))}
        urgent = most_urgent(s, device_ids=ids.values(), as_of=TODAY, settings=Settings())
        rows, total = clinic_warnings(s, as_of=TODAY, settings=Settings(), limit=200)
    # SCS300's day-10 wound check falls due today: "due"; the day-30 one is upcoming.
    item, status = urgent[ids["SCS300"]]
    assert (item.code, status) == ("wound_check_day_10", "due")
    # Only overdue or critical items warn; each warning is one of them.
    assert total == len(rows) and all(st == "overdue" or it.severity == "critical" for it, st in rows)
    criticals = [it.severity == "critical" for it, _ in rows]
    assert criticals == sorted(criticals, reverse=True)  # critical ones lead


# --------------------------------------------------------------------- same transaction


def test_a_refill_moves_the_stored_refill_date_in_its_own_transaction(clinic):
    assert stored_refill_due(clinic) == [D(2027, 1, 23)]
    # Refill on 2026-11-20: expected residual after 19 days at 0.2 mL/day = 20 − 3.8 = 16.2 mL.
    # New alarm 2026-11-20 + 90 days = 2027-02-18; refill due − 7 days = 2027-02-11.
    event = EventIn(device_serial="NGP100", occurred_on=D(2026, 11, 20), author="rn", data=refill(16.2))
    with pytest.raises(RuntimeError):
        with write_session(clinic) as s:
            services.record_event(session=s, event=event, today=TODAY)
            inside = [_date(r[0]) for r in s.execute(text("SELECT due_on FROM due_item WHERE device_serial = 'NGP100' AND code = 'refill'"))]
            assert inside == [D(2027, 2, 11)]  # visible inside the transaction …
            raise RuntimeError("the nurse's action fails after the refill was written")
    assert stored_refill_due(clinic) == [D(2027, 1, 23)]  # … and rolled back with it
    with write_session(clinic) as s:
        services.record_event(session=s, event=event, today=TODAY)
    assert stored_refill_due(clinic) == [D(2027, 2, 11)]
    assert_same_lists(clinic, Settings())
    assert audit.verify(clinic).ok  # the table is not audited and verify does not look at it


def test_a_refused_refill_leaves_the_stored_date_unchanged(clinic):
    too_much = EventIn(device_serial="NGP100", occurred_on=D(2026, 11, 20), author="rn", data=refill(16.2, added=25.0))
    with pytest.raises(InputError, match="volume_added_ml"):
        with write_session(clinic) as s:
            services.record_event(session=s, event=too_much, today=TODAY)
    assert stored_refill_due(clinic) == [D(2027, 1, 23)]


def test_amend_void_and_replacement_refresh_the_table(clinic):
    from devicelog.clinic.records import DeviceIn

    with read_session(clinic) as s:
        refill_id = s.execute(
            text("SELECT e.id FROM event e JOIN device d ON d.id = e.device_id WHERE d.serial = 'NGP100' AND e.kind = 'refill'")
        ).scalar()
    # Amended to 4 mg/day: 0.4 mL/day; 18 / 0.4 = 45 days → alarm 2026-12-16; due 2026-12-09.
    amended = refill(2.0).model_copy(
        update={"program": PumpProgram(drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=10)], dose_mg_per_day=4)}
    )
    with write_session(clinic) as s:
        services.amend_event(
            session=s, event_id=refill_id, occurred_on=D(2026, 11, 1), data=amended, reason="dose typed wrong", author="rn", today=TODAY
        )
    assert stored_refill_due(clinic) == [D(2026, 12, 9)]
    with write_session(clinic) as s:
        services.void_event(session=s, event_id=refill_id, reason="wrong patient", author="rn")
    # No fill on record any more: the refill is due from the implant day (2025-01-05).
    assert stored_refill_due(clinic) == [D(2025, 1, 5)]
    assert_same_lists(clinic, Settings())
    with write_session(clinic) as s:
        services.add_device(
            session=s,
            device=DeviceIn(patient_mrn="MRN0001", model="synchromed-ii-40", serial="NGP101", implanted_on=D(2026, 11, 22), replaces_serial="NGP100"),
            author="rn",
            today=TODAY,
        )
    with read_session(clinic) as s:
        codes = {r[0] for r in s.execute(text("SELECT code FROM due_item WHERE device_serial = 'NGP100'"))}
        new = {r[0] for r in s.execute(text("SELECT code FROM due_item WHERE device_serial = 'NGP101'"))}
    assert "planned_replacement" not in codes  # the replaced pump lists no replacement of its own
    assert "wound_check_day_10" in new
    assert_same_lists(clinic, Settings())


def test_import_fills_the_table_for_what_it_wrote(engine, tmp_path):
    from devicelog import transfer

    doc = demo.document(40, 5, TODAY)
    with write_session(engine) as s:
        transfer.import_document(s, doc, author="importer", today=TODAY)
    assert assert_same_lists(engine, Settings()) > 40


# --------------------------------------------------------------------- staleness


def test_changing_the_refill_margin_rebuilds_the_stored_dates_on_the_next_open(clinic):
    assert stored_refill_due(clinic) == [D(2027, 1, 23)]
    wider = Settings(refill_margin_days=10)
    with read_session(clinic) as s:
        assert not forecasts.is_fresh(s, wider)
        # Until it is rebuilt, a reader with the new settings gets them computed on the fly.
        dl = due_list(s, as_of=TODAY, settings=wider, within_days=90)
        assert {(i.device_serial, i.code): i.due_on for i in dl.items}[("NGP100", "refill")] == D(2027, 1, 20)
    prepare(clinic, settings=wider)
    assert stored_refill_due(clinic) == [D(2027, 1, 20)]  # alarm 2027-01-30 − 10 days
    assert_same_lists(clinic, wider)
    prepare(clinic)  # an open without settings keeps the table's own
    assert stored_refill_due(clinic) == [D(2027, 1, 20)]


def test_display_only_settings_do_not_make_the_table_stale(clinic):
    with read_session(clinic) as s:
        assert forecasts.is_fresh(s, Settings(clinic_name="North", lead_time_days=30, page_size="Letter"))


def test_writes_use_the_tables_settings_not_the_callers(clinic):
    prepare(clinic, settings=Settings(refill_margin_days=10))
    event = EventIn(device_serial="NGP100", occurred_on=D(2026, 11, 20), author="rn", data=refill(16.2))
    with write_session(clinic) as s:
        services.record_event(session=s, event=event, today=TODAY, settings=Settings())
    assert stored_refill_due(clinic) == [D(2027, 2, 8)]  # 2027-02-18 − 10: the table stays one forecast
    assert_same_lists(clinic, Settings(refill_margin_days=10))


def test_changed_forecast_code_or_catalogue_makes_the_table_stale(clinic):
    with clinic.begin() as conn:
        conn.execute(text("UPDATE forecast_cache SET code_hash = 'older devicelog'"))
    with read_session(clinic) as s:
        assert forecasts.staleness(s, Settings()) == "devicelog's forecast changed"
    prepare(clinic)
    with read_session(clinic) as s:
        assert forecasts.is_fresh(s, Settings())
    with clinic.begin() as conn:
        conn.execute(text("UPDATE drug SET stability_days = 30 WHERE code = 'morphine'"))
    with read_session(clinic) as s:
        assert forecasts.staleness(s, Settings()) == "the catalogue changed"
    prepare(clinic)
    # Morphine stable 30 days now: fill 2026-11-01 + 30 = 2026-12-01 wins over the alarm margin.
    assert stored_refill_due(clinic) == [D(2026, 12, 1)]


# --------------------------------------------------------------------- migration and start-up


def test_an_unfilled_table_is_computed_around_then_filled_on_the_next_open(clinic):
    with clinic.begin() as conn:  # as right after migration 0003
        for table in ("due_item", "device_note", "forecast_cache"):
            conn.execute(text(f"DELETE FROM {table}"))
    with read_session(clinic) as s:
        assert forecasts.staleness(s) == "the due table was never filled"
        dl = due_list(s, as_of=TODAY, settings=Settings(), within_days=90)  # computed meanwhile
    assert {(i.device_serial, i.code): i.due_on for i in dl.items}[("NGP100", "refill")] == D(2027, 1, 23)
    prepare(clinic)
    assert stored_refill_due(clinic) == [D(2027, 1, 23)]
    with read_session(clinic) as s:
        assert due_list(s, as_of=TODAY, settings=Settings(), within_days=90) == dl
    assert assert_same_lists(clinic, Settings()) == 5


def test_migration_0003_upgrades_a_0002_database_with_a_clinic(db_url):
    from alembic import command

    from devicelog.store import schema

    engine = make_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), "head")
    prepare(engine)
    build_clinic(engine)
    with engine.begin() as conn:
        command.downgrade(schema.alembic_config(conn), "0002")
        assert schema.current_revision(conn) == "0002"
        assert "due_item" not in schema._tables_present(conn, ("due_item",))
    engine.dispose()
    engine = make_engine(db_url)
    prepare(engine)  # upgrades to the head and fills the table
    with engine.connect() as conn:
        assert schema.current_revision(conn) == schema.HEAD
    assert stored_refill_due(engine) == [D(2027, 1, 23)]
    assert assert_same_lists(engine, Settings()) == 5
    assert audit.verify(engine).ok
    engine.dispose()


def test_an_open_at_head_imports_neither_alembic_nor_the_orm(engine, db_url):
    engine.dispose()
    code = (
        "import sys\n"
        "from devicelog.store.db import make_engine\n"
        "from devicelog.store.schema import prepare\n"
        f"prepare(make_engine({db_url!r}))\n"
        "print(sorted(m for m in ('alembic', 'sqlmodel', 'pendulum', 'rich', 'textual') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
