"""The TUI reads only what it shows (issue 8), on a demo clinic of 300 patients.

Every read of a device's events goes through ``queries.raw_events`` (``load_histories``
calls it too), so a spy on it records which devices' histories the app loaded.  At
start the app may read the devices of the 50 patients it lists, never the other
~360 (it failed while ``store.due.clinic_warnings`` still computed every forecast);
each keystroke reads at most the devices of the 50 patients it finds; opening a
device, or its full history, reads that one device.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from textual.widgets import Input

from devicelog import demo
from devicelog.settings import Settings
from devicelog.store import queries
from devicelog.store.db import read_session
from devicelog.tui.widgets.results import ResultsTable
from tests.conftest import TODAY

SIZE = (100, 32)
PATIENTS = 300


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    """One demo clinic for the module (read-only tests), a SQLite file."""
    from devicelog.store.db import make_engine
    from devicelog.store.schema import prepare

    url = str(tmp_path_factory.mktemp("demo") / "demo.db")
    engine = make_engine(url)
    prepare(engine)
    demo.build(engine, patients=PATIENTS, seed=1, as_of=TODAY, method="bulk")
    engine.dispose()
    return url


@pytest.fixture
def clinic(demo_url):
    from devicelog.store.db import make_engine

    engine = make_engine(demo_url)
    yield engine
    engine.dispose()


@pytest.fixture
def loaded(monkeypatch):
    """The device ids whose events were read, call by call (None: every device)."""
    calls: list[list[int] | None] = []
    real = queries.raw_events

    def spy(session, device_ids):
        ids = list(device_ids)
        calls.append(ids)
        return real(session, ids)

    real_histories = queries.load_histories

    def spy_histories(session, device_ids=None):
        if device_ids is None:
            calls.append(None)
        return real_histories(session, device_ids)

    monkeypatch.setattr(queries, "raw_events", spy)
    monkeypatch.setattr(queries, "load_histories", spy_histories)
    return calls


def make(engine):
    from devicelog.tui.app import make_app

    return make_app(engine, Settings(), TODAY, "nurse")


async def settle(pilot):
    for _ in range(5):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def listed(screen) -> set[int]:
    """The device ids in the main screen's table."""
    return {device_id for _, device_id in screen.hits if device_id is not None}


def count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


async def test_start_reads_no_history_of_a_device_it_does_not_list(clinic, loaded):
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#patients", ResultsTable)
        shown = listed(screen)
        assert table.row_count >= 50 and len(shown) >= 50  # 50 patients, most with a device or two
        assert "overdue" in str(screen.query_one("#warnings").render())
    devices = count(clinic, "select count(*) from device")
    assert devices > 400
    assert None not in loaded, "a read of every device's history"
    read = {i for ids in loaded for i in ids}
    assert read <= shown, f"{len(read - shown)} devices read that the screen does not list"


async def test_search_on_a_demo_clinic_lists_the_matching_patients_and_opens_a_device(clinic, loaded):
    from devicelog.tui.screens.device import DeviceScreen

    with read_session(clinic) as s:
        patient = queries.search_patients(s, "", limit=PATIENTS)[137]
        device = queries.devices_of_patient(s, patient.id)[0]
    surname = patient.name.split()[-1]
    # Counted with plain SQL, not through the app's query.
    expected = count(clinic, "select count(*) from patient where lower(name) like :p", p=f"%{surname.lower()}%")
    assert 1 <= expected < 50

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#patients", ResultsTable)
        loaded.clear()
        await pilot.press(*surname.lower())
        await settle(pilot)
        names = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        names = [n for n in names if n]
        assert len(names) == expected
        assert all(surname.lower() in n.lower() for n in names)
        assert f"{expected} patient{'s' if expected != 1 else ''} matching {surname.lower()!r}" in str(screen.query_one("#status-line").render())
        # Each keystroke read at most the devices of the 50 patients it found, never all of them.
        per_patient = count(clinic, "select max(n) from (select count(*) as n from device group by patient_id)")
        assert None not in loaded
        assert all(len(ids) <= 50 * per_patient for ids in loaded), [len(ids) for ids in loaded]

        # A serial typed in full puts the cursor on that device; Enter opens it, reading it alone.
        screen.query_one("#search", Input).value = ""
        await pilot.press(*device.serial)
        await settle(pilot)
        assert screen.hits[table.cursor_row][1] == device.id
        loaded.clear()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DeviceScreen)
        assert app.screen.history.device.serial == device.serial
        assert device.serial in str(app.screen.query_one("#summary").render())
        assert loaded and all(ids == [device.id] for ids in loaded)

        # The full history (h) reads that device alone too.
        loaded.clear()
        await pilot.press("h")
        await settle(pilot)
        assert app.screen.report.scope == f"device {device.serial}"
        assert loaded and all(ids == [device.id] for ids in loaded)


async def test_a_long_result_list_pages_with_the_cursor_in_view(clinic, loaded):
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#patients", ResultsTable)
        rows_on_screen = table.scrollable_content_region.height - 1  # under the header line

        def in_view() -> bool:
            return table.scroll_y <= table.cursor_row < table.scroll_y + rows_on_screen

        await pilot.press("down", "pagedown", "pagedown")
        await pilot.pause()
        assert table.cursor_row == 2 * rows_on_screen and table.scroll_y > 0 and in_view()
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert table.cursor_row == table.row_count - 1 and in_view()
        assert screen.selected == screen.hits[-1]
        await pilot.press("pageup")
        await pilot.pause()
        assert table.cursor_row == table.row_count - 1 - rows_on_screen and in_view()


async def test_the_status_line_wraps_when_it_is_longer_than_the_screen(clinic, loaded):
    """The status line is updated without a layout only when it fits on its one line
    (MainScreen._show_hits); a longer one still gets its second line, and gives it back."""
    app = make(clinic)
    async with app.run_test(size=(69, 32)) as pilot:
        await settle(pilot)
        status = app.screen.query_one("#status-line")
        long_line = "50 patients (first 50; type more to narrow) · Enter opens the device"  # 69 > 67 cells
        assert str(status.render()).replace("\n", " ") == long_line and status.size.height == 2
        mrn = app.screen.hits[0][0].mrn
        await pilot.press(*mrn)
        await settle(pilot)
        assert str(status.render()).startswith(f"1 patient matching {mrn!r}") and status.size.height == 1
        app.screen.query_one("#search", Input).value = ""
        await settle(pilot)
        assert str(status.render()).replace("\n", " ") == long_line and status.size.height == 2
