"""Issue 13, items 2, 7 and 14 in the TUI, with the pilot, checked in the database.

The clinic is ``tests.test_tui.seed_clinic`` (TODAY 2026-11-23).
"""

from __future__ import annotations

import datetime as dt

from textual.events import Key

from devicelog import services
from devicelog.clinic.records import PatientIn
from devicelog.store import tables
from devicelog.store.db import read_session, write_session
from sqlmodel import select

from tests.conftest import TODAY
from tests.test_tui import SIZE, clinic, events, make, open_device, settle  # noqa: F401 - clinic: a fixture


def type_at_once(app, text: str) -> None:
    """Queue every key of ``text`` at once, as a terminal delivers keys typed quickly: no
    key waits for the screen to handle the one before (``pilot.press`` waits for idle
    after each key)."""
    for ch in text:
        key = {".": "full_stop", " ": "space"}.get(ch, ch)
        app.post_message(Key(key, ch))


# ----------------------------------------------------------------------------- item 2


async def test_keys_typed_as_the_refill_form_opens_reach_its_first_field_in_order(clinic):
    """``r`` and the residual typed at once, no pause: every key lands in the field the
    form opens on (volume withdrawn), in order; before, the keys that came before the
    form moved its cursor went into the date field ("34.5" became ".5")."""
    from devicelog.tui.screens.visit import VisitScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await open_device(pilot, "NGP200")
        type_at_once(app, "r34.5")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, VisitScreen)
        assert form.rows["volume_withdrawn_ml"].raw == "34.5"
        assert form.rows["occurred_on"].raw == "2026-11-23"  # untouched
        assert form.focused is form.rows["volume_withdrawn_ml"].control
        # Typed, so leaving would ask first, and the preview reads it: 40 mL on 2026-08-01
        # at 3 mg/day ÷ 10 mg/mL = 0.3 mL/day; 114 days to 2026-11-23: 40 − 34.2 = 5.8 mL.
        assert form.dirty and form.rows["volume_withdrawn_ml"].touched
        assert "Expected residual 5.8 mL" in str(form.query_one("#preview").render())
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, VisitScreen)
    refills = [r for r in events(clinic, "NGP200") if r.kind == "refill"]
    assert len(refills) == 2
    assert refills[-1].data["volume_withdrawn_ml"] == 34.5


# ----------------------------------------------------------------------------- item 14


class HeldSearch:
    """Holds back the TUI's search for one text until released (a gate, not a timer), so
    the list on screen is still an older text's when the nurse presses Enter."""

    def __init__(self, monkeypatch, held_text: str):
        import threading

        from devicelog.tui import state

        self.gate = threading.Event()
        real = state.search

        def search(engine, text, **kwargs):
            if text == held_text:
                self.gate.wait(60)  # a safety: a failed test must not hang the run
            return real(engine, text, **kwargs)

        monkeypatch.setattr(state, "search", search)


async def back_to_search(pilot, text: str) -> None:
    """Clear the search box and put ``text`` in at once (as a scanner or a paste does:
    one search, for the whole text)."""
    box = pilot.app.screen.query_one("#search")
    box.focus()
    box.value = ""
    await settle(pilot)
    box.insert_text_at_cursor(text)


async def test_after_f5_enter_on_a_list_not_yet_searched_opens_nothing_then_the_right_device(clinic, monkeypatch):
    """Issue 13.14, seen once: after F5, a search then Down and Enter opened the device
    viewed before.  The list still showed the older text's rows (the device viewed
    before first) while the search for the new text ran; Enter acted on it.  Now Enter
    on that list opens nothing and says so; once the list is the new text's, Enter
    opens its device."""
    from devicelog.tui.screens.device import DeviceScreen
    from devicelog.tui.screens.main import MainScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await open_device(pilot, "NGP100")  # the patient viewed before: Ann Lee
        await pilot.press("escape")
        await settle(pilot)
        main = app.screen
        held = HeldSearch(monkeypatch, "NGP200")
        await pilot.press("f5")
        await settle(pilot)
        await back_to_search(pilot, "NGP200")
        await pilot.pause()
        table = main.query_one("#patients")
        assert str(table.get_row_at(0)[3]) == "NGP100"  # still the older list
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)  # not NGP100 (the old code opened it)
        assert table.has_class("outdated")  # shown dimmed
        held.gate.set()
        await settle(pilot)
        assert [str(table.get_row_at(i)[3]) for i in range(table.row_count)] == ["NGP200"]
        assert not table.has_class("outdated")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DeviceScreen) and app.screen.history.device.serial == "NGP200"


async def test_enter_in_the_search_box_opens_the_first_match_once_it_is_shown(clinic, monkeypatch):
    """Enter typed straight after the text (as a scanner sends it) opens the first match of
    that text, even when its search comes back after the Enter; before, Enter only moved
    to the list."""
    from devicelog.tui.screens.device import DeviceScreen
    from devicelog.tui.screens.main import MainScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        held = HeldSearch(monkeypatch, "ston")
        await pilot.press(*"ston", "enter")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        held.gate.set()
        await settle(pilot)
        assert isinstance(app.screen, DeviceScreen) and app.screen.history.device.serial == "NGP200"
        await pilot.press("escape")
        await settle(pilot)
        await back_to_search(pilot, "lee")  # results shown first, then Enter
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DeviceScreen) and app.screen.history.device.serial == "NGP100"


async def test_a_reload_of_the_same_search_keeps_the_cursor_on_its_row(clinic):
    """F5 reads the list again: the highlighted row stays the one the nurse chose, and
    Enter opens what is highlighted (the row's own key, not its position)."""
    from devicelog.tui.screens.device import DeviceScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        main = app.screen
        with write_session(clinic) as s:  # sorts first (by name): rows move down by one
            services.add_patient(session=s, patient=PatientIn(mrn="MRN000", name="Aaron Abel", birth_date=dt.date(1961, 4, 5)),
                                 author="rn", today=TODAY)
        await pilot.press("down", "down")  # Bob Stone, NGP200
        assert main.selected[0].mrn == "MRN002"
        await pilot.press("f5")
        await settle(pilot)
        table = main.query_one("#patients")
        assert str(table.get_row_at(0)[0]) == "MRN000" and main.selected[0].mrn == "MRN002"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DeviceScreen) and app.screen.history.device.serial == "NGP200"


# ----------------------------------------------------------------------------- item 7

#: Two demo pumps, not real products: their device identifiers are GS1 Restricted
#: Circulation Numbers (prefix 020, never given to a product on the market) with valid
#: check digits (biip reads them).  The shipped catalogue lists no identifier: none of
#: the real models' could be checked against a public source.
DEMO_DI_20 = "00200000000202"
DEMO_DI_40 = "00200000000400"


def seed_demo_pumps(engine) -> None:
    from devicelog.clinic.catalogue import Catalogue, DeviceModel, shipped_catalogue
    from devicelog.store import schema

    base = shipped_catalogue().device_model("synchromed-ii-20").model_dump()
    demo = [
        DeviceModel.model_validate({**base, "code": f"demo-pump-{ml}", "maker": "DEMO (not a real product)",
                                    "model": f"Demo pump {ml} mL", "reservoir_ml": ml, "device_identifiers": [di],
                                    "source": "test fixture"})
        for ml, di in ((20, DEMO_DI_20), (40, DEMO_DI_40))
    ]
    with write_session(engine) as s:
        schema.seed_catalogue(s, Catalogue(device_models=demo, drugs=[]))


async def register_patient(pilot, mrn: str):
    from devicelog.tui.screens.register import DeviceRegisterScreen
    from tests.test_tui import type_into

    await settle(pilot)
    await pilot.press("f2")
    await settle(pilot)
    form = pilot.app.screen
    await type_into(pilot, form.rows["mrn"], mrn)
    await type_into(pilot, form.rows["name"], "Eve Hart")
    await type_into(pilot, form.rows["birth_date"], "1961-04-05")
    await pilot.press("ctrl+s")
    await settle(pilot)
    dev = pilot.app.screen
    assert isinstance(dev, DeviceRegisterScreen) and dev.rows["patient_mrn"].raw == mrn
    return dev


async def test_after_f2_a_scan_lands_in_the_udi_field_and_chooses_the_model(clinic):
    """Issue 13.7: the device form opened on the prefilled MRN, and a scan overwrote it.
    Now the cursor starts in the UDI field (the first, as the title says), and a device
    identifier the catalogue lists chooses its model."""
    from devicelog.tui.screens.register import DeviceRegisterScreen

    seed_demo_pumps(clinic)
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        dev = await register_patient(pilot, "MRN777")
        assert dev.focused is dev.rows["udi"].control
        await pilot.press(*f"(01){DEMO_DI_40}(21)DEMO40A")  # the scanner, typing at once
        await settle(pilot)
        assert dev.rows["patient_mrn"].raw == "MRN777"
        assert dev.rows["model"].raw == "demo-pump-40" and dev.rows["serial"].raw == "DEMO40A"
        assert "Model DEMO (not a real product) Demo pump 40 mL: chosen from its device identifier" in str(
            dev.query_one("#preview").render())
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, DeviceRegisterScreen)
    with read_session(clinic) as s:
        device = s.exec(select(tables.Device).where(tables.Device.serial == "DEMO40A")).one()
        patient = s.get(tables.Patient, device.patient_id)
    assert (patient.mrn, device.model_code, device.udi_di) == ("MRN777", "demo-pump-40", DEMO_DI_40)


async def test_a_scanned_identifier_of_another_model_is_refused_with_both_named(clinic):
    """A 40 mL pump's identifier on the 20 mL model the nurse chose: refused (the refill
    arithmetic depends on the reservoir), both models named; nothing saved."""
    from devicelog.tui.screens.register import DeviceRegisterScreen

    seed_demo_pumps(clinic)
    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        dev = await register_patient(pilot, "MRN778")
        dev.rows["model"].control.value = "demo-pump-20"  # chosen by the nurse first
        await settle(pilot)
        dev.rows["udi"].control.focus()
        await pilot.press(*f"(01){DEMO_DI_40}(21)DEMO40B")
        await settle(pilot)
        assert dev.rows["model"].raw == "demo-pump-20"  # the nurse's choice is not overridden
        assert "REFUSED" in str(dev.query_one("#preview").render())
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, DeviceRegisterScreen)
        problem = str(dev.rows["udi"].query_one(".problem").render())
        assert DEMO_DI_40 in problem and "Demo pump 40 mL" in problem and "Demo pump 20 mL" in problem
    with read_session(clinic) as s:
        assert s.exec(select(tables.Device).where(tables.Device.serial == "DEMO40B")).first() is None


def test_the_store_refuses_an_identifier_of_another_model(clinic):
    """The same rule where every device is added (CLI, import): services.add_device."""
    import pytest

    from devicelog.clinic.records import DeviceIn
    from devicelog.services import InputError
    from tests.conftest import TODAY

    seed_demo_pumps(clinic)
    device = DeviceIn(patient_mrn="MRN004", model="demo-pump-20", serial="DEMO40C", implanted_on=TODAY,
                      udi={"raw": f"(01){DEMO_DI_40}(21)DEMO40C", "device_identifier": DEMO_DI_40, "serial": "DEMO40C"})
    with pytest.raises(InputError) as refused, write_session(clinic) as s:
        services.add_device(session=s, device=device, author="rn", today=TODAY)
    [problem] = refused.value.problems
    assert problem.field == "udi.device_identifier" and "Demo pump 40 mL" in problem.message
    with write_session(clinic) as s:  # the right model is taken
        services.add_device(session=s, device=device.model_copy(update={"model": "demo-pump-40"}), author="rn", today=TODAY)
