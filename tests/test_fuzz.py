"""Issue 7: bad input never crashes devicelog; every refusal names the field.

Property-based (hypothesis): arbitrary values into the event-data parser, every form
field parser (``devicelog.forms``) and the import validator (``devicelog.transfer``).
The only acceptable outcomes are a value or ``InputError`` whose every problem names a
field; anything else (TypeError, KeyError, a database error...) fails.
"""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devicelog import services
from devicelog.clinic.catalogue import shipped_catalogue
from devicelog.clinic.records import DATA_MODELS, EventKind
from devicelog.services import InputError
from tests.safety_data import TODAY

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", " ", "12,5 mL", "1e309", "-0", "2026-02-30", "today", "-3", "NaN", "yes", "morphine 10", "0x10"]),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)

KINDS = [k.value for k in EventKind]
#: The kinds with a visit form: a refill review (rule 26) has its own screen, not a form of fields.
FORM_KINDS = [k for k in KINDS if k != EventKind.refill_review.value]


def field_names(kind: str) -> list[str]:
    return list(DATA_MODELS[EventKind(kind)].model_fields)


def assert_names_fields(exc: InputError, allowed=None) -> None:
    assert exc.problems, "a refusal with no reason"
    for p in exc.problems:
        assert isinstance(p.field, str) and p.field.strip(), p
        assert p.message.strip(), p
        str(p)  # the message a person reads can always be rendered
        if allowed is not None:
            assert allowed(p.field), p


@st.composite
def event_data(draw):
    kind = draw(st.sampled_from(KINDS + ["nonsense"]))
    names = field_names(kind) if kind != "nonsense" else []
    keys = st.sampled_from(names) | st.text(max_size=8) if names else st.text(max_size=8)
    values = draw(st.dictionaries(keys, json_values, max_size=8))
    return kind, values


@FUZZ
@given(event_data())
def test_event_data_parser_refuses_by_field(case):
    kind, values = case
    try:
        record = services.parse_event_data(kind, values)
    except InputError as exc:
        assert_names_fields(exc, allowed=lambda f: f.startswith("data"))
    else:
        assert record.kind == kind


# --------------------------------------------------------------------- form fields


def _forms():
    return pytest.importorskip("devicelog.forms")


CATALOGUE = shipped_catalogue()
MODELS = {m.kind.value: m for m in CATALOGUE.device_models}  # one model of each device kind


@st.composite
def form_input(draw):
    forms = _forms()
    model = draw(st.sampled_from(sorted(MODELS.values(), key=lambda m: m.code)))
    kind = draw(st.sampled_from(FORM_KINDS))
    try:
        fields = forms.event_fields(kind, model, CATALOGUE.drugs)
    except InputError:
        fields = []
    raw = {f.key: draw(json_values) for f in fields if draw(st.booleans())}
    return forms, kind, fields, raw


@FUZZ
@given(form_input())
def test_every_form_field_parser_refuses_by_field(case):
    forms, kind, fields, raw = case
    keys = {f.key for f in fields}
    try:
        typed = forms.parse_fields(fields, raw, today=TODAY, known_drugs=[d.code for d in CATALOGUE.drugs])
    except InputError as exc:
        assert_names_fields(exc, allowed=lambda f: f in keys)
        return
    try:
        services.parse_event_data(kind, forms.event_values(kind, typed))
    except InputError as exc:
        assert_names_fields(exc, allowed=lambda f: f.startswith("data"))


@FUZZ
@given(st.sampled_from(["number", "int", "date", "text", "choice", "flag", "multi", "contacts", "impedances", "drugs", "flex", "opioids", "list"]), json_values)
def test_each_field_type_parser_refuses_by_field(kind, value):
    forms = _forms()
    f = forms.FormField("the_field", "The field", kind, unit="mL", choices=(("a", "Alpha"), ("b", "Beta")))
    try:
        forms.parse_field(f, value, today=TODAY, known_drugs=["morphine"])
    except InputError as exc:
        assert_names_fields(exc, allowed=lambda name: name.startswith("the_field"))


# --------------------------------------------------------------------- the import validator


VALID_DOCUMENT = {
    "format": "devicelog",
    "version": 1,
    "patients": [{"mrn": "F1", "name": "Fuzz Patient", "birth_date": "1960-01-01"}],
    "devices": [{"patient_mrn": "F1", "model": "synchromed-ii-20", "serial": "FZ1", "implanted_on": "2025-01-01"}],
    "events": [
        {
            "ref": "e1",
            "device_serial": "FZ1",
            "occurred_on": "2026-10-01",
            "author": "rn",
            "data": {
                "kind": "refill",
                "volume_withdrawn_ml": 3.0,
                "volume_added_ml": 20.0,
                "reservoir_volume_after_ml": 20.0,
                "program": {"mode": "simple_continuous", "drugs": [{"drug": "morphine", "concentration_mg_per_ml": 10}], "dose_mg_per_day": 2},
            },
        },
    ],
}
# ...and a void of that refill (an amendment carries the original's kind and values).
VALID_DOCUMENT["events"].append(
    {"device_serial": "FZ1", "occurred_on": "2026-10-01", "author": "rn", "amends": "e1", "amendment_reason": "wrong patient",
     "voided": True, "data": copy.deepcopy(VALID_DOCUMENT["events"][0]["data"])}
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(VALID_DOCUMENT) if p]


@st.composite
def documents(draw):
    """A valid document with a few values replaced, removed or added; or any JSON value at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    doc = copy.deepcopy(VALID_DOCUMENT)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = doc
        try:
            for step in path[:-1]:
                parent = parent[step]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(json_values)
            elif action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, dict):
                parent[draw(st.text(max_size=8))] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation changed the shape under this path
    return doc


class _RollBack(Exception):
    pass


@pytest.fixture(scope="module")
def fuzz_engine(tmp_path_factory):
    """One database for the module: a SQLite file, or a PostgreSQL database in the PG pass
    (issue 19: the same document is accepted or refused the same way on both)."""
    from devicelog.store.db import make_engine
    from devicelog.store.schema import prepare
    from tests.conftest import PG_ADMIN_URL, _pg_database

    drop = None
    if PG_ADMIN_URL:
        url, drop = _pg_database(PG_ADMIN_URL)
    else:
        url = tmp_path_factory.mktemp("fuzz") / "clinic.db"
    engine = make_engine(url)
    prepare(engine)
    yield engine
    engine.dispose()
    if drop is not None:
        drop()


def test_the_valid_document_imports(fuzz_engine):
    transfer = pytest.importorskip("devicelog.transfer")
    from devicelog.store.db import write_session

    with pytest.raises(_RollBack):
        with write_session(fuzz_engine) as s:
            summary = transfer.import_document(s, copy.deepcopy(VALID_DOCUMENT), author="fuzz", today=TODAY)
            assert (summary.patients, summary.devices, summary.events) == (1, 1, 2)
            raise _RollBack


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(documents())
def test_import_validator_refuses_by_field(fuzz_engine, doc):
    transfer = pytest.importorskip("devicelog.transfer")
    from devicelog.store.db import write_session

    try:
        with write_session(fuzz_engine) as s:
            transfer.import_document(s, doc, author="fuzz", today=TODAY)
            raise _RollBack  # keep the database empty for the next example
    except InputError as exc:
        assert_names_fields(exc, allowed=lambda f: f.startswith("$"))
    except _RollBack:
        pass


@FUZZ
@given(st.text(max_size=200) | st.builds(lambda d: json.dumps(d)[: len(json.dumps(d)) // 2], st.just(VALID_DOCUMENT)))
def test_import_text_parser_refuses_by_field(text):
    transfer = pytest.importorskip("devicelog.transfer")
    try:
        transfer.parse_text(text)
    except InputError as exc:
        assert_names_fields(exc, allowed=lambda f: f.startswith("$"))


# --------------------------------------------------------------------- issue 19: values a clinic could never have

#: Values no record may hold: non-finite and absurd numbers, numbers as text or true/false,
#: dates outside any clinic's record, control characters and bidirectional overrides,
#: oversized text.
absurd_values = st.sampled_from([
    float("nan"), float("inf"), float("-inf"), 1e308, -1e308, True, False, "20", "3.5", 0, 10**30,
    "0001-01-01", "1800-01-01", "2999-12-31", "9999-12-31", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
    "Ann\x1b]0;owned\x07", "\x1b[2J", "A\x00B", "A\nB", "A\rB", "\u202eevil", "\u2066x\u2069", "x" * 5000,
])


@st.composite
def absurd_documents(draw):
    """The valid document with one to three of its values replaced by an absurd one."""
    doc = copy.deepcopy(VALID_DOCUMENT)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = doc
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = draw(absurd_values)
        except (KeyError, IndexError, TypeError):
            continue
    return doc


def _stored_values_are_plausible(session) -> None:
    """What the import wrote, read back as an export: strict JSON (no NaN), dates in range, plain text."""
    import io
    import re

    from devicelog import transfer

    buffer = io.StringIO()
    transfer.write_document(session, buffer)
    doc = transfer.parse_text(buffer.getvalue())  # refuses NaN, Infinity, duplicate keys
    dated = ("_on", "_date", "recorded_at", "admixture_bud", "expiry", "manufactured")
    for key, value in _leaves(doc):
        if isinstance(value, float):
            assert abs(value) < 1e6, value
        if isinstance(value, str):
            assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]", value), value
            if key.endswith(dated):
                assert "1900" <= value[:4] <= "2031", (key, value)


def _leaves(value, key=""):
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _leaves(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, key)
    else:
        yield key, value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(absurd_documents())
def test_absurd_values_are_refused_or_harmless_on_either_database(fuzz_engine, doc):
    transfer = pytest.importorskip("devicelog.transfer")
    from devicelog.store.db import write_session

    try:
        with write_session(fuzz_engine) as s:
            transfer.import_document(s, doc, author="fuzz", today=TODAY)
            _stored_values_are_plausible(s)
            raise _RollBack
    except InputError as exc:
        assert_names_fields(exc, allowed=lambda f: f.startswith("$"))
    except _RollBack:
        pass


#: Texts a JSON reader may choke on: duplicate keys, a byte-order mark, a huge number,
#: deep nesting, NaN and Infinity tokens, each placed inside the valid document.
_VALID_TEXT = json.dumps(VALID_DOCUMENT)
hostile_texts = st.one_of(
    st.just("\ufeff" + _VALID_TEXT),
    st.builds(lambda n: _VALID_TEXT.replace('"name": "Fuzz Patient"', '"name": "Fuzz Patient", "name": "Evil Twin"'), st.just(0)),
    st.builds(lambda n: _VALID_TEXT.replace('"dose_mg_per_day": 2', '"dose_mg_per_day": ' + "9" * n, 1), st.integers(30, 6000)),
    st.builds(lambda n: _VALID_TEXT.replace('"author": "rn"', '"author": "rn", "x": ' + "[" * n + "]" * n, 1), st.integers(1, 12000)),
    st.builds(lambda token: _VALID_TEXT.replace('"volume_added_ml": 20.0', f'"volume_added_ml": {token}', 1),
              st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "true", '"20"'])),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(hostile_texts)
def test_hostile_json_text_is_read_or_refused_cleanly(fuzz_engine, text):
    import io

    transfer = pytest.importorskip("devicelog.transfer")
    from devicelog.store.db import write_session

    try:
        with write_session(fuzz_engine) as s:
            summary = transfer.import_stream(s, io.StringIO(text), author="fuzz", today=TODAY)
            assert text.startswith("\ufeff") and summary.patients == 1  # only the byte-order mark is harmless
            raise _RollBack
    except InputError as exc:
        assert not text.startswith("\ufeff"), exc
        assert_names_fields(exc, allowed=lambda f: f.startswith("$"))
    except _RollBack:
        pass


# --------------------------------------------------------------------- issue 19: drug numbers outside clinical ranges


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["concentration_mg_per_ml", "dose_mg_per_day"]), st.floats(min_value=100.5, max_value=1000, allow_nan=False))
def test_a_drug_number_no_clinic_has_is_refused_by_its_field(fuzz_engine, field, value):
    """Morphine: the highest concentration the drug-limit library knows is 25 mg/mL (the
    Infumorph labelled strength) × 4 (``implausible_factor``) = 100 mg/mL; its highest
    daily dose 20 mg/day (the label's caution) × 4 = 80 mg/day.  Every value drawn is
    above both, finite, and inside the record's own range (≤ 1000): refused by its path."""
    transfer = pytest.importorskip("devicelog.transfer")
    from devicelog.store.db import write_session

    doc = copy.deepcopy(VALID_DOCUMENT)
    i, event = next((i, e) for i, e in enumerate(doc["events"]) if "program" in e["data"])
    program = event["data"]["program"]
    if field == "dose_mg_per_day":
        program["dose_mg_per_day"] = value
        path = f"$.events[{i}].data.program.dose_mg_per_day"
    else:
        program["drugs"][0]["concentration_mg_per_ml"] = value
        path = f"$.events[{i}].data.program.drugs[0].concentration_mg_per_ml"
    with pytest.raises(InputError) as info:
        with write_session(fuzz_engine) as s:
            transfer.import_document(s, doc, author="fuzz", today=TODAY)
            raise _RollBack
    assert path in {p.field for p in info.value.problems}
    assert_names_fields(info.value, allowed=lambda f: f.startswith("$"))
