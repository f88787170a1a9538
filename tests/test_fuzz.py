"""Issue 7: bad input never crashes devicelog; every refusal names the field.

Property-based (hypothesis): arbitrary values into the event-data parser, every form
field parser (``devicelog.forms``) and the import validator (``devicelog.transfer``).
The only acceptable outcomes are a value or ``InputError`` whose every problem names a
field; anything else (TypeError, KeyError, a database error...) fails.
"""

from __future__ import annotations

import copy
import datetime as dt
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
                "program": {"drugs": [{"drug": "morphine", "concentration_mg_per_ml": 10}], "dose_mg_per_day": 2},
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
    from devicelog.store.db import make_engine
    from devicelog.store.schema import prepare

    engine = make_engine(tmp_path_factory.mktemp("fuzz") / "clinic.db")
    prepare(engine)
    yield engine
    engine.dispose()


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
