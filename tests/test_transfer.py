"""The import/export document: exact round trip, and all-or-nothing refusals named by JSON path."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from devicelog import services, transfer
from devicelog.cli import main
from devicelog.clinic.records import PatientIn
from devicelog.services import InputError
from devicelog.store import audit, tables
from devicelog.store.db import make_engine, read_session, write_session
from devicelog.store.schema import prepare
from tests.conftest import PG_ADMIN_URL, TODAY, _pg_database, recorded_author, user_args


@pytest.fixture
def other_engine(tmp_path):
    """A second fresh database (same backend as ``engine``), to import an export into."""
    if PG_ADMIN_URL:
        url, drop = _pg_database(PG_ADMIN_URL)
    else:
        url, drop = str(tmp_path / "other.db"), (lambda: None)
    eng = make_engine(url)
    prepare(eng)
    yield eng
    eng.dispose()
    drop()


MORPHINE = {"mode": "simple_continuous", "drugs": [{"drug": "morphine", "concentration_mg_per_ml": 10.0}], "dose_mg_per_day": 2.0}


def refill(**over):
    values = {
        "kind": "refill",
        "volume_withdrawn_ml": 4.0,
        "expected_residual_ml": 4.2,
        "volume_added_ml": 20.0,
        "reservoir_volume_after_ml": 20.0,
        "program": copy.deepcopy(MORPHINE),
    }
    values.update(over)
    return values


def document() -> dict:
    """Two patients; a pump replaced by another; an SCS explanted; an amended and a voided event."""
    return {
        "format": "devicelog",
        "version": 1,
        "catalogue": {
            "drugs": [{"code": "ketamine", "name": "Ketamine", "display_unit": "mcg", "max_dose_mg_per_day": 2.0}]
        },
        "patients": [
            {"mrn": "MRN-1", "name": "Ann Lee", "birth_date": "1950-01-02", "goals_of_care": "hospice", "author": "clerk",
             "recorded_at": "2024-01-02T09:00:00Z"},
            {"mrn": "MRN-2", "name": "Ben Berg", "birth_date": "1962-05-06"},
        ],
        "devices": [
            {"patient_mrn": "MRN-1", "model": "synchromed-ii-20", "serial": "NGP1", "implanted_on": "2024-01-10",
             "status": "replaced", "author": "dr.a", "recorded_at": "2024-01-10T10:00:00Z"},
            {"patient_mrn": "MRN-1", "model": "synchromed-ii-40", "serial": "NGP2", "implanted_on": "2025-06-01",
             "replaces_serial": "NGP1", "udi": {"raw": "(01)00763000408639(21)NGP2", "device_identifier": "00763000408639", "serial": "NGP2"}},
            {"patient_mrn": "MRN-2", "model": "medtronic-intellis", "serial": "SCS1", "implanted_on": "2024-03-01",
             "status": "explanted", "recharge_interval_days": 10},
        ],
        "events": [
            {"ref": "a", "device_serial": "NGP1", "occurred_on": "2024-01-10", "author": "rn", "recorded_at": "2024-01-10T11:00:00Z",
             "data": refill(volume_withdrawn_ml=0.0, expected_residual_ml=None)},
            {"ref": "b", "device_serial": "NGP1", "occurred_on": "2024-02-20", "author": "rn", "recorded_at": "2024-02-20T11:00:00Z",
             "data": refill()},
            {"ref": "c", "device_serial": "NGP1", "occurred_on": "2024-02-20", "author": "rn2", "recorded_at": "2024-02-21T08:00:00Z",
             "amends": "b", "amendment_reason": "withdrawn volume mistyped", "data": refill(volume_withdrawn_ml=4.1)},
            {"ref": "d", "device_serial": "NGP1", "occurred_on": "2025-06-01", "author": "dr.a", "recorded_at": "2025-06-01T09:00:00Z",
             "data": {"kind": "reintervention", "reintervention": "pump_replacement", "reason": "ERI"}},
            {"ref": "e", "device_serial": "NGP2", "occurred_on": "2025-06-01", "author": "rn", "recorded_at": "2025-06-01T12:00:00Z",
             "data": refill(volume_withdrawn_ml=0.0, volume_added_ml=40.0, reservoir_volume_after_ml=40.0)},
            {"ref": "f", "device_serial": "NGP2", "occurred_on": "2025-06-11", "author": "rn", "recorded_at": "2025-06-11T09:00:00Z",
             "data": {"kind": "wound_check", "site": "pocket"}},
            {"ref": "g", "device_serial": "NGP2", "occurred_on": "2025-06-11", "author": "rn", "recorded_at": "2025-06-11T09:05:00Z",
             "data": {"kind": "wound_check", "site": "pocket"}},
            {"ref": "h", "device_serial": "NGP2", "occurred_on": "2025-06-11", "author": "rn", "recorded_at": "2025-06-11T09:10:00Z",
             "amends": "g", "voided": True, "amendment_reason": "saved twice", "data": {"kind": "wound_check", "site": "pocket"}},
            {"ref": "i", "device_serial": "SCS1", "occurred_on": "2024-03-01", "author": "dr.b", "recorded_at": "2024-03-01T10:00:00Z",
             "data": {"kind": "programming", "stim_programs": [
                 {"name": "A", "contacts": {"E0": "+", "E1": "-"}, "amplitude_ma": 3.5, "pulse_width_us": 300, "frequency_hz": 50,
                  "waveform": "tonic"}]}},
            {"ref": "j", "device_serial": "SCS1", "occurred_on": "2025-02-01", "author": "dr.b", "recorded_at": "2025-02-01T10:00:00Z",
             "data": {"kind": "reintervention", "reintervention": "explant", "reason": "no benefit"}},
            {"ref": "k", "device_serial": "SCS1", "occurred_on": "2025-02-12", "author": "rn", "recorded_at": "2025-02-12T10:00:00Z",
             "data": {"kind": "wound_check", "site": "IPG pocket"}},
        ],
    }


def counts(engine):
    with read_session(engine) as s:
        return tuple(
            s.execute(select(func.count()).select_from(t.__table__)).scalar()
            for t in (tables.Patient, tables.Device, tables.EventRow, tables.DrugRow, tables.AuditEntry)
        )


def do_import(engine, doc, today=TODAY):
    with write_session(engine) as s:
        return transfer.import_document(s, doc, author="importer", today=today)


def refusals(engine, doc) -> dict[str, tuple]:
    """Import ``doc``, expect a refusal and an unchanged database; return {json path: (value, message)}."""
    before = counts(engine)
    with pytest.raises(InputError) as info:
        do_import(engine, doc)
    assert counts(engine) == before
    return {p.field: (p.value, p.message) for p in info.value.problems}


# --------------------------------------------------------------------------- round trip


def test_import_writes_every_record_with_its_authors_times_and_links(engine):
    summary = do_import(engine, document())
    assert (summary.patients, summary.devices, summary.events, summary.catalogue_entries) == (2, 3, 11, 1)
    with read_session(engine) as s:
        ngp1 = s.execute(select(tables.Device).where(tables.Device.serial == "NGP1")).scalar_one()
        ngp2 = s.execute(select(tables.Device).where(tables.Device.serial == "NGP2")).scalar_one()
        scs = s.execute(select(tables.Device).where(tables.Device.serial == "SCS1")).scalar_one()
        ann = s.execute(select(tables.Patient).where(tables.Patient.mrn == "MRN-1")).scalar_one()
        events = s.execute(select(tables.EventRow).order_by(tables.EventRow.id)).scalars().all()
    # The replacement linked the old pump to the new one; the explant ended the SCS.
    assert (ngp1.status, ngp1.replaced_by_id) == ("replaced", ngp2.id)
    assert scs.status == "explanted" and ngp2.status == "active"
    assert ngp2.udi_di == "00763000408639"
    assert (ann.author, ann.recorded_at.replace(tzinfo=dt.timezone.utc)) == ("clerk", dt.datetime(2024, 1, 2, 9, tzinfo=dt.timezone.utc))
    amendment = next(e for e in events if e.amendment_reason == "withdrawn volume mistyped")
    original = next(e for e in events if e.id == amendment.amends_id)
    assert (original.data["volume_withdrawn_ml"], amendment.data["volume_withdrawn_ml"]) == (4.0, 4.1)
    assert amendment.author == "rn2" and amendment.recorded_at.replace(tzinfo=dt.timezone.utc) == dt.datetime(2024, 2, 21, 8, tzinfo=dt.timezone.utc)
    void = next(e for e in events if e.voided)
    assert void.amendment_reason == "saved twice"


def test_export_import_export_is_byte_identical(engine, other_engine):
    do_import(engine, document())
    first = transfer.export_text(engine)
    transfer.import_text(other_engine, first, author="someone-else", today=TODAY)
    second = transfer.export_text(other_engine)
    assert second == first
    doc = json.loads(first)
    # Amendments and voids point at their originals by ref; authors and times survive.
    by_ref = {e["ref"]: e for e in doc["events"]}
    amended = [e for e in doc["events"] if "amends" in e]
    assert {(by_ref[e["amends"]]["device_serial"], e.get("voided", False)) for e in amended} == {("NGP1", False), ("NGP2", True)}
    assert [d["serial"] for d in doc["devices"] if d.get("replaces_serial") == "NGP1"] == ["NGP2"]
    assert doc["catalogue"]["drugs"][0]["code"] == "ketamine" and doc["catalogue"]["device_models"] == []
    assert {p["mrn"]: p.get("author") for p in doc["patients"]} == {"MRN-1": "clerk", "MRN-2": "importer"}


def test_export_of_an_empty_database_is_a_valid_empty_document(engine):
    doc = json.loads(transfer.export_text(engine))
    assert doc == {"format": "devicelog", "version": 1, "catalogue": {"device_models": [], "drugs": []},
                   "patients": [], "devices": [], "events": [], "due_acks": []}


def test_import_is_audited_with_the_final_values_of_every_row(engine):
    do_import(engine, document())
    with engine.connect() as conn:
        findings, expected = audit.check_chain(conn)
        findings += audit.check_rows(conn, expected)
    assert findings == []


# --------------------------------------------------------------------------- refusals


def test_bad_volume_is_refused_with_its_json_path_and_value(engine):
    doc = document()
    doc["events"][1]["data"]["volume_added_ml"] = -3
    problems = refusals(engine, doc)
    value, message = problems["$.events[1].data.volume_added_ml"]
    assert value == -3 and "greater than 0" in message
    # The amendment of the refused refill cannot be checked; it is said, not dropped.
    assert "not checked" in problems["$"][1]


def test_message_reads_path_equals_value_colon_why(engine):
    doc = document()
    doc["events"][5]["data"]["volume_added_ml"] = -3  # a wound check has no volume
    doc["events"][4]["data"]["volume_added_ml"] = -3
    with pytest.raises(InputError) as info:
        do_import(engine, doc)
    texts = [str(p) for p in info.value.problems]
    assert any(t.startswith("$.events[4].data.volume_added_ml = -3: ") for t in texts)
    assert any(t.startswith("$.events[5].data.volume_added_ml") and "Extra inputs" in t for t in texts)


def test_zero_concentration_is_refused(engine):
    doc = document()
    doc["events"][0]["data"]["program"]["drugs"][0]["concentration_mg_per_ml"] = 0
    problems = refusals(engine, doc)
    assert problems["$.events[0].data.program.drugs[0].concentration_mg_per_ml"][0] == 0


def test_events_before_implant_and_after_today_are_refused(engine):
    doc = document()
    doc["events"][0]["occurred_on"] = "2024-01-09"  # NGP1 was implanted 2024-01-10
    doc["events"][5]["occurred_on"] = (TODAY + dt.timedelta(days=1)).isoformat()
    problems = refusals(engine, doc)
    assert problems["$.events[0].occurred_on"] == ("2024-01-09", "is before the device's implant (2024-01-10)")
    assert "after today (2026-11-23)" in problems["$.events[5].occurred_on"][1]


def test_unknown_model_and_unknown_drug_are_refused(engine):
    doc = document()
    doc["devices"][2]["model"] = "no-such-ipg"
    doc["events"][1]["data"]["program"]["drugs"][0]["drug"] = "heroin"
    problems = refusals(engine, doc)
    assert problems["$.devices[2].model"] == ("no-such-ipg", "not in the device catalogue")
    assert problems["$.events[1].data.program.drugs[0].drug"][0] == "heroin"
    # The refused SCS's events are not checked against a device that does not exist.
    assert not any(path.startswith("$.events[8]") for path in problems)


def test_a_drug_added_by_the_catalogue_section_is_known_to_the_events(engine):
    doc = document()
    doc["events"][1]["data"]["program"]["drugs"].append({"drug": "ketamine", "concentration_mg_per_ml": 0.5})
    do_import(engine, doc)
    doc = json.loads(transfer.export_text(engine))
    assert any(d["drug"] == "ketamine" for e in doc["events"] if e["data"]["kind"] == "refill" for d in e["data"]["program"]["drugs"])


def test_duplicate_serial_and_mrn_are_refused_within_the_document_and_against_the_database(engine):
    doc = document()
    doc["patients"].append({"mrn": "MRN-2", "name": "Other", "birth_date": "1970-01-01"})
    doc["devices"].append({"patient_mrn": "MRN-2", "model": "nevro-senza", "serial": "SCS1", "implanted_on": "2024-03-01"})
    problems = refusals(engine, doc)
    assert problems["$.patients[2].mrn"] == ("MRN-2", "a patient with this MRN already exists")
    assert problems["$.devices[3].serial"] == ("SCS1", "a device with this serial is already registered")

    with write_session(engine) as s:
        services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN-1", name="Already here", birth_date=dt.date(1940, 1, 1)), author="rn")
    problems = refusals(engine, document())
    assert problems["$.patients[0].mrn"][0] == "MRN-1"


def test_catalogue_entry_that_differs_from_the_database_is_refused(engine):
    doc = document()
    doc["catalogue"]["drugs"] = [{"code": "morphine", "name": "Morphine, other values", "stability_days": 30}]
    problems = refusals(engine, doc)
    assert problems["$.catalogue.drugs[0].code"][0] == "morphine"


def test_amendment_rules_are_the_services_rules(engine):
    doc = document()
    doc["events"][2]["amendment_reason"] = "  "
    doc["events"][7]["amends"] = "nope"
    problems = refusals(engine, doc)
    assert problems["$.events[2].amendment_reason"][1] == "an amendment must say why"
    assert problems["$.events[7].amends"] == ("nope", "no event in the document has this ref")

    doc = document()
    doc["events"][2]["data"] = {"kind": "wound_check"}
    assert "is a refill" in refusals(engine, doc)["$.events[2].data.kind"][1]


def test_event_after_an_explant_is_refused_like_at_the_keyboard(engine):
    doc = document()
    doc["events"].append({"device_serial": "SCS1", "occurred_on": "2025-03-01", "author": "rn",
                          "data": {"kind": "interrogation", "battery_state": "ok"}})
    problems = refusals(engine, doc)
    assert problems["$.events[11].device_serial"] == ("SCS1", "the device is explanted")


def test_present_status_contradicting_the_events_is_refused(engine):
    doc = document()
    doc["devices"][2]["status"] = "active"  # but its record holds an explant
    problems = refusals(engine, doc)
    assert problems["$.devices[2].status"] == ("active", "contradicts the device's record, which makes it explanted")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "is empty"),
        ("hello", "not valid JSON at line 1, column 1"),
        ('{"format": "devicelog", "version": 1, "patients": [{"mrn": "A"', "truncated"),
    ],
)
def test_non_json_and_truncated_files_are_refused_clearly(text, words):
    with pytest.raises(InputError) as info:
        transfer.parse_text(text, "clinic.json")
    [problem] = info.value.problems
    assert problem.field == "$" and "clinic.json" in problem.message and words in problem.message


@pytest.mark.parametrize(
    ("change", "path", "value"),
    [
        ({"format": "other"}, "$.format", "other"),
        ({"version": 2}, "$.version", 2),
        ({"patient": []}, "$.patient", None),
    ],
)
def test_wrong_format_version_or_top_level_field_is_refused(engine, change, path, value):
    doc = {**document(), **change}
    assert refusals(engine, doc)[path][0] == value


def test_a_list_of_problems_is_all_there_at_once(engine):
    doc = document()
    doc["patients"][1]["birth_date"] = "not a date"
    doc["devices"][0]["implanted_on"] = "2099-01-01"
    doc["events"][0]["data"]["volume_added_ml"] = 2000
    problems = refusals(engine, doc)
    assert {"$.patients[1].birth_date", "$.devices[0].implanted_on", "$.events[0].data.volume_added_ml"} <= set(problems)


# --------------------------------------------------------------------------- the commands


def test_cli_import_then_export(db_url, tmp_path, capsys):
    source = tmp_path / "in.json"
    source.write_text(json.dumps(document()), encoding="utf-8")
    assert main(["init", db_url]) == 0  # import adds to a database; it never makes one
    assert main(["--db", db_url, *user_args("nurse"), "import", str(source)]) == 0
    # Issue 13 item 15: counted right ("1 catalogue entries" before), each section by name.
    assert "2 patients, 3 devices, 11 events, 1 catalogue entry." in capsys.readouterr().out
    out = tmp_path / "out.json"
    assert main(["--db", db_url, "export", "-o", str(out)]) == 0
    assert "Exported 2 patients, 3 devices and 11 events to" in capsys.readouterr().out  # not "16 patients, devices and events"
    assert not (tmp_path / "out.json.partial").exists()
    assert main(["--db", db_url, "export"]) == 0
    assert capsys.readouterr().out == out.read_text(encoding="utf-8")
    assert {p["mrn"]: p.get("author") for p in json.loads(out.read_text())["patients"]}["MRN-2"] == recorded_author("nurse")


def test_cli_import_refusal_lists_paths_exits_1_and_writes_nothing(db_url, tmp_path, capsys):
    doc = document()
    doc["events"][1]["data"]["volume_added_ml"] = -3
    doc["devices"][2]["model"] = "no-such-ipg"
    source = tmp_path / "bad.json"
    source.write_text(json.dumps(doc), encoding="utf-8")
    assert main(["init", db_url]) == 0
    assert main(["--db", db_url, "import", str(source)]) == 1
    err = capsys.readouterr().err
    assert "$.events[1].data.volume_added_ml = -3: Input should be greater than 0" in err
    assert "$.devices[2].model = 'no-such-ipg': not in the device catalogue" in err
    assert main(["--db", db_url, "export", "-o", str(tmp_path / "out.json")]) == 0
    assert json.loads((tmp_path / "out.json").read_text())["patients"] == []


def test_cli_import_of_a_truncated_file(db_url, tmp_path, capsys):
    text = json.dumps(document())
    source = tmp_path / "cut.json"
    source.write_text(text[: len(text) // 2], encoding="utf-8")
    assert main(["init", db_url]) == 0
    assert main(["--db", db_url, "import", str(source)]) == 1
    assert "truncated" in capsys.readouterr().err
    assert main(["--db", db_url, "import", str(tmp_path / "missing.json")]) == 1
    assert "cannot read" in capsys.readouterr().err


# --------------------------------------------------------------------------- streaming


def test_sections_in_any_order_import_as_in_export_order(engine, other_engine):
    """A hand-written file may put events before devices before patients: the import
    reads the file once and replays in clinical order all the same."""
    doc = document()
    for item in doc["patients"] + doc["devices"]:
        item.setdefault("recorded_at", "2025-06-01T08:00:00Z")  # else each import stamps its own time
    reordered = {"events": doc["events"], "devices": doc["devices"], "catalogue": doc["catalogue"],
                 "patients": doc["patients"], "version": 1, "format": "devicelog"}
    transfer.import_text(engine, json.dumps(reordered), author="importer", today=TODAY)
    do_import(other_engine, doc)
    assert transfer.export_text(engine) == transfer.export_text(other_engine)


def test_reader_in_tiny_chunks_gives_the_values_json_gives(monkeypatch):
    import io

    monkeypatch.setattr(transfer.DocumentReader, "CHUNK", 7)  # every value spans chunks
    doc = document()
    doc["patients"][0]["name"] = "Åsa Ölund, \"quoted\" \\ 🙂"
    text = json.dumps(doc, indent=1)
    got: dict = {}
    for entry in transfer.DocumentReader(io.StringIO(text)).entries():
        if entry[0] == "value":
            got[entry[1]] = entry[2]
        elif entry[0] == "item":
            _, section, index, value, raw = entry
            assert index == len(got[section]) and json.loads(raw) == value
            got[section].append(value)
    assert got == doc


@pytest.mark.parametrize("chunk", [5, 1 << 20])
def test_reader_errors_name_line_and_column_or_truncation(monkeypatch, chunk):
    import io

    monkeypatch.setattr(transfer.DocumentReader, "CHUNK", chunk)

    def refusal(text: str) -> str:
        with pytest.raises(InputError) as info:
            list(transfer.DocumentReader(io.StringIO(text), "clinic.json").entries())
        [problem] = info.value.problems
        assert problem.field == "$"
        return problem.message

    text = json.dumps(document(), indent=1)
    assert "truncated" in refusal(text[: len(text) // 2])
    assert "truncated" in refusal(text.rstrip()[:-1])
    broken = text.replace('"MRN-2"', '"MRN-2" x', 1)
    line = broken[: broken.index(" x")].count("\n") + 1
    column = broken.index(" x") - broken.rfind("\n", 0, broken.index(" x"))
    assert f"not valid JSON at line {line}, column {column + 1}" in refusal(broken)
    assert "line 1, column 1" in refusal("hello")
    assert "is empty" in refusal("  \n")
    assert "JSON object" in refusal("[1, 2]")
    assert "Extra data" in refusal(text + "{}")


def test_a_top_level_field_given_twice_is_refused(engine):
    text = json.dumps(document())
    text = text[:-1] + ', "events": []}'
    before = counts(engine)
    with pytest.raises(InputError) as info:
        transfer.import_text(engine, text, author="importer", today=TODAY)
    assert [(p.field, p.message) for p in info.value.problems] == [("$.events", "is given more than once")]
    assert counts(engine) == before


def test_refusal_paths_are_the_document_indexes_when_streamed(engine):
    doc = document()
    doc["events"][1]["data"]["volume_added_ml"] = -3
    doc["devices"][2]["model"] = "no-such-ipg"
    before = counts(engine)
    with pytest.raises(InputError) as info:
        transfer.import_text(engine, json.dumps(doc), author="importer", today=TODAY)
    fields = {p.field for p in info.value.problems}
    assert {"$.events[1].data.volume_added_ml", "$.devices[2].model"} <= fields
    assert counts(engine) == before


def test_cli_import_from_standard_input(db_url, monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(document())))
    assert main(["init", db_url]) == 0
    assert main(["--db", db_url, *user_args("nurse"), "import", "-"]) == 0
    assert "Imported standard input: 2 patients, 3 devices, 11 events" in capsys.readouterr().out


def test_export_orders_amendments_recorded_before_their_original(engine, other_engine):
    """An amendment whose time sorts before its original still names it by the original's ref."""
    doc = document()
    doc["events"][2]["recorded_at"] = "2024-02-19T08:00:00Z"  # amendment 'c' "recorded" before 'b'
    do_import(engine, doc)
    first = transfer.export_text(engine)
    events = json.loads(first)["events"]
    amendment = next(e for e in events if e.get("amendment_reason") == "withdrawn volume mistyped")
    original = next(e for e in events if e["ref"] == amendment["amends"])
    assert events.index(amendment) < events.index(original) and original["data"]["volume_withdrawn_ml"] == 4.0
    transfer.import_text(other_engine, first, author="x", today=TODAY)
    assert transfer.export_text(other_engine) == first


def test_import_does_not_keep_rows_in_the_session(engine):
    """The session's identity map does not grow with the document (rows are let go in batches)."""
    with write_session(engine) as s:
        transfer.import_document(s, document(), author="importer", today=TODAY)
        assert len(s.identity_map) <= 5


def test_safety_notices_their_matches_and_acknowledgements_round_trip(engine, other_engine):
    """Issue 18: export -> import -> export carries notices, matches and acknowledgements
    byte for byte, and the imported acknowledgement still closes the device's due item."""
    from devicelog.clinic.advisory import AdvisoryIn
    from devicelog.settings import Settings
    from devicelog.store import advisories
    from devicelog.store.db import write_session
    from devicelog.store.due import due_list

    do_import(engine, document())
    notice = AdvisoryIn.model_validate({
        "title": "Motor stall", "issued_on": "2019-08-01", "source": "Medtronic", "recommended_action": "Inform",
        "notice_class": "I", "rules": {"models": ["synchromed-ii-40"], "serials": ["NGP2"]}, "unparsed": ["lots 4 to 9"],
    })
    with write_session(engine) as s:
        row, pairs = advisories.import_notice(s, notice=notice, author="rn", today=TODAY)
    assert [m.tier for _, _, m in pairs] == [1]  # NGP2 is listed
    with write_session(engine) as s:
        advisories.acknowledge(s, advisory_id=row.id, serial="NGP2", actions=["patient_informed"], note="told",
                               author="rn", done_on=TODAY, today=TODAY)
    first = transfer.export_text(engine)
    transfer.import_text(other_engine, first, author="someone-else", today=TODAY)
    assert transfer.export_text(other_engine) == first
    [exported] = json.loads(first)["advisories"]
    assert [(m["device_serial"], m["tier"]) for m in exported["matches"]] == [("NGP2", 1)]
    assert exported["unparsed"] == ["lots 4 to 9"]
    assert [(a["device_serial"], a["actions"]) for a in exported["acknowledgements"]] == [("NGP2", ["patient_informed"])]
    with read_session(other_engine) as s:
        items = due_list(s, as_of=TODAY, settings=Settings()).entries
    assert not [e for e in items if e.item.code.startswith("advisory_")]  # acknowledged
