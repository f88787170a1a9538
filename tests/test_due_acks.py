"""Issue 14.2: acknowledging and snoozing due items, and their coming back.

The clinic is ``tests.test_due_clinic``'s five patients (as of 2026-11-23), with:

- SCS300 (implanted 2026-11-13) interrogated on 2026-11-20 with contact E2 at
  5,200 Ω (open: > 4,000 Ω, rule 18): the impedance item is due 2026-11-20 + 7 days
  (``noncritical_alarm_days``) = 2026-11-27, latest safe date the same day.
- NGP100, refilled 2026-11-01 to 20.0 mL, morphine 10 mg/mL at 2 mg/day:
  2 ÷ 10 = 0.200 mL/day; (20.0 − 2.0 mL low alarm) ÷ 0.200 = 90 days → alarm
  2026-11-01 + 90 = 2027-01-30; refill due 2027-01-30 − 7 days margin = 2027-01-23;
  latest safe date min(alarm 2027-01-30, morphine stability 2026-11-01 + 90 days =
  2027-01-30) = 2027-01-30.
- PNS500 (implanted 2026-10-01) with a wound check on 2026-11-22 finding purulent
  drainage: the critical "Wound escalation: same-day review", due 2026-11-22.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select, text

from devicelog import cli, services
from devicelog.clinic.acks import Ack, fingerprint, hides, in_force, snooze_refusals
from devicelog.clinic.records import ContactImpedance, Drainage, EventIn, InterrogationData, WoundCheckData
from devicelog.problems import InputError
from devicelog.settings import Settings
from devicelog.store import acks, audit
from devicelog.store.db import read_session, write_session
from devicelog.store.due import clinic_warnings, due_list, hidden_warnings
from tests.conftest import TODAY, recorded_author, user_args
from tests.test_due_clinic import build_clinic
from tests.test_transfer import other_engine  # noqa: F401  (fixture)

D = dt.date
REASON = "E2 programmed off, impedance accepted"


def record(engine, serial: str, on: dt.date, data) -> None:
    with write_session(engine) as s:
        services.record_event(session=s, event=EventIn(device_serial=serial, occurred_on=on, author="rn", data=data),
                              today=TODAY)


def high_impedance(ohm: float = 5200) -> InterrogationData:
    return InterrogationData(impedances=[ContactImpedance(contact="E1", impedance_ohm=800),
                                         ContactImpedance(contact="E2", impedance_ohm=ohm)])


@pytest.fixture
def clinic(engine):
    build_clinic(engine)
    record(engine, "SCS300", D(2026, 11, 20), high_impedance())
    record(engine, "PNS500", D(2026, 11, 22), WoundCheckData(drainage=Drainage.purulent))
    return engine


def listed(engine, as_of: dt.date = TODAY, **kw):
    with read_session(engine) as s:
        return due_list(s, as_of=as_of, settings=Settings(), **kw)


def item_of(engine, serial: str, code: str, as_of: dt.date = TODAY):
    dl = listed(engine, as_of, show_acknowledged=True)
    found = [e.item for e in dl.entries if e.item.device_serial == serial and e.item.code == code]
    assert len(found) == 1, [(e.item.device_serial, e.item.code) for e in dl.entries]
    return found[0]


def counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(acks.due_ack)).scalar(),
                conn.execute(text("SELECT count(*) FROM audit")).scalar())


def ack(engine, key: str, reason: str = REASON, author: str = "rn.kim") -> int:
    with write_session(engine) as s:
        return services.acknowledge_item(session=s, item_key=key, reason=reason, author=author, settings=Settings())


def snooze(engine, key: str, until: dt.date, reason: str = "patient away", today: dt.date = TODAY) -> int:
    with write_session(engine) as s:
        return services.snooze_item(session=s, item_key=key, until=until, reason=reason, author="rn.kim", today=today,
                                    settings=Settings())


# ----------------------------------------------------------------------------- the rules (pure)


def test_the_hand_worked_items_of_the_clinic(clinic):
    imp = item_of(clinic, "SCS300", "impedance")
    assert (imp.due_on, imp.latest_safe_on, imp.severity) == (D(2026, 11, 27), D(2026, 11, 27), "high")
    refill = item_of(clinic, "NGP100", "refill")
    assert (refill.due_on, refill.latest_safe_on) == (D(2027, 1, 23), D(2027, 1, 30))
    esc = item_of(clinic, "PNS500", "wound_escalation")
    assert (esc.due_on, esc.severity) == (D(2026, 11, 22), "critical")


def test_snooze_refusals_name_the_field_and_value(clinic):
    imp = item_of(clinic, "SCS300", "impedance")
    assert snooze_refusals(imp, D(2026, 11, 27), TODAY) == []  # the latest safe date itself is allowed
    assert snooze_refusals(imp, D(2026, 11, 28), TODAY) == [
        ("until", "2026-11-28", "is past the item's latest safe date (2026-11-27)")]
    assert [r[0] for r in snooze_refusals(imp, TODAY, TODAY)] == ["until"]  # not after today
    esc = item_of(clinic, "PNS500", "wound_escalation")
    assert [(r[0], r[1]) for r in snooze_refusals(esc, D(2026, 11, 24), TODAY)] == [("item", esc.key)]
    refill = item_of(clinic, "NGP100", "refill")
    # 2027-01-30 is within the latest safe date but is the alarm day itself: refused;
    # the day before (2027-01-29) is the latest a refill can be snoozed to.
    assert snooze_refusals(refill, D(2027, 1, 29), TODAY, alarm_on=D(2027, 1, 30)) == []
    assert [r[0] for r in snooze_refusals(refill, D(2027, 1, 30), TODAY, alarm_on=D(2027, 1, 30))] == ["until"]


def test_a_snooze_hides_up_to_the_day_before_its_date_and_the_newest_record_decides(clinic):
    imp = item_of(clinic, "SCS300", "impedance")
    at = dt.datetime(2026, 11, 23, 9, tzinfo=dt.timezone.utc)
    snoozed = Ack(2, imp.device_id, imp.key, fingerprint(imp), "snooze", "away", "rn", at, until=D(2026, 11, 25))
    assert hides(snoozed, imp, D(2026, 11, 24)) and not hides(snoozed, imp, D(2026, 11, 25))
    acked = Ack(1, imp.device_id, imp.key, fingerprint(imp), "acknowledge", REASON, "rn", at)
    withdrawn = Ack(3, imp.device_id, imp.key, fingerprint(imp), "withdraw", "wrong item", "rn", at, withdraws_id=2)
    assert in_force([snoozed, acked]) == {imp.key: snoozed}
    assert in_force([acked, snoozed, withdrawn]) == {}
    # Another why (another reading) is another fingerprint: the record no longer applies.
    from dataclasses import replace

    assert not hides(acked, replace(imp, why=imp.why + " (re-read)"), TODAY)


# ----------------------------------------------------------------------------- acknowledging


def test_an_acknowledged_item_leaves_the_active_list_and_stays_reachable(clinic):
    imp = item_of(clinic, "SCS300", "impedance")
    assert imp.key in [e.item.key for e in listed(clinic).entries]
    record_id = ack(clinic, imp.key)

    dl = listed(clinic)
    assert imp.key not in [e.item.key for e in dl.entries]
    assert [(e.item.key, e.ack.id, e.ack.reason) for e in dl.hidden] == [(imp.key, record_id, REASON)]
    assert dl.hidden_counts() == (1, 0)
    assert dl.hidden_text().startswith("1 acknowledged item not listed")
    shown = listed(clinic, show_acknowledged=True)
    marked = [e for e in shown.entries if e.item.key == imp.key]
    assert len(marked) == 1 and marked[0].ack.author == "rn.kim"

    with clinic.connect() as conn:
        row = conn.execute(select(acks.due_ack)).one()._mapping
        assert (row["item_key"], row["kind"], row["reason"], row["author"]) == (imp.key, "acknowledge", REASON, "rn.kim")
        assert row["fingerprint"] == fingerprint(imp)
        entry = conn.execute(text("SELECT author, action FROM audit ORDER BY id DESC LIMIT 1")).one()
    assert tuple(entry) == ("rn.kim", f"acknowledge due item {imp.key}")
    assert audit.verify(clinic).problems == []
    # The privacy officer's view of Cara Diaz (MRN0003, SCS300) shows the acknowledgement.
    with clinic.connect() as conn:
        trail = list(audit.trail(conn, patient_mrn="MRN0003"))
    assert trail[-1].action == f"acknowledge due item {imp.key}" and trail[-1].changes == [f"due_ack {record_id}"]


def test_warnings_do_not_count_an_acknowledged_overdue_item_but_say_it_is_there(clinic):
    # As of 2026-11-30 the impedance item (due 2026-11-27) is overdue by 3 days.
    later = D(2026, 11, 30)
    imp = item_of(clinic, "SCS300", "impedance", later)
    with read_session(clinic) as s:
        rows, total = clinic_warnings(s, as_of=later, settings=Settings())
    assert imp.key in [i.key for i, _ in rows]
    ack(clinic, imp.key)
    with read_session(clinic) as s:
        rows2, total2 = clinic_warnings(s, as_of=later, settings=Settings())
        hidden = hidden_warnings(s, as_of=later, settings=Settings())
    assert imp.key not in [i.key for i, _ in rows2]
    assert total2 == total - 1
    assert list(hidden) == [imp.key]


def test_a_new_interrogation_with_the_impedance_still_high_brings_the_item_back(clinic):
    imp = item_of(clinic, "SCS300", "impedance")
    ack(clinic, imp.key)
    assert imp.key not in [e.item.key for e in listed(clinic).entries]
    # A new reading on 2026-11-23, E2 still open at 5,300 Ω: a new item, due
    # 2026-11-23 + 7 = 2026-11-30, and it is active.
    record(clinic, "SCS300", D(2026, 11, 23), high_impedance(5300))
    back = item_of(clinic, "SCS300", "impedance")
    assert back.key != imp.key and back.due_on == D(2026, 11, 30)
    dl = listed(clinic)
    assert back.key in [e.item.key for e in dl.entries if e.ack is None]
    assert dl.hidden == ()
    # The acknowledgement stays on record, in the device's history.
    from devicelog.reports.history import load_report, render_text

    with read_session(clinic) as s:
        report = load_report(s, "SCS300", settings=Settings(), as_of=TODAY)
    assert [(a.action, a.reason, a.item_key) for a in report.acknowledgements] == [("acknowledged", REASON, imp.key)]
    assert f"acknowledged by rn.kim on " in render_text(report) and REASON in render_text(report)


def test_a_changed_why_under_the_same_key_brings_a_snoozed_refill_back(clinic):
    """The refill's key is its fill; a reprogramming changes its dates and why, not its key."""
    from tests.test_due_clinic import _refill
    from devicelog.clinic.records import ProgrammingData

    refill = item_of(clinic, "NGP100", "refill")
    snooze(clinic, refill.key, D(2027, 1, 10))
    assert refill.key not in [e.item.key for e in listed(clinic).entries]
    # Dose doubled to 4 mg/day on 2026-11-20, the pump reading 20.0 − 19 days × 0.200 =
    # 16.2 mL: 4 ÷ 10 = 0.400 mL/day; (16.2 − 2.0) ÷ 0.400 = 35.5 days, cut down to 35 →
    # alarm 2026-11-20 + 35 = 2026-12-25; refill due 2026-12-25 − 7 = 2026-12-18.
    record(clinic, "NGP100", D(2026, 11, 20),
           ProgrammingData(pump_program=_refill("morphine", 10, 4).program, reservoir_volume_ml=16.2))
    again = item_of(clinic, "NGP100", "refill")
    assert again.key == refill.key and again.why != refill.why
    assert (again.due_on, again.latest_safe_on) == (D(2026, 12, 18), D(2026, 12, 25))
    assert again.key in [e.item.key for e in listed(clinic).entries if e.ack is None]


def test_withdrawing_brings_the_item_back_and_rows_are_never_changed(clinic):
    imp = item_of(clinic, "SCS300", "impedance")
    first = ack(clinic, imp.key)
    with write_session(clinic) as s:
        services.withdraw_ack(session=s, item_key=imp.key, reason="acknowledged the wrong contact", author="dr.lee")
    assert imp.key in [e.item.key for e in listed(clinic).entries if e.ack is None]
    with clinic.connect() as conn:
        rows = conn.execute(select(acks.due_ack.c.kind, acks.due_ack.c.withdraws_id).order_by(acks.due_ack.c.id)).all()
    assert [tuple(r) for r in rows] == [("acknowledge", None), ("withdraw", first)]
    with pytest.raises(Exception, match="never"):
        with clinic.begin() as conn:
            conn.execute(text("UPDATE due_ack SET reason = 'x'"))
    with pytest.raises(Exception, match="never"):
        with clinic.begin() as conn:
            conn.execute(text("DELETE FROM due_ack"))


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "case, field, value",
    [
        ("past latest safe", "until", "2026-11-28"),
        ("critical", "item", None),
        ("refill up to its alarm", "until", "2027-01-30"),
        ("unknown item", "item", "99:impedance:1"),
        ("no reason", "reason", ""),
    ],
)
def test_refusals_name_the_field_and_leave_the_database_unchanged(clinic, case, field, value):
    before = counts(clinic)
    imp = item_of(clinic, "SCS300", "impedance")
    esc = item_of(clinic, "PNS500", "wound_escalation")
    refill = item_of(clinic, "NGP100", "refill")
    key, until, reason = {
        "past latest safe": (imp.key, D(2026, 11, 28), "away"),
        "critical": (esc.key, D(2026, 11, 24), "away"),
        "refill up to its alarm": (refill.key, D(2027, 1, 30), "away"),
        "unknown item": ("99:impedance:1", D(2026, 11, 24), "away"),
        "no reason": (imp.key, D(2026, 11, 24), ""),
    }[case]
    with pytest.raises(InputError) as refused:
        snooze(clinic, key, until, reason)
    problem = refused.value.problems[0]
    assert problem.field == field
    assert problem.value == (esc.key if value is None else value)
    if case == "refill up to its alarm":
        assert "low-reservoir alarm sounds on 2027-01-30" in problem.message
    assert counts(clinic) == before


# ----------------------------------------------------------------------------- command line


def run(engine, capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["--db", engine.url.render_as_string(hide_password=False), "due", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_ack_snooze_and_listing_with_and_without_acknowledged_items(clinic, capsys):
    code, out, _ = run(clinic, capsys, "--as-of", "2026-11-23", "--format", "json")
    items = {(i["device_serial"], i["code"]): i["item_key"] for i in json.loads(out)["items"]}
    key = items[("SCS300", "impedance")]

    code, _, err = run(clinic, capsys, "snooze", key, "--until", "2026-11-28", "--reason", "away", "--as-of", "2026-11-23")
    assert code == 1 and "--until = '2026-11-28': is past the item's latest safe date (2026-11-27)" in err
    code, _, err = run(clinic, capsys, "ack", "nope", "--reason", "x")
    assert code == 1 and "ITEM = 'nope'" in err
    assert counts(clinic)[0] == 0

    code, _, err = run(clinic, capsys, "ack", key, "--reason", REASON, *user_args("Kim Nurse"))
    assert code == 0 and "acknowledged" in err
    doc = json.loads(run(clinic, capsys, "--as-of", "2026-11-23", "--format", "json")[1])
    assert key not in [i["item_key"] for i in doc["items"]]
    assert doc["acknowledged_count"] == 1 and doc["acknowledged"][0]["item_key"] == key
    assert doc["acknowledged"][0]["acknowledged_by"] == recorded_author("Kim Nurse")
    assert doc["acknowledged"][0]["reason"] == REASON

    text_out = run(clinic, capsys, "--as-of", "2026-11-23")[1]
    assert "1 acknowledged item not listed" in text_out.replace("\n", " ")
    shown = json.loads(run(clinic, capsys, "--as-of", "2026-11-23", "--format", "json", "--show-acknowledged")[1])
    marked = [i for i in shown["items"] if i["item_key"] == key]
    assert marked[0]["status"] == "acknowledged" and REASON in marked[0]["why"]
    code, _, err = run(clinic, capsys, "--as-of", "2026-11-23", "--format", "csv")
    assert "1 acknowledged item not listed" in err

    refill = items[("NGP100", "refill")]
    code, _, err = run(clinic, capsys, "snooze", refill, "--until", "2027-01-10", "--reason", "patient abroad",
                       "--as-of", "2026-11-23")
    assert code == 0 and "snoozed until 2027-01-10" in err
    doc = json.loads(run(clinic, capsys, "--as-of", "2026-11-23", "--format", "json")[1])
    assert (doc["acknowledged_count"], doc["snoozed_count"]) == (1, 1)
    # On 2027-01-10 the snooze has run out: the refill is back.
    doc = json.loads(run(clinic, capsys, "--as-of", "2027-01-10", "--format", "json")[1])
    assert refill in [i["item_key"] for i in doc["items"]]

    code, _, err = run(clinic, capsys, "withdraw", key, "--reason", "wrong item")
    assert code == 0
    doc = json.loads(run(clinic, capsys, "--as-of", "2026-11-23", "--format", "json")[1])
    assert key in [i["item_key"] for i in doc["items"]]


# ----------------------------------------------------------------------------- the TUI


async def settle(pilot):
    for _ in range(5):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_due_screen_acknowledges_the_highlighted_item_after_a_preview(clinic, size):
    from textual.widgets import DataTable, Static

    from devicelog.tui.app import make_app
    from devicelog.tui.screens.acks import AckScreen
    from devicelog.tui.screens.due import DueScreen

    imp = item_of(clinic, "SCS300", "impedance")
    app = make_app(clinic, Settings(), TODAY, "rn.kim")
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DueScreen)
        row = [i.key for i, _ in screen.rows].index(imp.key)
        screen.query_one("#due-table", DataTable).move_cursor(row=row)
        await pilot.pause()
        # A snooze past the latest safe date is refused in the form, nothing saved.
        await pilot.press("z")
        await settle(pilot)
        assert isinstance(app.screen, AckScreen)
        await pilot.press(*"away", "enter", *"2026-11-28", "ctrl+s")
        await settle(pilot)
        assert "Snooze until '2026-11-28': is past the item's latest safe date" in str(
            app.screen.query_one("#ack-problem", Static).render())
        assert counts(clinic)[0] == 0
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press(*REASON)
        await pilot.pause()
        preview = str(app.screen.query_one("#ack-preview", Static).render())
        assert f"acknowledged by rn.kim on 2026-11-23: {REASON}" in preview
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DueScreen)
        assert imp.key not in [i.key for i, _ in app.screen.rows]
        await pilot.press("h")
        await settle(pilot)
        assert imp.key in [i.key for i, _ in app.screen.rows]
    with clinic.connect() as conn:
        rows = conn.execute(select(acks.due_ack.c.item_key, acks.due_ack.c.kind, acks.due_ack.c.reason,
                                   acks.due_ack.c.author)).all()
    assert [tuple(r) for r in rows] == [(imp.key, "acknowledge", REASON, "rn.kim")]


# ----------------------------------------------------------------------------- import / export


def test_export_import_export_carries_acknowledgements_identically(clinic, other_engine):  # noqa: F811
    from devicelog import transfer

    imp = item_of(clinic, "SCS300", "impedance")
    refill = item_of(clinic, "NGP100", "refill")
    follow = item_of(clinic, "NGP100", "follow_up")
    ack(clinic, imp.key)
    snooze(clinic, refill.key, D(2027, 1, 10))
    ack(clinic, follow.key, "seen in another clinic")
    with write_session(clinic) as s:
        services.withdraw_ack(session=s, item_key=follow.key, reason="not so: book it", author="dr.lee")
    first = transfer.export_text(clinic)
    doc = json.loads(first)
    assert [(a["ref"], a["device_serial"], a["code"], a["kind"], a.get("withdraws")) for a in doc["due_acks"]] == [
        ("a1", "SCS300", "impedance", "acknowledge", None), ("a2", "NGP100", "refill", "snooze", None),
        ("a3", "NGP100", "follow_up", "acknowledge", None), ("a4", "NGP100", "follow_up", "withdraw", "a3")]
    by_ref = {e["ref"]: e for e in doc["events"]}
    assert by_ref[doc["due_acks"][0]["source_event"]]["data"]["kind"] == "interrogation"
    assert "source_event" not in doc["due_acks"][2]  # a follow-up comes from no one event

    transfer.import_text(other_engine, first, author="someone-else", today=TODAY)
    assert transfer.export_text(other_engine) == first
    hidden = {(e.item.device_serial, e.item.code, e.ack.kind) for e in listed(other_engine).hidden}
    assert hidden == {("SCS300", "impedance", "acknowledge"), ("NGP100", "refill", "snooze")}
    assert audit.verify(other_engine).problems == []


def test_an_import_naming_an_unknown_event_or_record_is_refused(clinic, other_engine):  # noqa: F811
    from devicelog import transfer

    ack(clinic, item_of(clinic, "SCS300", "impedance").key)
    doc = json.loads(transfer.export_text(clinic))
    doc["due_acks"][0]["source_event"] = "e99999"
    doc["due_acks"].append({**doc["due_acks"][0], "ref": "a2", "kind": "withdraw", "withdraws": "a7",
                            "source_event": doc["events"][0]["ref"]})
    with pytest.raises(InputError) as refused:
        transfer.import_text(other_engine, json.dumps(doc), author="x", today=TODAY)
    paths = [(p.field, p.value) for p in refused.value.problems]
    assert ("$.due_acks[0].source_event", "e99999") in paths
    assert ("$.due_acks[1].withdraws", "a7") in paths
    with other_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(acks.due_ack)).scalar() == 0
