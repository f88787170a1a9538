"""Snapshots of the main screens at 80×24 on the fixed clinic of ``tests/test_tui.py``
(TODAY 2026-11-23).  Update with ``pytest tests/test_tui_snapshots.py --snapshot-update``
after checking the HTML diff by eye."""

from __future__ import annotations

import pytest

from tests.test_tui import make, seed_clinic, settle

SIZE = (80, 24)


@pytest.fixture
def clinic(engine):
    seed_clinic(engine)
    return engine


async def still(pilot) -> None:
    """Finish the workers and stop the cursor blinking."""
    from textual.widgets import Input

    from textual.widgets import DataTable

    await settle(pilot)
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False
    await settle(pilot)
    # A DataTable sizes its columns when it is idle; on a busy machine the shot could
    # otherwise catch the rows in header-wide columns.
    for _ in range(20):
        tables = pilot.app.screen.query(DataTable)
        if not any(t._require_update_dimensions or t._updated_cells for t in tables):
            break
        await pilot.pause()


def test_main_screen(clinic, snap_compare):
    """On opening, a nurse sees the overdue items (NGP200's refill since 2026-10-30, SCS300's
    day-10 wound check) above every patient with each device's most urgent item in colour."""
    assert snap_compare(make(clinic), terminal_size=SIZE, run_before=still)


def test_device_screen(clinic, snap_compare):
    """NGP100: model, implant date and days since, morphine 10 mg/mL at 2 mg/day, and its due
    items with why (refill due 2026-12-23 from the 90-day morphine stability and the alarm)."""

    async def open_ngp100(pilot):
        await settle(pilot)
        await pilot.press(*"NGP100", "enter", "enter")
        await still(pilot)

    assert snap_compare(make(clinic), terminal_size=SIZE, run_before=open_ngp100)


def test_refill_form_with_preview(clinic, snap_compare):
    """The refill form with defaults from the last refill, 9.0 mL withdrawn typed, and what it
    means: expected residual 9.4 mL, within the limit, next alarm and refill dates."""

    async def refill(pilot):
        await settle(pilot)
        await pilot.press(*"NGP100", "enter", "enter")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        await pilot.press(*"9.0")
        await still(pilot)

    assert snap_compare(make(clinic), terminal_size=SIZE, run_before=refill)
