"""Text from the database never acts on the terminal it is shown on (issue 19, section 2).

The clinic of ``tests.hostile_data`` holds, in the patient's name and MRN, the pump's
serial, site and model, the drug's name, an author, a pocket-fill reason, a wound site
and an amendment reason: a clear-screen sequence, an OSC 0 window title, an OSC 52
clipboard write, BEL, an 8-bit CSI (U+009B), a right-to-left override and Rich markup.
Every text output and every TUI screen must show it as ``tests.hostile_data.SHOWN``
(``␛[2J␛]0;owned␇…<U+009B>31m<U+202E>[red]x[/red]``) and write none of it raw; JSON
keeps the exact text, escaped (history, mri, export and fhir on standard output).
"""

from __future__ import annotations

import html
import json
import re

import pytest

from devicelog import cli
from devicelog.settings import Settings
from tests.conftest import TODAY
from tests.hostile_data import HOSTILE, MRN, MRN_SHOWN, NAME, SERIAL, SERIAL_SHOWN, SHOWN, make_hostile_clinic

#: What a terminal acts on: ESC, BEL, the 8-bit CSI; and the right-to-left override.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
SIZE = (240, 50)


def raw_controls(text: str) -> list[str]:
    return RAW.findall(text)


@pytest.fixture
def hostile(engine):
    ids = make_hostile_clinic(engine)
    return engine, ids


def url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def run_cli(engine, capsys, *args) -> str:
    code = cli.main(["--db", url(engine), *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert not raw_controls(out.err)
    return out.out


# ----------------------------------------------------------------------------- command line


def test_history_text_shows_every_control_character(hostile, capsys):
    engine, _ = hostile
    out = run_cli(engine, capsys, "history", SERIAL, "--as-of", TODAY.isoformat())
    assert raw_controls(out) == []
    assert "\x1b]52" not in out
    assert f"DEVICE HISTORY — Zoe {SHOWN} Silva (MRN {MRN_SHOWN})" in out
    for shown in (
        f"{SERIAL_SHOWN}  Medtronic SynchroMed {SHOWN}",  # serial and catalogue model
        f"site: abdomen {SHOWN}",
        f"by rn{SHOWN}: withdrawn",  # author
        f"pocket-fill reason: why {SHOWN}",
        f"site belly {SHOWN}",  # the original of the amended wound check
        f"(wrong {SHOWN})",  # the amendment's reason
        f"Daily dose, Morphine {SHOWN} (mg/day)",  # the drug's catalogue name
    ):
        assert shown in out, shown


def test_history_json_keeps_the_exact_text_escaped(hostile, capsys):
    engine, _ = hostile
    for args in ((), ("--kind", "wound_check")):  # the kind filter writes the JSON again
        out = run_cli(engine, capsys, "history", SERIAL, "--format", "json", "--as-of", TODAY.isoformat(), *args)
        assert raw_controls(out) == []
        assert "\\u001b]52;c;" in out and "\\u009b31m" in out and "\\u202e" in out
        data = json.loads(out)
        assert data["patient_name"] == NAME and data["patient_mrn"] == MRN
        assert data["devices"][0]["serial"] == SERIAL
        assert {e["author"] for e in data["timeline"]} >= {f"rn{HOSTILE}"}


def test_mri_checklist_text_and_json(hostile, capsys):
    engine, _ = hostile
    out = run_cli(engine, capsys, "mri", SERIAL, "--as-of", TODAY.isoformat())
    assert raw_controls(out) == []
    assert f"MRI checklist (rule 13) · {MRN_SHOWN} Zoe {SHOWN} Silva" in out
    assert f"it delivers Morphine {SHOWN} 10 mg/mL" in out
    out = run_cli(engine, capsys, "mri", SERIAL, "--format", "json", "--as-of", TODAY.isoformat())
    assert raw_controls(out) == []
    data = json.loads(out)  # the exact text, once decoded
    assert data["patient_name"] == NAME and data["patient_mrn"] == MRN


def test_export_and_fhir_on_standard_output_keep_the_text_escaped(hostile, capsys):
    engine, _ = hostile
    out = run_cli(engine, capsys, "export")
    assert raw_controls(out) == [] and "\\u009b31m\\u202e" in out
    assert {p["name"] for p in json.loads(out)["patients"]} >= {NAME}
    out = run_cli(engine, capsys, "fhir")
    assert raw_controls(out) == [] and "\\u009b31m\\u202e" in out
    names = [e["resource"]["name"][0]["text"] for e in json.loads(out)["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert NAME in names  # the exact text, once decoded


def test_a_refusal_quoting_stored_text_shows_it():
    from devicelog.problems import InputError, Problem

    problem = Problem("device_serial", None, f"device {SERIAL} is explanted; log on its successor")
    assert raw_controls(str(problem)) == []
    assert f"device {SERIAL_SHOWN} is explanted" in str(problem)
    assert raw_controls(str(InputError([problem]))) == []


# ----------------------------------------------------------------------------- the TUI


def screen_text(app) -> str:
    """The text on the screen as the SVG screenshot holds it (markup already rendered)."""
    svg = app.export_screenshot()
    assert raw_controls(svg) == [], "a control character from the data reached the screen"
    return html.unescape("".join(re.findall(r"<text[^>]*>([^<]*)</text>", svg))).replace("\xa0", " ")


async def settle(pilot):
    for _ in range(5):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def make(engine):
    from devicelog.tui.app import make_app

    return make_app(engine, Settings(), TODAY, "nurse")


async def open_pump(pilot, engine, ids):
    from devicelog.tui.screens.device import DeviceScreen, open_device

    open_device(pilot.app.screen, ids["pump"], pump=True)
    await settle(pilot)
    assert isinstance(pilot.app.screen, DeviceScreen)
    return pilot.app.screen


async def test_search_results_and_warnings_show_the_name_as_typed(hostile):
    engine, _ = hostile
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"zoe")
        await settle(pilot)
        shown = screen_text(app)
        assert f"{MRN_SHOWN}" in shown and f"Zoe {SHOWN} Silva" in shown  # the result row, markup shown as typed
        assert f"OVERDUE {MRN_SHOWN} Zoe" in shown  # the warnings above it


async def test_device_screen_shows_the_record_as_typed(hostile):
    engine, ids = hostile
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_pump(pilot, engine, ids)
        shown = screen_text(app)
        assert f"Zoe {SHOWN} Silva" in shown
        assert f"serial {SERIAL_SHOWN}" in shown
        await pilot.press("e")  # recent entries: authors and summaries
        await settle(pilot)
        assert f"belly {SHOWN}, erythema 0 cm" in screen_text(app)  # the wound site, in the summary
        table = screen.query_one("#events")
        authors = {str(table.get_row_at(i)[3]) for i in range(table.row_count)}
        assert {f"rn{SHOWN}", f"dr{SHOWN}"} <= authors


async def test_history_screen_every_tab(hostile):
    from devicelog.tui.screens.history import HistoryScreen

    engine, ids = hostile
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.push_screen(HistoryScreen(ids["pump"]))
        await settle(pilot)
        shown = screen_text(app)
        assert f"Zoe {SHOWN} Silva" in shown and f"{SERIAL_SHOWN}  Medtronic SynchroMed {SHOWN}" in shown  # the title
        assert f"site flank {SHOWN}, erythema" in shown  # the timeline
        timeline = app.screen.query_one("#timeline")
        timeline.move_cursor(row=timeline.row_count - 1)  # the amendment of the wound check
        await settle(pilot)
        assert f"by dr{SHOWN} (wrong {SHOWN})" in screen_text(app)  # in full, in the detail under the table
        await pilot.press("p")
        await settle(pilot)
        screen_text(app)
        programming = app.screen.query_one("#programming")
        assert str(programming.get_row_at(0)[1]) == f"{SERIAL_SHOWN}"  # a DataTable str cell was markup
        for tab, expected in (("l", f"mL{SHOWN}"), ("g", f"Daily dose, Morphine {SHOWN} (mg/day)")):
            await pilot.press(tab)
            await settle(pilot)
            assert expected in screen_text(app).replace("morphine 10 mg/mLrn", "mL"), tab


async def test_visit_form_title(hostile):
    from devicelog.clinic.records import EventKind
    from devicelog.tui.screens.visit import VisitScreen

    engine, ids = hostile
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_pump(pilot, engine, ids)
        app.push_screen(VisitScreen(screen.history, EventKind.refill))
        await settle(pilot)
        # The form's title was a markup string: "[red]x[/red]" turned red and lost its tags.
        assert f"Refill · {MRN_SHOWN} Zoe {SHOWN} Silva · Medtronic SynchroMed" in screen_text(app)


async def test_mri_screen(hostile):
    from devicelog.tui.screens.mri import MriScreen

    engine, ids = hostile
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = await open_pump(pilot, engine, ids)
        app.push_screen(MriScreen(screen.history, TODAY))
        await settle(pilot)
        shown = screen_text(app)
        assert f"{MRN_SHOWN} Zoe {SHOWN} Silva" in shown
        assert f"it delivers Morphine {SHOWN} 10 mg/mL" in shown


async def test_due_screen(hostile):
    from devicelog.tui.screens.due import DueScreen

    engine, _ = hostile
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        assert isinstance(app.screen, DueScreen)
        shown = screen_text(app)
        assert f"{MRN_SHOWN} Zoe {SHOWN} Silva" in shown  # a DataTable str cell was markup
        assert f"{SERIAL_SHOWN}" in shown


def test_shown_keeps_the_styles_around_a_longer_mark():
    from rich.text import Text

    from devicelog.tui.format import plain, shown

    text = Text("MRN ")
    text.append("A\x9bB", style="bold")  # the 8-bit CSI becomes "<U+009B>", 8 characters
    text.append(" ok", style="red")
    out = shown(text)
    assert out.plain == "MRN A<U+009B>B ok"
    assert [(s.start, s.end, str(s.style)) for s in out.spans] == [(4, 14, "bold"), (14, 17, "red")]
    plain_text = Text("nothing to show")
    assert shown(plain_text) is plain_text
    assert plain("[red]x[/red]\n").plain == "[red]x[/red]␊"  # never markup, one line
