"""The clinic TUI end to end with the pilot, checked in the database afterwards.

The clinic (``seed_clinic``) on TODAY = 2026-11-23, worked by hand from the clinical
reference (rules 1, 3, 4, 8; morphine stability 90 days; margin 7 days; low alarm 2 mL):

* MRN001 Ann Lee, SynchroMed II 20 mL NGP100, filled to 20 mL on 2026-10-01 with
  morphine 10 mg/mL at 2 mg/day = 0.2 mL/day.  Alarm (20 − 2) / 0.2 = 90 days →
  2026-12-30; refill due min(2026-12-30 − 7, 2026-10-01 + 90) = 2026-12-23.
* MRN002 Bob Stone, SynchroMed II 40 mL NGP200, filled to 40 mL on 2026-08-01,
  morphine 10 mg/mL at 3 mg/day = 0.3 mL/day.  Stability 2026-08-01 + 90 = 2026-10-30
  comes before the alarm date, so the refill is overdue since 2026-10-30.
* MRN003 Cara Diaz, Intellis SCS300 implanted 2026-11-10: wound check day 10 was
  2026-11-20, overdue.
* MRN004 Dan Ford, no device.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from sqlmodel import select

from devicelog import services
from devicelog.clinic.records import (
    DeviceIn,
    DrugConcentration,
    EventIn,
    PatientIn,
    PumpProgram,
    RefillData,
    WoundCheckData,
)
from devicelog.settings import Settings
from devicelog.store import tables
from devicelog.store.db import read_session, write_session
from tests.conftest import TODAY, recorded_author, requires_sqlite, user_args

SIZE = (100, 32)


def seed_clinic(engine) -> None:
    with write_session(engine) as s:
        for mrn, name, born in [
            ("MRN001", "Ann Lee", dt.date(1950, 1, 2)),
            ("MRN002", "Bob Stone", dt.date(1948, 5, 6)),
            ("MRN003", "Cara Diaz", dt.date(1970, 7, 8)),
            ("MRN004", "Dan Ford", dt.date(1960, 9, 10)),
        ]:
            services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn=mrn, name=name, birth_date=born), author="rn")
        for mrn, model, serial, on in [
            ("MRN001", "synchromed-ii-20", "NGP100", dt.date(2025, 1, 5)),
            ("MRN002", "synchromed-ii-40", "NGP200", dt.date(2025, 3, 1)),
            ("MRN003", "medtronic-intellis", "SCS300", dt.date(2026, 11, 10)),
        ]:
            services.add_device(
                session=s, device=DeviceIn(patient_mrn=mrn, model=model, serial=serial, implanted_on=on),
                author="rn", today=TODAY,
            )
        # The pumps' post-implant wound checks were done (rule 20), so they do not crowd the list.
        for serial, implanted in (("NGP100", dt.date(2025, 1, 5)), ("NGP200", dt.date(2025, 3, 1))):
            for day in (10, 30, 90):
                services.record_event(
                    session=s,
                    event=EventIn(device_serial=serial, occurred_on=implanted + dt.timedelta(days=day), author="rn",
                                  data=WoundCheckData(site="pocket")),
                    today=TODAY,
                )
        for serial, on, volume, dose in (("NGP100", dt.date(2026, 10, 1), 20.0, 2.0),
                                         ("NGP200", dt.date(2026, 8, 1), 40.0, 3.0)):
            data = RefillData(
                volume_withdrawn_ml=3.0, volume_added_ml=volume, reservoir_volume_after_ml=volume,
                program=PumpProgram(mode="simple_continuous", drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=10)],
                                    dose_mg_per_day=dose),
            )
            services.record_event(session=s, event=EventIn(device_serial=serial, occurred_on=on, author="rn", data=data),
                                  today=TODAY)


@pytest.fixture
def clinic(engine):
    seed_clinic(engine)
    return engine


def make(engine):
    from devicelog.tui.app import make_app

    return make_app(engine, Settings(), TODAY, "nurse")


async def settle(pilot):
    """Let workers finish and the screen catch up."""
    app = pilot.app
    for _ in range(5):
        await pilot.pause()
        await app.workers.wait_for_complete()
    await pilot.pause()


def device_id(engine, serial):
    with read_session(engine) as s:
        return s.exec(select(tables.Device.id).where(tables.Device.serial == serial)).one()


def events(engine, serial):
    with read_session(engine) as s:
        dev = s.exec(select(tables.Device).where(tables.Device.serial == serial)).one()
        return list(s.exec(select(tables.EventRow).where(tables.EventRow.device_id == dev.id).order_by(tables.EventRow.id)).all())


def refill_due(app, serial):
    """The refill due date the device screen on top shows for ``serial``."""
    from devicelog.tui.screens.device import DeviceScreen

    screen = app.screen
    assert isinstance(screen, DeviceScreen) and screen.history.device.serial == serial
    items = [i for i, _ in screen.view.items(TODAY, app.settings) if i.code == "refill"]
    assert f"Pump refill  {items[0].due_on}" in str(screen.query_one("#device-items").render())
    return items[0].due_on


async def type_into(pilot, row, text):
    control = row.control
    control.focus()
    control.value = ""
    await pilot.pause()
    await pilot.press(*list(text))
    await pilot.pause()


async def open_device(pilot, search_text):
    from devicelog.tui.screens.device import DeviceScreen

    await settle(pilot)
    await pilot.press(*list(search_text))
    await settle(pilot)
    await pilot.press("enter")  # open the highlighted device
    await settle(pilot)
    assert isinstance(pilot.app.screen, DeviceScreen)
    return pilot.app.screen


# ----------------------------------------------------------------------------- main screen


async def test_opening_shows_overdue_items_without_searching(clinic):
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        warnings = str(app.screen.query_one("#warnings").render())
        assert "NGP200" in warnings and "Pump refill" in warnings and "2026-10-30" in warnings
        assert "SCS300" in warnings and "Wound check day 10" in warnings
        assert "NGP100" not in warnings  # its refill is due 2026-12-23, not overdue
        table = app.screen.query_one("#patients")
        assert table.row_count == 4


async def test_search_as_you_type_by_name_mrn_and_serial(clinic):
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#patients")
        for text, expected in (("ston", ["MRN002"]), ("mrn00", ["MRN001", "MRN002", "MRN003", "MRN004"]), ("scs3", ["MRN003"])):
            app.screen.query_one("#search").value = ""
            await pilot.press(*list(text))
            await settle(pilot)
            mrns = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
            assert [m for m in mrns if m] == expected, text


async def test_a_late_result_for_older_text_does_not_replace_the_list(clinic):
    """Searches run in threads; a result that arrives after the nurse typed on is dropped."""
    from devicelog.tui.state import SearchResult

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"ston")
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#patients")
        assert [str(table.get_row_at(i)[0]) for i in range(table.row_count)] == ["MRN002"]
        screen._show_hits(SearchResult(text="sto", hits=()))  # the older keystroke's search, late
        assert table.row_count == 1 and screen.result.text == "ston"
        screen._show_hits(SearchResult(text="ston", hits=()))  # the current text's result is shown
        assert table.row_count == 0


async def test_f5_reads_the_clinic_again(clinic):
    """A patient registered elsewhere (another workstation) shows after F5."""
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#patients")
        assert table.row_count == 4
        with write_session(clinic) as s:
            services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN005", name="Eve Hart", birth_date=dt.date(1961, 4, 5)),
                                 author="rn")
        await pilot.press("f5")
        await settle(pilot)
        assert "MRN005" in [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def line_text(widget, y: int) -> str:
    return "".join(segment.text for segment in widget.render_line(y))


async def test_results_table_moves_its_cursor_by_keys_and_clicks_and_opens_the_row(clinic):
    """The results are a ResultsTable (not a DataTable): the keys and clicks a nurse uses."""
    from devicelog.tui.screens.device import DeviceScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#patients")
        await pilot.press("down")  # from the search box to the results
        assert table.has_focus and table.cursor_row == 0
        await pilot.press("down", "down")
        assert screen.selected[0].mrn == "MRN003" and screen.selected[1] is not None
        await pilot.press("ctrl+end")
        assert table.cursor_row == 3 and screen.selected[0].mrn == "MRN004" and screen.selected[1] is None  # no device
        await pilot.press("ctrl+home", "up")
        assert table.cursor_row == 0
        await pilot.click("#patients", offset=(3, 2))  # line 2 = the second row (line 0 is the header)
        await settle(pilot)
        assert table.cursor_row == 1 and isinstance(app.screen, type(screen))  # a first click only moves
        await pilot.click("#patients", offset=(3, 2))
        await settle(pilot)
        assert isinstance(app.screen, DeviceScreen) and app.screen.history.device.serial == "NGP200"


async def test_results_columns_stay_as_wide_while_typing_narrows_the_list(clinic):
    """Columns only widen (as a DataTable's did), so they do not jump about under typing."""
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#patients")
        header = line_text(table, 0)
        assert header.split() == ["MRN", "Patient", "Most", "urgent", "Serial", "Device"]
        await pilot.press(*"ston")
        await settle(pilot)
        assert line_text(table, 0) == header
        row = line_text(table, 1)
        assert row.index("Bob Stone") == header.index("Patient") and row.index("NGP200") == header.index("Serial")


async def test_a_long_search_text_keeps_the_caret_in_view(clinic):
    """The search box sets its scroll width without a screen layout (widgets.search): the
    end of a long text, where the caret is, still shows."""
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        box = app.screen.query_one("#search")
        await pilot.press(*("x" * 150))
        await settle(pilot)
        assert box.value == "x" * 150
        assert box.scroll_x > 0 and box.virtual_size.width == 151
        assert "0 patients matching" in str(app.screen.query_one("#status-line").render())


# ----------------------------------------------------------------------------- refill


async def test_log_a_refill_with_the_keyboard_saves_typed_values_and_moves_the_due_date(clinic):
    from devicelog.tui.screens.visit import VisitScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_device(pilot, "NGP100")
        assert refill_due(app, "NGP100") == dt.date(2026, 12, 23)
        summary = str(screen.query_one("#summary").render())
        assert "morphine 10 mg/mL; 2 mg/day" in summary
        await pilot.press("r")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, VisitScreen)
        # The cursor starts at the one value that must be measured: the residual withdrawn.
        assert form.focused is form.rows["volume_withdrawn_ml"].control
        await pilot.press(*"9.0")
        await type_into(pilot, form.rows["program.dose_mg_per_day"], "2.5")
        await settle(pilot)
        preview = str(form.query_one("#preview").render())
        # Expected residual: 20 mL − 53 days (2026-10-01 → 2026-11-23) × 0.2 mL/day = 9.4 mL;
        # withdrawn 9.0 mL is 0.4 mL less, within the 1.0 mL limit of a 20 mL pump.
        assert "Expected residual 9.4 mL" in preview
        assert "FLAG" not in preview
        # New program 2.5 mg/day ÷ 10 mg/mL = 0.25 mL/day; (20 − 2) / 0.25 = 72 days →
        # alarm 2027-02-03; due min(alarm − 7 = 2027-01-27, fill + 90 = 2027-02-21) = 2027-01-27.
        assert "Low-reservoir alarm 2027-02-03" in preview
        assert "next refill due 2027-01-27" in preview
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, VisitScreen)
        assert refill_due(app, "NGP100") == dt.date(2027, 1, 27)
    rows = [r for r in events(clinic, "NGP100") if r.kind == "refill"]
    assert len(rows) == 2
    new = rows[-1]
    assert new.occurred_on == TODAY and new.author == "nurse"
    assert new.data["volume_withdrawn_ml"] == 9.0
    assert new.data["volume_added_ml"] == 20.0 and new.data["reservoir_volume_after_ml"] == 20.0
    assert new.data["program"]["dose_mg_per_day"] == 2.5
    assert new.data["program"]["drugs"] == [{"drug": "morphine", "concentration_mg_per_ml": 10.0}]


async def test_after_a_refill_the_main_screen_rereads_only_that_device(clinic, monkeypatch):
    """NGP200 (40 mL, morphine 10 mg/mL at 3 mg/day = 0.3 mL/day, filled to 40 mL on
    2026-08-01) is refilled today: 114 days × 0.3 mL/day = 34.2 mL used, so 5.8 mL is
    the expected residual and 5.8 mL withdrawn is no discrepancy.  Refilled to 40 mL:
    alarm (40 − 2) / 0.3 = 126.7 → 126 days → 2027-03-29, minus 7 days = 2027-03-22;
    morphine stability 2026-11-23 + 90 days = 2027-02-21 comes first."""
    from devicelog.store import due, queries

    asked: list[list[int]] = []
    searches: list[str] = []
    real_most_urgent, real_search = due.most_urgent, queries.search_patient_ids

    def most_urgent(session, *, device_ids, **kw):
        asked.append(sorted(device_ids))
        return real_most_urgent(session, device_ids=device_ids, **kw)

    def search_patient_ids(conn, text, limit=50):
        searches.append(text)
        return real_search(conn, text, limit=limit)

    monkeypatch.setattr(due, "most_urgent", most_urgent)
    monkeypatch.setattr(queries, "search_patient_ids", search_patient_ids)
    ngp200 = device_id(clinic, "NGP200")
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        main = app.screen
        await open_device(pilot, "NGP200")
        table = main.query_one("#patients")
        assert str(table.get_cell(f"d{ngp200}", main.urgent_column)).startswith("Pump refill 2026-10-30")
        assert "NGP200" in str(main.query_one("#warnings").render())
        await pilot.press("r")
        await settle(pilot)
        await pilot.press(*"5.8")
        await settle(pilot)
        assert "Expected residual 5.8 mL" in str(app.screen.query_one("#preview").render())
        asked.clear()
        searches.clear()
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert refill_due(app, "NGP200") == dt.date(2027, 2, 21)
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is main
        assert str(table.get_cell(f"d{ngp200}", main.urgent_column)).startswith("Pump refill 2027-02-21")
        warnings = str(main.query_one("#warnings").render())
        assert "NGP200" not in warnings and "SCS300" in warnings
        # Only the device the refill touched was asked for again; the search did not run again.
        assert asked == [[ngp200]] and searches == []
    rows = [r for r in events(clinic, "NGP200") if r.kind == "refill"]
    assert len(rows) == 2 and rows[-1].data["volume_withdrawn_ml"] == 5.8


async def test_discrepancy_is_flagged_before_saving(clinic):
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await open_device(pilot, "NGP100")
        await pilot.press("r")
        await settle(pilot)
        # Withdrawn 12.0 mL vs 9.4 mL expected: +2.6 mL, beyond the 1.0 mL limit (rule 8).
        await pilot.press(*"12")
        await settle(pilot)
        preview = str(app.screen.query_one("#preview").render())
        assert "FLAG" in preview and "under-delivery, stall or occlusion" in preview


async def test_refused_save_keeps_the_form_and_shows_problems_at_their_fields(clinic):
    from devicelog.tui.screens.visit import VisitScreen

    before = len(events(clinic, "NGP100"))
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await open_device(pilot, "NGP100")
        await pilot.press("r")
        await settle(pilot)
        form = app.screen
        await pilot.press(*"abc")
        await settle(pilot)
        # Named as it is typed.
        problem = str(form.rows["volume_withdrawn_ml"].query_one(".problem").render())
        assert "Residual withdrawn" in problem and "not a number in mL" in problem
        await type_into(pilot, form.rows["volume_withdrawn_ml"], "9")
        # 25 mL is more than the 20 mL reservoir: the store refuses it.
        await type_into(pilot, form.rows["volume_added_ml"], "25")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, VisitScreen)
        problem = str(form.rows["volume_added_ml"].query_one(".problem").render())
        assert "more than the" in problem and "20 mL" in problem
        assert form.rows["volume_added_ml"].raw == "25" and form.rows["volume_withdrawn_ml"].raw == "9"
    assert len(events(clinic, "NGP100")) == before


async def test_leaving_a_half_filled_form_asks_first(clinic):
    from devicelog.tui.screens.device import DeviceScreen
    from devicelog.tui.screens.dialogs import ConfirmScreen
    from devicelog.tui.screens.visit import VisitScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await open_device(pilot, "NGP100")
        await pilot.press("r")
        await settle(pilot)
        await pilot.press(*"4")
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, VisitScreen) and app.screen.rows["volume_withdrawn_ml"].raw == "4"
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert isinstance(app.screen, DeviceScreen)


# ----------------------------------------------------------------------------- other kinds


async def test_wound_check_preview_says_it_escalates(clinic):
    from devicelog.tui.screens.visit import VisitScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await open_device(pilot, "SCS300")
        screen = app.screen
        screen._open_form(__import__("devicelog.clinic.records", fromlist=["EventKind"]).EventKind.wound_check)
        await settle(pilot)
        form = app.screen
        assert isinstance(form, VisitScreen)
        assert "No escalation" in str(form.query_one("#preview").render())
        await type_into(pilot, form.rows["fever_c"], "38.5")
        await settle(pilot)
        assert "ESCALATE SAME DAY" in str(form.query_one("#preview").render())
        await pilot.press("ctrl+s")
        await settle(pilot)
    rows = [r for r in events(clinic, "SCS300") if r.kind == "wound_check"]
    assert rows[-1].data["fever_c"] == 38.5


async def test_log_visit_offers_the_kinds_that_fit_the_device(clinic):
    from devicelog.tui.screens.dialogs import ChooseKindScreen
    from devicelog.tui.screens.visit import VisitScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await open_device(pilot, "SCS300")
        await pilot.press("v")
        await settle(pilot)
        assert isinstance(app.screen, ChooseKindScreen)
        labels = [str(o.prompt) for o in app.screen.query_one("#kinds").options]
        assert "Refill" not in labels and "Trial start" in labels and "Programming change" in labels
        await pilot.press("enter")  # the first offered: interrogation
        await settle(pilot)
        assert isinstance(app.screen, VisitScreen) and app.screen.kind.value == "interrogation"


# ----------------------------------------------------------------------------- amend and void


async def test_amend_keeps_the_original_and_says_why(clinic):
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_device(pilot, "NGP100")
        await pilot.press("e")
        await settle(pilot)
        table = screen.query_one("#events")
        assert "Refill" in str(table.get_row_at(0)[1])  # most recent first: the 2026-10-01 refill
        await pilot.press("a")
        await settle(pilot)
        form = app.screen
        assert form.amend is not None and form.rows["volume_withdrawn_ml"].raw == "3"
        await pilot.press("ctrl+s")  # no reason yet: refused
        await settle(pilot)
        assert app.screen is form
        assert "required" in str(form.rows["amendment_reason"].query_one(".problem").render())
        await type_into(pilot, form.rows["amendment_reason"], "typo: residual was 3.5")
        await type_into(pilot, form.rows["volume_withdrawn_ml"], "3.5")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is screen
        labels = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert any("[amended]" in label for label in labels) and any("amendment" in label for label in labels)
    rows = [r for r in events(clinic, "NGP100") if r.kind == "refill"]
    original, amendment = rows[0], rows[-1]
    assert original.data["volume_withdrawn_ml"] == 3.0 and original.amends_id is None
    assert amendment.amends_id == original.id and amendment.amendment_reason == "typo: residual was 3.5"
    assert amendment.data["volume_withdrawn_ml"] == 3.5 and not amendment.voided


async def test_mark_entered_in_error_needs_a_reason_and_keeps_the_row(clinic):
    from devicelog.tui.screens.dialogs import ReasonScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await open_device(pilot, "NGP200")
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ReasonScreen)
        await pilot.press("enter")  # empty reason: refused in the dialog
        await settle(pilot)
        assert isinstance(app.screen, ReasonScreen)
        await pilot.press(*"wrong patient", "enter")
        await settle(pilot)
        # The only refill is void: the forecast no longer has a refill to schedule from.
        history = app.screen.history
        assert history.device.serial == "NGP200"
        assert not any(e.kind.value == "refill" for e in history.events)
    rows = [r for r in events(clinic, "NGP200") if r.kind == "refill"]
    assert len(rows) == 2 and rows[1].voided and rows[1].amends_id == rows[0].id
    assert rows[1].amendment_reason == "wrong patient"


# ----------------------------------------------------------------------------- registration


UDI_RAW = "]d2" + "0109504000059118" + "17141120" + "107654321D\x1d" + "21SN77X"


async def test_register_patient_then_device_with_a_scanned_udi(clinic):
    from devicelog.tui.screens.register import DeviceRegisterScreen, PatientScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f2")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, PatientScreen)
        await type_into(pilot, form.rows["mrn"], "MRN777")
        await type_into(pilot, form.rows["name"], "Eve Hart")
        await type_into(pilot, form.rows["birth_date"], "1961-04-05")
        await pilot.press("ctrl+s")
        await settle(pilot)
        dev = app.screen
        assert isinstance(dev, DeviceRegisterScreen) and dev.rows["patient_mrn"].raw == "MRN777"
        # The scanner types the raw string; the terminal passes GS as ctrl+].
        dev.rows["udi"].control.focus()
        await pilot.press(*[c if c != "\x1d" else "ctrl+right_square_bracket" for c in UDI_RAW])
        await settle(pilot)
        assert dev.rows["serial"].raw == "SN77X"
        assert dev.rows["udi_lot"].raw == "7654321D" and dev.rows["udi_expiry"].raw == "2014-11-20"
        dev.rows["model"].control.value = "synchromed-ii-20"
        await type_into(pilot, dev.rows["implanted_on"], "2026-11-20")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, DeviceRegisterScreen)
    with read_session(clinic) as s:
        patient = s.exec(select(tables.Patient).where(tables.Patient.mrn == "MRN777")).one()
        device = s.exec(select(tables.Device).where(tables.Device.serial == "SN77X")).one()
    assert patient.name == "Eve Hart" and patient.birth_date == dt.date(1961, 4, 5)
    assert device.patient_id == patient.id and device.model_code == "synchromed-ii-20"
    assert device.udi_di == "09504000059118" and device.udi_lot == "7654321D"
    assert device.udi_serial == "SN77X" and device.udi_expiry == dt.date(2014, 11, 20)
    assert device.udi_raw == UDI_RAW and device.implanted_on == dt.date(2026, 11, 20)


async def test_bad_gtin_check_digit_is_refused_by_field(clinic):
    from devicelog.tui.screens.register import DeviceRegisterScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f3")
        await settle(pilot)
        dev = app.screen
        assert isinstance(dev, DeviceRegisterScreen)
        await type_into(pilot, dev.rows["patient_mrn"], "MRN004")
        await type_into(pilot, dev.rows["udi"], "(01)09504000059119(21)ZZ1")
        dev.rows["model"].control.value = "synchromed-ii-20"
        await type_into(pilot, dev.rows["serial"], "ZZ1")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is dev
        problem = str(dev.rows["udi"].query_one(".problem").render())
        assert "check digit" in problem
    with read_session(clinic) as s:
        assert s.exec(select(tables.Device).where(tables.Device.serial == "ZZ1")).first() is None


# ----------------------------------------------------------------------------- due list, palette


async def test_due_list_filters_by_kind_and_range(clinic):
    from devicelog.clinic.records import DeviceKind
    from devicelog.tui.screens.due import DueScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DueScreen)

        def serials():
            return {item.device_serial for item, _ in screen.rows}

        # Next 30 days (default): NGP100's refill (2026-12-23) is in, as are the overdue ones.
        assert {"NGP100", "NGP200", "SCS300"} <= serials()
        screen.query_one("#due-range").value = 0  # overdue only
        await settle(pilot)
        assert all(status == "overdue" for _, status in screen.rows)
        assert "NGP100" not in serials()
        screen.query_one("#due-kind").value = DeviceKind.spinal_cord_stimulator.value
        await settle(pilot)
        assert serials() == {"SCS300"}


async def test_due_list_says_what_goals_of_care_suppressed_and_the_forecast_notes(engine):
    """tests/test_due_clinic.py's clinic: Bob Stone is in hospice, so his pump's planned
    replacement (2020-03-01 + 78 months = 2026-09-01, elective) is suppressed by rule 24
    and not listed; his compounded hydromorphone has no beyond-use date, a forecast note."""
    from devicelog.clinic.records import DeviceKind
    from devicelog.tui.screens.due import DueScreen
    from tests.test_due_clinic import build_clinic

    build_clinic(engine)
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DueScreen)
        assert ("NGP200", "planned_replacement") not in {(i.device_serial, i.code) for i, _ in screen.rows}
        foot = screen.query_one("#due-foot")
        text = str(foot.render())
        assert foot.display
        assert "1 item suppressed by goals of care (rule 24)" in text and "hospice" in text
        assert "forecast note" in text and "NGP200" in text
        screen.query_one("#due-kind").value = DeviceKind.spinal_cord_stimulator.value
        await settle(pilot)
        # The SCS implanted 2026-11-13 was never interrogated: no ERI projection, said so.
        text = str(foot.render())
        assert "suppressed" not in text and "1 forecast note: SCS300" in text and "battery" in text
        screen.query_one("#due-kind").value = DeviceKind.drg_stimulator.value
        await settle(pilot)
        assert not foot.display  # no DRG stimulator: nothing suppressed, no note


async def test_command_palette_offers_the_main_actions(clinic):
    from devicelog.tui.app import ClinicCommands

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        names = [name for name, _, _ in ClinicCommands(app.screen)._commands()]
        assert {"Register patient", "Register device", "Log visit", "Due list", "Search"} <= set(names)
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*"due list")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        from devicelog.tui.screens.due import DueScreen

        assert isinstance(app.screen, DueScreen)


async def test_a_device_opens_with_its_record_in_its_first_frame(clinic, monkeypatch):
    """The device is read before its screen is pushed (open_device): the screen is laid out
    once, with the record, Refill offered for a pump from the start; no read after the push."""
    from devicelog.tui.screens.device import DeviceScreen

    reads_after_push = []
    monkeypatch.setattr(DeviceScreen, "load", lambda self: reads_after_push.append(self.device_id))
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_device(pilot, "NGP200")
        assert reads_after_push == []
        assert "NGP200" in str(screen.query_one("#summary").render()) and "Pump refill" in str(screen.query_one("#device-items").render())
        assert screen.check_action("log", ("refill",)) is True
        await pilot.press("escape")
        await settle(pilot)
        app.screen.query_one("#search").value = ""
        app.screen.query_one("#search").focus()
        screen = await open_device(pilot, "SCS300")
        assert screen.check_action("log", ("refill",)) is False  # a stimulator is never refilled


# ----------------------------------------------------------------------------- start (devicelog tui)


def run_devicelog_tui(monkeypatch, argv, autopilot):
    """``devicelog ARGV`` through ``cli.main``, its app run headless under ``autopilot``."""
    import asyncio

    from devicelog import cli
    from devicelog.commands import tui as command
    from devicelog.tui.app import DeviceLogApp

    monkeypatch.setattr(command, "FIRST_SCREEN_WAIT_S", 60.0)  # a slow test machine still gets the first-frame path
    monkeypatch.setattr(DeviceLogApp, "run", lambda self: asyncio.run(self.run_async(headless=True, size=SIZE, auto_pilot=autopilot)))
    monkeypatch.setattr(cli.Context, "today", property(lambda self: TODAY))
    return cli.main(argv)


def test_devicelog_tui_shows_the_clinic_in_its_first_frame(clinic, db_url, monkeypatch):
    """The warnings and the first patients are read while the app starts (devicelog.tui.preload),
    so the first screen already shows them: no worker had to read them after the paint."""
    seen = {}

    async def autopilot(pilot):
        app = pilot.app
        seen["workers"] = [w.name for w in app.workers]
        seen["rows"] = app.screen.query_one("#patients").row_count
        seen["warnings"] = str(app.screen.query_one("#warnings").render())
        seen["user"] = app.user
        await settle(pilot)
        assert app.catalogue is not None  # F3 can register a device at once
        seen["later"] = str(app.screen.query_one("#status-line").render())
        app.exit()

    assert run_devicelog_tui(monkeypatch, ["--db", db_url, *user_args("nurse"), "tui"], autopilot) == 0
    # The OS login with "nurse" beside it (SQLite), the session's login on a server (issue 15).
    assert seen["workers"] == [] and seen["rows"] == 4 and seen["user"] == recorded_author("nurse")
    assert "NGP200" in seen["warnings"] and "SCS300" in seen["warnings"]
    assert seen["later"].startswith("4 patients")


_FIRST_FRAME_SCRIPT = """
import asyncio, datetime as dt, json, sys
from devicelog import cli
from devicelog.commands import tui as command
from devicelog.tui.app import DeviceLogApp
from devicelog.tui.screens.main import MainScreen

seen = {}
mount = MainScreen.on_mount
def on_mount(self):
    mount(self)
    seen["orm_before_first_frame"] = sorted(m for m in ("sqlmodel", "sqlalchemy.orm", "devicelog.store.tables") if m in sys.modules)
    seen["rows_in_first_frame"] = self.query_one("#patients").row_count
MainScreen.on_mount = on_mount

async def autopilot(pilot):
    await pilot.pause()
    pilot.app.preload.thread.join(60)
    seen["orm_after"] = "devicelog.store.tables" in sys.modules
    pilot.app.exit()

command.FIRST_SCREEN_WAIT_S = 60.0
DeviceLogApp.run = lambda self: asyncio.run(self.run_async(headless=True, size=(100, 30), auto_pilot=autopilot))
cli.Context.today = property(lambda self: dt.date.fromisoformat(sys.argv[2]))
seen["exit"] = cli.main(["--db", sys.argv[1], "tui"])
print(json.dumps(seen))
"""


@requires_sqlite
def test_devicelog_tui_paints_its_first_screen_without_the_orm(clinic, db_url):
    """The first screen is read in Core (tui.state), so the ORM (sqlmodel, store.tables)
    is imported only after the first frame, by the preload thread (a fresh process:
    this one has the ORM already)."""
    import json

    out = subprocess.run([sys.executable, "-c", _FIRST_FRAME_SCRIPT, db_url, TODAY.isoformat()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"orm_before_first_frame": [], "rows_in_first_frame": 4, "orm_after": True, "exit": 0}


def test_devicelog_tui_refuses_a_bad_settings_file_before_opening(tmp_path, monkeypatch, capsys):
    path = tmp_path / "s.toml"
    path.write_text("refill_margin_days = 30\n")
    code = run_devicelog_tui(monkeypatch, ["--db", str(tmp_path / "c.db"), "--settings", str(path), "tui"],
                             lambda pilot: pytest.fail("the app must not open"))
    assert code == 2 and "refill_margin_days = 30" in capsys.readouterr().err


@requires_sqlite
def test_devicelog_tui_refuses_a_newer_database(tmp_path, monkeypatch, capsys):
    from sqlalchemy import text

    from devicelog.store.db import make_engine
    from devicelog.store.schema import prepare

    path = tmp_path / "future.db"
    engine = make_engine(path)
    prepare(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    engine.dispose()
    code = run_devicelog_tui(monkeypatch, ["--db", str(path), "tui"], lambda pilot: pytest.fail("the app must not open"))
    assert code == 2 and "made by a newer devicelog" in capsys.readouterr().err


async def test_names_are_shown_as_typed_never_as_markup(clinic):
    with write_session(clinic) as s:
        services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN005", name="Eve [b]Park[/b]", birth_date=dt.date(1980, 1, 1)),
                             author="rn")
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"park")
        await settle(pilot)
        table = app.screen.query_one("#patients")
        assert table.row_count == 1 and str(table.get_row_at(0)[1]) == "Eve [b]Park[/b]"
        assert "Eve [b]Park[/b]" in line_text(table, 1)  # as drawn, too
        assert "'park'" in str(app.screen.query_one("#status-line").render())


# ----------------------------------------------------------------------------- layering


def test_core_never_imports_textual():
    code = (
        "import importlib, pkgutil, sys\n"
        "import devicelog.clinic, devicelog.store\n"
        "for pkg in (devicelog.clinic, devicelog.store):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        if m.name != 'migrations':\n"
        "            importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
        "import devicelog.services, devicelog.forms, devicelog.tui.state\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_refused_visit_names_fields_as_labelled_and_counts_them(clinic, monkeypatch):
    """Issue 13 item 15: "Not saved: 1 problem(s)" with two fields flagged, and "Not saved:
    occurred_on = '2027-01-15'", read as the form does; the database stays as it was."""
    from devicelog.tui.screens.visit import VisitScreen

    before = len(events(clinic, "NGP100"))
    app = make(clinic)
    said: list[str] = []
    notify = app.notify
    monkeypatch.setattr(app, "notify", lambda message, **kw: (said.append(str(message)), notify(message, **kw)))
    async with app.run_test(size=SIZE) as pilot:
        await open_device(pilot, "NGP100")
        await pilot.press("r")
        await settle(pilot)
        form = app.screen
        await type_into(pilot, form.rows["volume_withdrawn_ml"], "9")
        await type_into(pilot, form.rows["occurred_on"], "2027-01-15")
        await type_into(pilot, form.rows["volume_added_ml"], "25")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        # Flagged in red: the date (after today) and the volume (more than the 20 mL reservoir), both
        # by the store's check; and the dose the rules refuse (25 mL injected vs 20 mL programmed:
        # a possible pocket fill with no reason, rule 9).  Three, not "1 problem(s)".
        flagged = [key for key, row in form.rows.items() if str(row.query_one(".problem").render())]
        assert flagged == ["occurred_on", "volume_added_ml"] and len(form.evaluation.blocked) == 1
        assert said[-1] == "Not saved: 3 problems, shown in red on the form."
        await type_into(pilot, form.rows["volume_added_ml"], "20")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, VisitScreen)
        assert said[-1] == "Not saved: Date of visit '2027-01-15': is after today (2026-11-23)"
    assert len(events(clinic, "NGP100")) == before


async def test_device_summary_puts_the_udi_on_its_own_line(engine):
    """The UDI line follows the battery line; its line break is a line break, not a
    visible ␊ mark (the summary's values are shown one line each, the break between
    them is the screen's own)."""
    from devicelog.clinic.records import DeviceIn, UdiIn

    seed_clinic(engine)
    udi = UdiIn(raw="(01)09504000059118(17)281120(10)L7654(21)NGP777", device_identifier="09504000059118",
                lot="L7654", serial="NGP777", expiry=dt.date(2028, 11, 20))
    with write_session(engine) as s:
        services.add_device(session=s, device=DeviceIn(patient_mrn="MRN001", model="synchromed-ii-20", serial="NGP777",
                                                       implanted_on=dt.date(2026, 1, 5), udi=udi), author="rn", today=TODAY)
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_device(pilot, "NGP777")
        summary = str(screen.query_one("#summary").render())
        assert "␊" not in summary
        assert "\nUDI DI 09504000059118 lot L7654 expiry 2028-11-20" in summary
