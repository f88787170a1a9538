"""The due list as iCalendar: read back with icalendar; UIDs stay put across exports."""

from __future__ import annotations

import datetime as dt

import pytest
from icalendar import Calendar

from devicelog import services
from devicelog.clinic.records import DrugConcentration, EventIn, PumpProgram, RefillData
from devicelog.reports.due_ics import base_uid, render_ics, uids
from devicelog.store.db import write_session
from tests.test_due_clinic import AS_OF, D, clinic, load  # noqa: F401  (fixture)

T1 = dt.datetime(2026, 11, 23, 8, 30, tzinfo=dt.timezone.utc)
T2 = dt.datetime(2026, 11, 23, 16, 0, tzinfo=dt.timezone.utc)


def events(data: bytes):
    cal = Calendar.from_ical(data)
    return cal, [c for c in cal.walk("VEVENT")]


def test_one_all_day_event_per_item_with_a_reminder(clinic):  # noqa: F811
    dl = load(clinic, within_days=90)
    cal, evs = events(render_ics(dl, reminder_days=7, generated_at=T1))
    assert str(cal["method"]) == "PUBLISH"
    assert len(evs) == len(dl.items)
    for ev, item in zip(evs, dl.items):
        start, end = ev["dtstart"].dt, ev["dtend"].dt
        assert type(start) is dt.date and start == item.due_on
        assert end == item.due_on + dt.timedelta(days=1)
        assert str(ev["summary"]) == f"{item.what}: {item.patient_name} ({item.patient_mrn})"
        assert item.why in str(ev["description"])
        (alarm,) = ev.walk("VALARM")
        assert str(alarm["action"]) == "DISPLAY"
        assert alarm["trigger"].dt == -dt.timedelta(days=7)
        assert ev["dtstamp"].dt == T1
    uid_list = [str(ev["uid"]) for ev in evs]
    assert len(set(uid_list)) == len(uid_list)
    refill = next(ev for ev in evs if "Pump refill: Ann Lee" in str(ev["summary"]))
    assert str(refill["uid"]) == base_uid("NGP100", "refill")
    assert refill["dtstart"].dt == D(2027, 1, 23)


def test_reminder_days_follow_the_setting(clinic):  # noqa: F811
    _, evs = events(render_ics(load(clinic, within_days=7), reminder_days=3, generated_at=T1))
    assert {ev.walk("VALARM")[0]["trigger"].dt for ev in evs} == {-dt.timedelta(days=3)}


def test_a_newer_export_after_a_refill_updates_the_event_instead_of_adding_one(clinic):  # noqa: F811
    first = {str(ev["uid"]): ev for ev in events(render_ics(load(clinic, within_days=90), reminder_days=7, generated_at=T1))[1]}
    # Ann's pump is refilled today at a higher dose: 4 mg/day ÷ 10 mg/mL = 0.4 mL/day;
    # (20 − 2 mL) / 0.4 = 45 days → alarm 2027-01-07; − 7 days → refill due 2026-12-31
    # (morphine stability would allow 2027-02-21).  Residual measured as expected:
    # 20 − 0.2 × 22 days = 15.6 mL withdrawn, then 20 mL added.
    with write_session(clinic) as s:
        services.record_event(
            session=s,
            event=EventIn(
                device_serial="NGP100",
                occurred_on=AS_OF,
                author="rn",
                data=RefillData(
                    volume_withdrawn_ml=15.6,
                    volume_added_ml=20.0,
                    reservoir_volume_after_ml=20.0,
                    program=PumpProgram(
                        drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=10)], dose_mg_per_day=4
                    ),
                ),
            ),
            today=AS_OF,
        )
    second_list = load(clinic, within_days=90)
    second = {str(ev["uid"]): ev for ev in events(render_ics(second_list, reminder_days=7, generated_at=T2))[1]}
    uid = base_uid("NGP100", "refill")
    assert first[uid]["dtstart"].dt == D(2027, 1, 23)
    assert second[uid]["dtstart"].dt == D(2026, 12, 31)
    assert int(second[uid]["sequence"]) > int(first[uid]["sequence"])
    assert second[uid]["dtstamp"].dt == T2
    # Every other task keeps its UID; the refill did not add a second refill event.
    assert set(first) == set(second)
    assert sum(1 for ev in second.values() if str(ev["summary"]).startswith("Pump refill: Ann Lee")) == 1


def test_same_task_twice_in_one_export_gets_distinct_uids(clinic):  # noqa: F811
    from dataclasses import replace

    dl = load(clinic, within_days=90)
    item = next(i for i in dl.items if i.code == "wound_check_day_10" and i.device_serial == "SCS300")
    older = replace(item, source_event_id=5)
    newer = replace(item, source_event_id=9, due_on=item.due_on + dt.timedelta(days=40))
    got = uids([newer, older])
    assert got[older.key] == base_uid("SCS300", "wound_check_day_10")
    assert got[newer.key] == base_uid("SCS300", "wound_check_day_10", 9)


def test_naive_export_time_is_refused(clinic):  # noqa: F811
    with pytest.raises(ValueError, match="time-zone aware"):
        render_ics(load(clinic, within_days=7), reminder_days=7, generated_at=dt.datetime(2026, 11, 23))


def test_streamed_calendar_is_the_one_calendar_bytes(clinic):  # noqa: F811
    """render_ics writes each event on its own; the bytes are those of one Calendar
    holding them all (empty list included)."""
    from icalendar import Calendar as Cal

    from devicelog.reports import due_ics

    for dl in (load(clinic, within_days=90), load(clinic, within_days=0, as_of=D(2020, 1, 1))):
        got = render_ics(dl, reminder_days=7, generated_at=T1)
        cal = Cal.from_ical(got)  # parse the header back, then rebuild the whole thing in one Calendar
        whole = Cal()
        for key in ("prodid", "version", "calscale", "method", "x-wr-calname"):
            whole.add(key, cal[key])
        by_key = uids(dl.items)
        for e in dl.entries:
            whole.add_component(due_ics._event(e, dl, by_key[e.item.key], T1, due_ics.sequence(T1), 7))
        assert got == whole.to_ical()


def test_hostile_names_reach_the_calendar_as_visible_marks(clinic):  # noqa: F811
    """ESC, BEL and OSC 52 in a name, serial or why: no control byte in the file (but
    the CRLF line ends), each shown as its control picture (␛ U+241B, ␇ U+2407)."""
    from dataclasses import replace

    from devicelog.store.due import DueEntry

    dl = load(clinic, within_days=90)
    osc52, clear = "\x1b]52;c;ZXZpbA==\x07Bob", "Eve\x1b[2J Park"
    bad = replace(
        dl,
        entries=tuple(
            DueEntry(replace(e.item, patient_name=osc52, device_serial=clear, why=e.item.why + clear), e.status)
            for e in dl.entries
        ),
    )
    data = render_ics(bad, reminder_days=7, generated_at=T1)
    assert not any(b < 32 and b not in (10, 13) for b in data)
    _, evs = events(data)
    assert len(evs) == len(dl.entries)
    for ev in evs:
        assert ": ␛]52;c;ZXZpbA==␇Bob (" in str(ev["summary"])
        assert "SN Eve␛[2J Park" in str(ev["description"])
