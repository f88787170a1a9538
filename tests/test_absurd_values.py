"""Issue 19 §1: values a clinic could never have are refused by field and value, with no
traceback and the database unchanged, on SQLite and PostgreSQL alike (each test runs on
the `engine` of the pass: a SQLite file, or a PostgreSQL database in the PG pass)."""

from __future__ import annotations

import copy
import io
import json

import pytest

from devicelog import transfer
from devicelog.services import InputError
from devicelog.store.db import write_session
from tests.test_transfer import counts, document, do_import, refusals

NASTY_NUMBERS = [float("nan"), float("inf"), float("-inf"), 1e308, True, "20"]


def import_text(engine, text):
    before = counts(engine)
    with pytest.raises(InputError) as info:
        with write_session(engine) as s:
            transfer.import_stream(s, io.StringIO(text), author="importer", today=transfer.dt.date(2026, 11, 23))
    assert counts(engine) == before
    return info.value.problems


@pytest.mark.parametrize("value", NASTY_NUMBERS, ids=repr)
def test_a_number_no_clinic_has_is_refused_by_field(engine, value):
    # expected_residual_ml took NaN, Infinity and 1e308 (NaN was stored as bare NaN and
    # made the export invalid JSON; on PostgreSQL it crashed the import).
    doc = document()
    doc["events"][1]["data"]["expected_residual_ml"] = value
    problems = refusals(engine, doc)
    assert "$.events[1].data.expected_residual_ml" in problems, problems


@pytest.mark.parametrize("path, value", [
    (("events", 4, "data", "volume_added_ml"), float("nan")),
    (("events", 8, "data", "stim_programs", 0, "amplitude_ma"), float("inf")),
    (("events", 8, "data", "stim_programs", 0, "frequency_hz"), True),
    (("devices", 2, "recharge_interval_days"), "10"),
    (("events", 5, "data", "pocket_swelling"), "yes"),
    (("events", 5, "data", "erythema_cm"), 1e308),
])
def test_every_kind_of_number_and_flag_is_strict(engine, path, value):
    doc = document()
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    problems = refusals(engine, doc)
    where = f"$.{path[0]}[{path[1]}]." + ".".join(str(p) for p in path[2:]).replace(".0.", "[0].")
    assert where in problems, problems


@pytest.mark.parametrize("field, value", [
    ("birth_date", "0001-01-01"), ("birth_date", "1800-01-01"), ("birth_date", "2999-01-01"), ("birth_date", 0),
    ("died_on", "2099-01-01"), ("recorded_at", "9999-12-31T23:59:59-23:59"), ("recorded_at", "0001-01-01T00:00:00+23:59"),
    ("recorded_at", 0),
])
def test_a_patient_date_outside_the_clinics_range_is_refused(engine, field, value):
    doc = document()
    doc["patients"][1][field] = value
    if field == "died_on":
        doc["patients"][1]["status"] = "deceased"
    problems = refusals(engine, doc)
    assert f"$.patients[1].{field}" in problems, problems


def test_an_event_date_outside_the_range_is_refused(engine):
    doc = document()
    doc["events"][1]["data"]["admixture_bud"] = "0001-01-01"
    doc["events"][4]["recorded_at"] = "9999-12-31T23:59:59Z"
    problems = refusals(engine, doc)
    assert problems["$.events[1].data.admixture_bud"][1] == "is before 1900-01-01, the earliest date a record can have"
    assert "$.events[4].recorded_at" in problems


@pytest.mark.parametrize("text", ["Ann\x1b]0;owned\x07", "Ann\x00", "Ann\nLee", "Ann\u202eeeL", "A" * 1_000_000])
def test_text_with_control_characters_or_too_long_is_refused_and_quoted_short(engine, text):
    doc = document()
    doc["patients"][1]["name"] = text
    problems = refusals(engine, doc)
    value, message = problems["$.patients[1].name"]
    assert "control character" in message or "line break" in message or "bidirectional" in message or "characters long" in message
    with pytest.raises(InputError) as info:
        do_import(engine, doc)
    assert len(str(info.value)) < 400  # never 1 MB echoed back


def test_notes_keep_their_line_breaks_but_no_escape(engine):
    doc = document()
    doc["events"][5]["data"]["notes"] = "pocket clean\nno drainage\tok"
    do_import(engine, doc)
    doc = document()
    doc["events"][5]["data"]["notes"] = "pocket \x1b[2J clean"
    refusals(engine, copy.deepcopy(doc))


def test_a_duplicate_key_in_one_object_is_refused(engine):
    text = json.dumps(document()).replace('"name": "Ben Berg"', '"name": "Ben Berg", "name": "Evil Twin"')
    [problem] = import_text(engine, text)
    assert "'name' is given twice in one object" in problem.message


def test_a_utf8_byte_order_mark_is_accepted(engine):
    with write_session(engine) as s:
        summary = transfer.import_stream(s, io.StringIO("\ufeff" + json.dumps(document())), author="importer",
                                         today=transfer.dt.date(2026, 11, 23))
    assert summary.patients == 2
    assert transfer.parse_text("\ufeff{}") == {}


@pytest.mark.parametrize("make", [
    lambda t: t.replace('"birth_date": "1962-05-06"', '"birth_date": "1962-05-06", "x": ' + "9" * 5000),
    lambda t: t.replace('"site": "pocket"}', '"site": "pocket", "notes": ' + "[" * 10000 + "]" * 10000 + "}", 1),
    lambda t: t.replace('"volume_added_ml": 40.0', '"volume_added_ml": NaN'),
    lambda t: t.replace('"volume_added_ml": 40.0', '"volume_added_ml": Infinity'),
], ids=["5000 digits", "10000 deep", "NaN", "Infinity"])
def test_numbers_and_nesting_a_reader_cannot_hold_are_refused_cleanly(engine, make):
    text = make(json.dumps(document()))
    assert text != json.dumps(document())
    [problem] = import_text(engine, text)
    assert problem.field == "$" and "refused" in problem.message
    with pytest.raises(InputError):
        transfer.parse_text(text)
