"""The history screen, driven with the pilot on the hand-built clinic of tests/test_history.py."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Static

from devicelog.settings import Settings
from devicelog.store import queries
from devicelog.store.db import read_session
from tests.conftest import TODAY
from tests.test_history import make_clinic

SIZE = (120, 40)


@pytest.fixture
def clinic(engine):
    make_clinic(engine)
    with read_session(engine) as s:
        ids = {d.serial: d.id for d in queries.devices_of_patient(s, queries.patient_by_mrn(s, "MRN001").id)}
    return engine, ids


async def settle(pilot):
    for _ in range(5):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def column(table: DataTable, index: int) -> list[str]:
    return [str(table.get_row_at(i)[index]) for i in range(table.row_count)]


async def test_timeline_filter_patient_view_and_tabs(clinic):
    from devicelog.tui.app import make_app
    from devicelog.tui.screens.history import HistoryScreen

    engine, ids = clinic
    app = make_app(engine, Settings(), TODAY, "nurse")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(HistoryScreen(engine=engine, device_id=ids["NGP100"], settings=Settings(), today=TODAY))
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#timeline", DataTable)
        # 8 events; the amended refill is followed by its original and its amendment.
        assert table.row_count == 10
        entries = column(table, 2)
        amended = entries.index("Refill (amended)")
        assert entries[amended + 1].strip() == "↳ original" and entries[amended + 2].strip() == "↳ amendment"
        assert "withdrawn 16.3 mL" in column(table, 4)[amended + 1]
        assert column(table, 0)[:2] == ["2025-01-05", "2025-02-04"]

        await pilot.press("f")  # first kind present: refill
        await settle(pilot)
        assert screen.kind_filter == "refill"
        assert set(e.strip() for e in column(table, 2)) == {"Refill", "Refill (amended)", "↳ original", "↳ amendment"}
        assert table.row_count == 7

        await pilot.press("w")  # every device of the patient
        await settle(pilot)
        assert screen.whole_patient and [d.serial for d in screen.report.devices] == ["NGP100", "SCS300", "NGP200"]
        assert set(column(table, 1)) - {""} == {"NGP100", "NGP200"}  # still refills only ("" on version rows)
        await pilot.press("shift+f")  # back to all kinds
        await settle(pilot)
        assert screen.kind_filter is None
        voided = [str(r) for r in column(table, 2) if "ENTERED IN ERROR" in str(r)]
        assert len(voided) == 1

        await pilot.press("l")
        await settle(pilot)
        ledgers = screen.query(".ledger-table")
        assert len(ledgers) == 2
        first = ledgers.first(DataTable)
        assert [str(c) for c in column(first, 3)] == ["—", "-0.40", "-0.80", "-1.30", "+0.00"]
        trend = screen.query(".ledger-trend").first(Static)
        assert trend.has_class("flagged")
        assert "3 consecutive refills less than expected" in str(trend.render())

        await pilot.press("g")
        await settle(pilot)
        from textual_plotext import PlotextPlot

        captions = " ".join(str(s.render()) for s in screen.query(".chart-caption"))
        assert len(screen.query(PlotextPlot)) >= 6
        assert "Pain NRS" in captions and "Oral MME" in captions and "2029-09-12" in captions
        sections = " ".join(str(s.render()) for s in screen.query(".section"))
        assert "reference only, not for dosing" in sections

        await pilot.press("p")
        await settle(pilot)
        programming = screen.query_one("#programming", DataTable)
        assert "210 µs" in column(programming, 6) and "300 µs" in column(programming, 6)


async def test_device_screen_h_opens_the_history(clinic):
    from devicelog.tui.app import make_app
    from devicelog.tui.screens.device import DeviceScreen
    from devicelog.tui.screens.history import HistoryScreen

    engine, ids = clinic
    app = make_app(engine, Settings(), TODAY, "nurse")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(DeviceScreen(ids["SCS300"]))
        await settle(pilot)
        await pilot.press("h")
        await settle(pilot)
        assert isinstance(app.screen, HistoryScreen)
        assert app.screen.report.scope == "device SCS300"
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, DeviceScreen)
