"""Form parsing outside the TUI: typed values, field-named refusals, nothing but InputError."""

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devicelog import forms
from devicelog.clinic.catalogue import shipped_catalogue
from devicelog.clinic.history import DeviceHistory, DeviceInfo, PatientInfo
from devicelog.clinic.records import (
    DrugConcentration,
    Event,
    EventKind,
    ProgrammingData,
    PumpProgram,
    RefillData,
    StimProgram,
)
from devicelog.clinic.programs import pump_program_changes, stim_program_changes
from devicelog.services import InputError, parse_event_data

TODAY = dt.date(2026, 11, 23)
CAT = shipped_catalogue()


def history(model_code: str, *datas) -> DeviceHistory:
    events = tuple(
        Event(id=i + 1, device_id=1, occurred_on=dt.date(2026, 10, 1) + dt.timedelta(days=i), author="rn",
              recorded_at=dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc), data=d)
        for i, d in enumerate(datas)
    )
    return DeviceHistory(
        patient=PatientInfo(id=1, mrn="M1", name="Ann", birth_date=dt.date(1950, 1, 1)),
        device=DeviceInfo(id=1, serial="S1", model=CAT.device_model(model_code), implanted_on=dt.date(2025, 1, 1)),
        events=events,
    )


def problems(call):
    with pytest.raises(InputError) as info:
        call()
    return {p.field: p.message for p in info.value.problems}


# ----------------------------------------------------------------------------- parsers


def test_numbers_accept_comma_and_their_unit():
    assert forms.parse_number("volume_added_ml", "12,5 mL", "mL") == 12.5
    assert forms.parse_number("volume_added_ml", " 20 ", "mL") == 20.0
    assert forms.parse_number("volume_added_ml", "", "mL") is None


@pytest.mark.parametrize("text", ["abc", "1.2.3", "nan", "inf", "1e999", "--1", "12 mg"])
def test_numbers_refused_name_the_field_and_the_text(text):
    found = problems(lambda: forms.parse_number("volume_added_ml", text, "mL"))
    assert "volume_added_ml" in found and ("number" in found["volume_added_ml"])


def test_required_blank_number_says_so_with_unit():
    assert problems(lambda: forms.parse_number("x_ml", "  ", "mL", required=True)) == {"x_ml": "is required (mL)"}


def test_dates():
    assert forms.parse_date("d", "2026-11-20") == dt.date(2026, 11, 20)
    assert forms.parse_date("d", "today", today=TODAY) == TODAY
    assert forms.parse_date("d", "-3", today=TODAY) == dt.date(2026, 11, 20)
    assert "calendar date" in problems(lambda: forms.parse_date("d", "2026-02-30"))["d"]
    assert "YYYY-MM-DD" in problems(lambda: forms.parse_date("d", "20/11/2026"))["d"]


def test_structured_fields():
    assert forms.parse_contacts("c", "E1- E2+ E3 off") == {"E1": "-", "E2": "+", "E3": "off"}
    assert forms.parse_impedances("i", "E1 650, E2 4200 Ω") == [
        {"contact": "E1", "impedance_ohm": 650.0}, {"contact": "E2", "impedance_ohm": 4200.0}
    ]
    assert forms.parse_flex_steps("f", "0.05x8, 0.08 x 16") == [
        {"rate_ml_per_h": 0.05, "hours": 8.0}, {"rate_ml_per_h": 0.08, "hours": 16.0}
    ]
    assert forms.parse_opioids("o", "oxycodone 40 mg/day; fentanyl 25 mcg/h") == [
        {"opioid": "oxycodone", "dose_mg_per_day": 40.0}, {"opioid": "fentanyl", "patch_mcg_per_h": 25.0}
    ]
    assert "twice" in problems(lambda: forms.parse_contacts("c", "E1- E1+"))["c"]
    assert "catalogue" in problems(lambda: forms.parse_drug_list("d", "aspirin 3", ["morphine"]))["d"]


TEXT = st.one_of(st.text(max_size=60), st.text(alphabet="0123456789.,-+eE xXmLh:;Ω()", max_size=30))
PARSERS = [
    lambda t: forms.parse_number("f", t, "mL"),
    lambda t: forms.parse_int("f", t, "days"),
    lambda t: forms.parse_date("f", t, today=TODAY),
    lambda t: forms.parse_flag("f", t),
    lambda t: forms.parse_choice("f", t, (("a", "A"),)),
    lambda t: forms.parse_contacts("f", t),
    lambda t: forms.parse_impedances("f", t),
    lambda t: forms.parse_drug_list("f", t, ["morphine"]),
    lambda t: forms.parse_flex_steps("f", t),
    lambda t: forms.parse_opioids("f", t),
    lambda t: forms.parse_list("f", t),
    lambda t: forms.parse_udi_field("f", t),
]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(range(len(PARSERS))), TEXT)
def test_parsers_only_ever_refuse_with_input_error(index, text):
    try:
        PARSERS[index](text)
    except InputError as exc:
        assert exc.problems and all(p.field == "f" for p in exc.problems)


# ----------------------------------------------------------------------------- forms → records


MORPHINE = PumpProgram(mode="simple_continuous", drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=10)], dose_mg_per_day=2)


def refill_raw(**over):
    h = history("synchromed-ii-20", RefillData(volume_withdrawn_ml=3, volume_added_ml=20, reservoir_volume_after_ml=20,
                                               program=MORPHINE))
    raw = forms.defaults(EventKind.refill, h, TODAY)
    raw.update(over)
    return h, raw


def build(kind, model_code, raw, keep=()):
    fields = forms.event_fields(kind, CAT.device_model(model_code), CAT.drugs)
    typed = forms.parse_fields(fields, raw, today=TODAY, known_drugs=[d.code for d in CAT.drugs])
    return typed, parse_event_data(EventKind(kind).value, forms.event_values(kind, typed, keep))


def test_refill_defaults_come_from_the_device_and_last_refill():
    _, raw = refill_raw()
    assert raw["occurred_on"] == "2026-11-23"
    assert raw["volume_added_ml"] == "20" and raw["reservoir_volume_after_ml"] == "20"  # 20 mL reservoir
    assert raw["program.drug"] == "morphine" and raw["program.concentration_mg_per_ml"] == "10"
    assert raw["program.dose_mg_per_day"] == "2" and raw["low_alarm_ml"] == "2"
    assert raw.get("volume_withdrawn_ml") is None  # must be measured, never defaulted


def test_refill_form_builds_the_record_with_typed_values():
    _, raw = refill_raw(volume_withdrawn_ml="9,0", **{"program.dose_mg_per_day": "2.5",
                                                       "program.other_drugs": "bupivacaine 10"})
    typed, data = build(EventKind.refill, "synchromed-ii-20", raw)
    assert typed["occurred_on"] == TODAY
    assert isinstance(data, RefillData)
    assert data.volume_withdrawn_ml == 9.0 and data.program.dose_mg_per_day == 2.5
    assert [(d.drug, d.concentration_mg_per_ml) for d in data.program.drugs] == [("morphine", 10.0), ("bupivacaine", 10.0)]


def test_record_refusal_maps_back_to_its_form_field():
    _, raw = refill_raw(volume_withdrawn_ml="3", kit="cap", **{"program.concentration_mg_per_ml": "0"})
    fields = forms.event_fields(EventKind.refill, CAT.device_model("synchromed-ii-20"), CAT.drugs)
    with pytest.raises(InputError) as info:
        build(EventKind.refill, "synchromed-ii-20", raw)
    keys = {forms.field_for(p.field, fields) for p in info.value.problems}
    assert "program.concentration_mg_per_ml" in keys


def test_stimulator_programming_keeps_other_programs_and_shows_the_change():
    old = StimProgram(name="A", contacts={"E1": "-", "E2": "+"}, amplitude_ma=3.0, pulse_width_us=300, frequency_hz=50, waveform="tonic")
    other = StimProgram(name="B", contacts={"E3": "-", "E4": "+"}, amplitude_ma=1.0, pulse_width_us=200, frequency_hz=40, waveform="tonic")
    h = history("medtronic-intellis", ProgrammingData(stim_programs=[old, other], active_program="A"))
    raw = forms.defaults(EventKind.programming, h, TODAY)
    assert raw["stim.name"] == "A" and raw["stim.amplitude"] == "3" and raw["stim.amplitude_unit"] == "mA"
    raw["stim.amplitude"] = "3.5"
    programs, _ = forms.current_stim_programs(h)
    _, data = build(EventKind.programming, "medtronic-intellis", raw, [p.model_dump(mode="json") for p in programs])
    assert [p.name for p in data.stim_programs] == ["A", "B"] and data.active_program == "A"
    assert [c.line for c in stim_program_changes(old, data.stim_programs[0])] == ["amplitude: 3 mA → 3.5 mA"]


DRUGS = {d.code: d for d in CAT.drugs}


def test_pump_program_changes_name_each_value_with_units():
    new = PumpProgram(mode="simple_continuous", drugs=[DrugConcentration(drug="morphine", concentration_mg_per_ml=20)], dose_mg_per_day=3)
    # daily volume 2 mg/day ÷ 10 mg/mL = 0.2 mL/day → 3 ÷ 20 = 0.15 mL/day
    assert [c.line for c in pump_program_changes(MORPHINE, new, DRUGS)] == [
        "morphine concentration: 10 mg/mL → 20 mg/mL",
        "morphine dose: 2 mg/day → 3 mg/day",
        "daily volume: 0.200 mL/day → 0.150 mL/day",
    ]


def test_ziconotide_change_reads_in_mcg_per_day_in_the_one_diff():
    """Issue 13.4: the visit preview said "0.0024 mg/day → 0.0036 mg/day" while the
    history said "2.4 mcg/day → 3.6 mcg/day"; both now read the one diff."""

    def zico(dose_mg):
        return PumpProgram(mode="simple_continuous", drugs=[DrugConcentration(drug="ziconotide", concentration_mg_per_ml=0.025)],
                           dose_mg_per_day=dose_mg)

    # 0.0024 mg/day = 2.4 mcg/day; volume 0.0024 ÷ 0.025 = 0.096 mL/day; 0.0036 ÷ 0.025 = 0.144 mL/day
    lines = [c.line for c in pump_program_changes(zico(0.0024), zico(0.0036), DRUGS)]
    assert lines == ["ziconotide dose: 2.4 mcg/day → 3.6 mcg/day", "daily volume: 0.096 mL/day → 0.144 mL/day"]
    assert not any("mg/day" in line for line in lines)


def test_stim_changes_are_in_words():
    old = StimProgram(name="A", contacts={"E1": "-", "E2": "+"}, amplitude_ma=3.0, pulse_width_us=30, frequency_hz=10000,
                      waveform="high_frequency")
    new = StimProgram.model_validate({**old.model_dump(), "waveform": "tonic"})
    assert [c.line for c in stim_program_changes(old, new)] == ["waveform: high frequency → tonic"]


def test_the_duplicate_diff_is_gone():
    assert not hasattr(forms, "pump_program_changes") and not hasattr(forms, "stim_program_changes")


@pytest.mark.parametrize(
    "kind, model_code, raw",
    [
        (EventKind.interrogation, "synchromed-ii-20", {"battery_state": "eri", "battery_percent": "12", "alarms": ["eri"]}),
        (EventKind.interrogation, "medtronic-intellis", {"impedances": "E1 650, E2 4200", "last_full_charge_on": "-2"}),
        (EventKind.wound_check, "synchromed-ii-20", {"erythema_cm": "1.5", "drainage": "serous", "fever_c": "38.2", "meningism": True}),
        (EventKind.reintervention, "synchromed-ii-20", {"reintervention": "catheter_revision", "reason": "kink"}),
        (EventKind.trial_start, "abbott-proclaim-xr", {"baseline_nrs": "8"}),
        (EventKind.trial_end, "abbott-proclaim-xr", {"end_nrs": "3", "analgesics": "reduced", "patient_satisfied": True}),
        (EventKind.outcome, "synchromed-ii-20", {"pain_nrs": "4", "opioids": "oxycodone 40 mg/day", "functional_instrument": "ODI", "functional_score": "30"}),
    ],
)
def test_every_kind_builds_a_record(kind, model_code, raw):
    h = history(model_code)
    values = {**forms.defaults(kind, h, TODAY), **raw}
    _, data = build(kind, model_code, values)
    assert data.kind == kind.value
    # The form can show an existing entry again (amend) and rebuild the same record.
    again = forms.raw_from_data(kind, data, TODAY)
    _, rebuilt = build(kind, model_code, again)
    assert rebuilt == data
