"""Rule 26 (issue 13 item 12): a flagged refill stays on the due list until a review is
recorded; the review is an event of its own (audited, one transaction), refused when
it names no flagged refill of the device, shown in the ledger, carried by export and
import, recorded from the CLI.

Hand-worked clinic: SynchroMed II 20 mL NGP100 implanted 2025-01-05, filled to 20.0 mL
of morphine 10 mg/mL at 2 mg/day = 0.2 mL/day.  Refill 2025-03-16, 70 days later
(Jan 26 + Feb 28 + Mar 16): 20.0 − 70 × 0.2 = 6.0 mL expected; 4.0 withdrawn:
−2.0 mL, beyond the 1.0 mL limit of a 20 mL pump → flagged (over-delivery).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select, text

from devicelog import services, transfer
from devicelog.cli import main
from devicelog.clinic.records import (
    DeviceIn,
    DrugConcentration,
    EventIn,
    InterrogationData,
    PatientIn,
    PumpProgram,
    RefillData,
)
from devicelog.services import InputError
from devicelog.settings import Settings
from devicelog.store import tables
from devicelog.store.db import read_session, write_session
from devicelog.store.due import ComputedForecasts, due_list
from tests.conftest import TODAY, recorded_author, user_args
from tests.test_transfer import other_engine  # noqa: F401  (fixture)

D = dt.date
SETTINGS = Settings()


def refill_data(withdrawn: float, **over) -> RefillData:
    values = dict(
        volume_withdrawn_ml=withdrawn,
        volume_added_ml=20.0,
        reservoir_volume_after_ml=20.0,
        program=PumpProgram(mode="simple_continuous", drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=10)], dose_mg_per_day=2,
                            bolus_ml=0.0, bolus_max_per_day=0, bolus_lockout_min=0),
    )
    values.update(over)
    return RefillData(**values)


def record(engine, serial, on, data, author="rn") -> int:
    with write_session(engine) as s:
        return services.record_event(session=s, event=EventIn(device_serial=serial, occurred_on=on, author=author, data=data),
                                     today=TODAY, settings=SETTINGS).id


@pytest.fixture
def clinic(engine):
    """NGP100 with a flagged refill (ids["flagged"]), an unflagged first fill (ids["first"]),
    and a second pump NGP200 with a refill of its own (ids["other"])."""
    with write_session(engine) as s:
        services.add_patient(session=s, patient=PatientIn(mrn="MRN001", name="Ann Lee", birth_date=D(1950, 1, 2)), author="rn", today=TODAY)
        for serial in ("NGP100", "NGP200"):
            services.add_device(session=s, device=DeviceIn(patient_mrn="MRN001", model="synchromed-ii-20", serial=serial,
                                                           implanted_on=D(2025, 1, 5)), author="rn", today=TODAY)
    ids = {
        "first": record(engine, "NGP100", D(2025, 1, 5), refill_data(0.0)),
        "flagged": record(engine, "NGP100", D(2025, 3, 16), refill_data(4.0)),
        "other": record(engine, "NGP200", D(2025, 1, 5), refill_data(0.0)),
    }
    return engine, ids


def review_items(engine, source=None):
    with read_session(engine) as s:
        dl = due_list(s, as_of=TODAY, settings=SETTINGS, source=source)
    return [(e.item.device_serial, e.item.code, e.item.source_event_id) for e in dl.entries
            if e.item.code in ("refill_discrepancy_review", "pocket_fill_monitoring")]


def review(engine, refill_id, serial="NGP100", finding="no_cause_found", note="", on=None):
    with write_session(engine) as s:
        return services.record_review(session=s, serial=serial, refill_event_id=refill_id, finding=finding, note=note,
                                      author="dr.kim", today=TODAY, occurred_on=on, settings=SETTINGS)


def counts(engine):
    with read_session(engine) as s:
        return tuple(s.execute(select(func.count()).select_from(t.__table__)).scalar() for t in (tables.EventRow, tables.AuditEntry))


def test_flag_stays_after_later_entries_and_leaves_with_a_review(clinic):
    engine, ids = clinic
    flagged = [("NGP100", "refill_discrepancy_review", ids["flagged"])]
    assert review_items(engine) == flagged
    record(engine, "NGP100", D(2025, 3, 20), InterrogationData(reservoir_volume_ml=19.0))
    # refill 2025-05-25 (70 days): 6.0 mL expected, 6.0 withdrawn: this one is not flagged
    record(engine, "NGP100", D(2025, 5, 25), refill_data(6.0))
    assert review_items(engine) == flagged  # stored table
    assert review_items(engine, ComputedForecasts()) == flagged  # and computed: they agree
    before = counts(engine)
    row = review(engine, ids["flagged"], finding="catheter_study_ordered", note="dye study booked", on=D(2025, 5, 26))
    assert counts(engine) == (before[0] + 1, before[1] + 1)  # one event, one audit entry: one transaction
    assert review_items(engine) == [] and review_items(engine, ComputedForecasts()) == []
    with read_session(engine) as s:
        saved = s.get(tables.EventRow, row.id)
        assert (saved.kind, saved.occurred_on, saved.author) == ("refill_review", D(2025, 5, 26), "dr.kim")
        assert saved.data == {"kind": "refill_review", "refill_event_id": ids["flagged"], "finding": "catheter_study_ordered",
                              "note": "dye study booked"}
        action = s.execute(text("SELECT action FROM audit ORDER BY id DESC LIMIT 1")).scalar()
    assert action == "record refill_review"


@pytest.mark.parametrize(
    ("which", "serial", "field", "words"),
    [
        ("first", "NGP100", "data.refill_event_id", "has no flag to review"),
        ("other", "NGP100", "data.refill_event_id", "is a refill of another device (NGP200), not NGP100"),
        ("missing", "NGP100", "data.refill_event_id", "no refill has this entry id"),
        ("none", "NGP100", "data.refill_event_id", "name the flagged refill"),
        ("flagged", "NGP100", "occurred_on", "is before the refill it reviews (2025-03-16)"),
    ],
)
def test_a_review_naming_no_flagged_refill_of_the_device_is_refused(clinic, which, serial, field, words):
    engine, ids = clinic
    refill_id = {"missing": 99999, "none": None}.get(which, ids.get(which))
    on = D(2025, 3, 1) if which == "flagged" else None
    before = counts(engine)
    with pytest.raises(InputError) as info:
        review(engine, refill_id, serial=serial, on=on)
    [problem] = info.value.problems
    assert problem.field == field and words in problem.message
    if field == "data.refill_event_id":
        assert problem.value == refill_id
    assert counts(engine) == before


def test_a_review_of_an_interrogation_is_refused(clinic):
    engine, ids = clinic
    interrogation = record(engine, "NGP100", D(2025, 3, 20), InterrogationData())
    with pytest.raises(InputError) as info:
        review(engine, interrogation)
    assert [(p.field, p.value) for p in info.value.problems] == [("data.refill_event_id", interrogation)]
    assert "is a interrogation, not a refill" in str(info.value) or "not a refill" in str(info.value)


def test_an_unknown_finding_is_refused_naming_it(clinic):
    engine, ids = clinic
    with pytest.raises(InputError) as info:
        review(engine, ids["flagged"], finding="looked at it")
    assert [(p.field, p.value) for p in info.value.problems] == [("data.finding", "looked at it")]


def test_ledger_shows_the_review_beside_the_flag(clinic):
    from devicelog.reports import history as report

    engine, ids = clinic
    with read_session(engine) as s:
        before = report.load_report(s, "NGP100", settings=SETTINGS, as_of=TODAY)
    [_, row] = before.ledgers[0].rows
    assert row.review_open and row.review_text == "REVIEW DUE"
    review(engine, ids["flagged"], note="residual re-read", on=D(2025, 3, 17))
    with read_session(engine) as s:
        after = report.load_report(s, "NGP100", settings=SETTINGS, as_of=TODAY)
    [first, row] = after.ledgers[0].rows
    assert not row.review_open
    assert row.review_text == "reviewed 2025-03-17 by dr.kim: no cause found — residual re-read"
    assert first.review_text == ""  # nothing flagged, nothing to review
    text_out = report.render_text(after)
    assert "review (rule 26)" in text_out and "reviewed 2025-03-17 by dr.kim: no cause found" in text_out
    data = report.to_json_dict(after)
    assert data["ledgers"][0]["rows"][1]["reviews"][0]["finding"] == "no_cause_found"
    assert data["ledgers"][0]["rows"][1]["review_open"] is False
    assert any(e["kind"] == "refill_review" for e in data["timeline"])


def test_export_import_round_trip_carries_the_review(clinic, other_engine):
    engine, ids = clinic
    review(engine, ids["flagged"], finding="pump_interrogated", note="pump log read", on=D(2025, 3, 18))
    first = transfer.export_text(engine)
    doc = json.loads(first)
    by_ref = {e["ref"]: e for e in doc["events"]}
    [rev] = [e for e in doc["events"] if e["data"]["kind"] == "refill_review"]
    # The document names the refill by its ref, not by a row id.
    assert "refill_event_id" not in rev["data"]
    assert by_ref[rev["reviews"]]["occurred_on"] == "2025-03-16" and by_ref[rev["reviews"]]["device_serial"] == "NGP100"
    transfer.import_text(other_engine, first, author="someone-else", today=TODAY)
    assert transfer.export_text(other_engine) == first
    assert review_items(other_engine) == []  # the flag stays reviewed


def test_import_refuses_a_review_naming_a_refill_of_another_device_or_nothing(clinic, other_engine):
    engine, ids = clinic
    review(engine, ids["flagged"], on=D(2025, 3, 18))
    doc = json.loads(transfer.export_text(engine))
    [i] = [k for k, e in enumerate(doc["events"]) if e["data"]["kind"] == "refill_review"]
    other_ref = next(e["ref"] for e in doc["events"] if e["device_serial"] == "NGP200")
    bad = json.loads(json.dumps(doc))
    bad["events"][i]["reviews"] = other_ref
    with pytest.raises(InputError) as info:
        transfer.import_text(other_engine, json.dumps(bad), author="x", today=TODAY)
    assert [(p.field, p.value) for p in info.value.problems] == [(f"$.events[{i}].reviews", other_ref)]
    assert "names a refill of device 'NGP200', not 'NGP100'" in info.value.problems[0].message
    bad["events"][i]["reviews"] = "nope"
    with pytest.raises(InputError) as info:
        transfer.import_text(other_engine, json.dumps(bad), author="x", today=TODAY)
    assert [(p.field, p.value) for p in info.value.problems] == [(f"$.events[{i}].reviews", "nope")]
    del bad["events"][i]["reviews"]
    with pytest.raises(InputError) as info:
        transfer.import_text(other_engine, json.dumps(bad), author="x", today=TODAY)
    assert "reviews" in str(info.value)
    with read_session(other_engine) as s:
        assert s.execute(select(func.count()).select_from(tables.EventRow.__table__)).scalar() == 0


def test_cli_lists_flags_and_records_a_review(clinic, db_url, capsys):
    engine, ids = clinic
    assert main(["--db", db_url, *user_args("dr.kim"), "review", "NGP100"]) == 0
    out = capsys.readouterr().out
    assert f"entry {ids['flagged']}  2025-03-16  discrepancy -2.00 mL" in out and "REVIEW DUE" in out
    # a refill without a flag: refused, naming the option and value, nothing written
    before = counts(engine)
    assert main(["--db", db_url, *user_args("dr.kim"), "review", "NGP100", "--refill", str(ids["first"]),
                 "--finding", "no_cause_found"]) == 1
    err = capsys.readouterr().err
    assert f"--refill = {ids['first']}: the refill of 2025-01-05 has no flag to review" in err
    assert counts(engine) == before
    assert main(["--db", db_url, *user_args("dr.kim"), "review", "NGP100", "--refill", str(ids["flagged"]),
                 "--finding", "pocket_fill_excluded", "--note", "ultrasound: no pocket fluid", "--on", "2025-03-17"]) == 0
    out = capsys.readouterr().out
    assert f"reviewed 2025-03-17 by {recorded_author('dr.kim')}: pocket fill excluded — ultrasound: no pocket fluid" in out
    assert review_items(engine) == []


def test_fhir_exports_the_review_as_a_procedure_whose_reason_is_the_refill(clinic):
    from devicelog.reports.fhir import bundle_json, load_bundle

    engine, ids = clinic
    row = review(engine, ids["flagged"], finding="catheter_study_ordered", note="dye study booked", on=D(2025, 3, 18))
    with read_session(engine) as s:
        data = json.loads(bundle_json(load_bundle(s, dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.timezone.utc))))
    urls = {e["fullUrl"]: e["resource"] for e in data["entry"]}
    [proc] = [r for r in urls.values() if r["resourceType"] == "Procedure" and r["identifier"][0]["value"] == str(row.id)]
    assert proc["outcome"]["text"] == "catheter study ordered" and proc["note"] == [{"text": "dye study booked"}]
    assert (proc["performedDateTime"], proc["recorder"]["display"]) == ("2025-03-18", "dr.kim")
    reason = urls[proc["reasonReference"][0]["reference"]]
    assert reason["identifier"][0]["value"] == f"{ids['flagged']}:withdrawn" and reason["valueQuantity"]["value"] == 4.0


async def test_tui_records_a_review_from_the_device_screen_with_a_confirmed_preview(clinic):
    """The nurse presses f on the pump, picks the flagged refill and a finding, types a note,
    reads the preview, saves with ctrl+s and confirms with y; the database then holds
    exactly that review and the device's due items no longer list the flag."""
    from devicelog.tui.screens.device import DeviceScreen
    from devicelog.tui.screens.dialogs import ConfirmScreen
    from devicelog.tui.screens.review import ReviewScreen
    from tests.test_tui import SIZE, make, open_device, settle

    engine, ids = clinic
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_device(pilot, "NGP100")
        assert "refill_discrepancy_review" in [i.code for i, _ in screen.view.items(TODAY, app.settings)]
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, ReviewScreen)
        await pilot.press("tab", "down")  # finding: the second, catheter study ordered
        await pilot.press("tab", *"dye study booked")
        await settle(pilot)
        preview = str(app.screen.query_one("#review-preview").render())
        assert f"refill 2025-03-16 (entry {ids['flagged']}): discrepancy -2.00 mL" in preview
        assert "Finding: catheter study ordered" in preview and "Note: dye study booked" in preview
        assert f"Reviewed on {TODAY} by nurse" in preview
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen) and "Finding: catheter study ordered" in app.screen.question
        await pilot.press("y")
        await settle(pilot)
        assert isinstance(app.screen, DeviceScreen)
        assert "refill_discrepancy_review" not in [i.code for i, _ in app.screen.view.items(TODAY, app.settings)]
    with read_session(engine) as s:
        rows = s.execute(select(tables.EventRow).where(tables.EventRow.kind == "refill_review")).scalars().all()
    assert [(r.author, r.occurred_on, r.data) for r in rows] == [
        ("nurse", TODAY, {"kind": "refill_review", "refill_event_id": ids["flagged"], "finding": "catheter_study_ordered",
                          "note": "dye study booked"})
    ]
    assert review_items(engine) == []


async def test_tui_review_key_without_an_open_flag_says_so(clinic):
    from tests.test_tui import SIZE, make, open_device, settle

    engine, ids = clinic
    review(engine, ids["flagged"], on=D(2025, 3, 18))
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        await open_device(pilot, "NGP100")
        await pilot.press("f")
        await settle(pilot)
        assert type(app.screen).__name__ == "DeviceScreen"
