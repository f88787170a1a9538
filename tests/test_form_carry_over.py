"""Issue 13.1: a form saved with no edits changes no setting of the device.

A refill form has no lockout field, and ``PumpProgram`` used to default
``bolus_lockout_min`` to 0: a plain refill saved "bolus lockout: 180 min → 0 min"
(demo NGP000016A, NGP000050A).  Every visit form of every device kind, opened on a
device with a program in force and saved with only the values a visit must add
(the residual withdrawn, a pain score...), must leave the pump program, the
low-reservoir alarm volume and the stimulation programs exactly as they were, read
back from the database.  The form values go through the same functions the visit
screen uses (``forms.defaults`` / ``raw_from_data``, ``parse_fields``,
``event_values`` with ``base_pump_program``).
"""

import datetime as dt
import itertools

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devicelog import forms, services
from devicelog.clinic.catalogue import shipped_catalogue
from devicelog.clinic.records import (
    DeviceIn,
    DeviceKind,
    EventIn,
    VISIT_FORM_KINDS,
    EventKind,
    PatientIn,
    ProgrammingData,
    PumpProgram,
    RefillData,
    StimProgram,
)
from devicelog.store import queries
from devicelog.store.db import read_session, write_session
from tests.conftest import TODAY

CAT = shipped_catalogue()
KNOWN = [d.code for d in CAT.drugs]
IMPLANTED = TODAY - dt.timedelta(days=60)
SERIALS = itertools.count(1)

# ------------------------------------------------------------------ programs in force

SETTING = st.one_of(st.none(), st.just(0.0), st.floats(0.01, 1.0, allow_nan=False))


@st.composite
def pump_programs(draw, constant_flow: bool) -> PumpProgram:
    # Within the drug-limit library's soft limits (issue 18.2: beyond them a save needs an
    # override, tested in test_drug_limits): morphine ≤ 10 mg/mL × ≤ 1.5 mL/day ≤ 15 mg/day
    # (PACC); bupivacaine ≤ 4 mg/mL × ≤ 4 mL/day (4 mg/day ÷ 1 mg/mL) ≤ 16 mg/day (< 20).
    concentration = draw(st.floats(1.0, 10.0, allow_nan=False))
    drugs = [{"drug": "morphine", "concentration_mg_per_ml": concentration}]
    if draw(st.booleans()):
        drugs.append({"drug": "bupivacaine", "concentration_mg_per_ml": draw(st.floats(0.5, 4.0, allow_nan=False))})
    mode = "constant_flow" if constant_flow else draw(st.sampled_from(["simple_continuous", "flex"]))
    values = {"mode": mode, "drugs": drugs}
    if mode == "simple_continuous":
        values["dose_mg_per_day"] = draw(st.floats(0.2, 4.0, allow_nan=False))
    elif mode == "flex":
        hours = draw(st.sampled_from([(24.0,), (8.0, 16.0), (6.0, 6.0, 12.0)]))
        values["flex_steps"] = [{"rate_ml_per_h": draw(st.floats(0.002, 0.02, allow_nan=False)), "hours": h} for h in hours]
    else:
        values["flow_rate_ml_per_day"] = draw(st.floats(0.3, 1.5, allow_nan=False))
    values["bolus_ml"] = draw(st.one_of(st.none(), st.just(0.0), st.floats(0.01, 0.5, allow_nan=False)))
    values["bolus_max_per_day"] = draw(st.one_of(st.none(), st.integers(0, 8)))
    values["bolus_lockout_min"] = draw(st.one_of(st.none(), st.integers(0, 480)))
    return PumpProgram.model_validate(values)


@st.composite
def stim_programs(draw) -> tuple[list[StimProgram], str]:
    names = draw(st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=2, unique=True))
    programs = []
    for name in names:
        unit = draw(st.sampled_from(["amplitude_ma", "amplitude_v"]))
        amplitude = draw(st.floats(0.1, 5.0, allow_nan=False))
        values = {
            "name": name,
            "group": draw(st.sampled_from(["", "G1"])),
            # Contacts named as the devices name them (the demo's SCS, DRG and PNS programs).
            "contacts": draw(st.sampled_from([{"E1": "-", "E2": "+", "E3": "off"}, {"L4:1": "off", "L4:2": "-", "L4:3": "+"},
                                              {"lead1": "-", "pad": "+"}, {"case": "+", "E0": "-"}])),
            unit: amplitude,
            "pulse_width_us": draw(st.floats(20, 500, allow_nan=False)),
            "frequency_hz": draw(st.floats(2, 1200, allow_nan=False)),
            "waveform": draw(st.sampled_from(["tonic", "burst", "high_frequency", "dtm", "closed_loop", "other"])),
            "cycling_on_s": draw(st.one_of(st.none(), st.floats(1, 600, allow_nan=False))),
            "cycling_off_s": draw(st.one_of(st.none(), st.floats(1, 600, allow_nan=False))),
            "patient_min_amplitude": draw(st.one_of(st.none(), st.floats(0, 0.1, allow_nan=False))),
            "patient_max_amplitude": draw(st.one_of(st.none(), st.floats(amplitude, 6.0, allow_nan=False))),
        }
        programs.append(StimProgram.model_validate(values))
    return programs, draw(st.sampled_from(names))


# ------------------------------------------------------------------ the device's settings


def device_settings(history) -> dict:
    """Every setting of the device a visit form could touch, as stored."""
    program = forms.current_pump_program(history)
    stims, active = forms.current_stim_programs(history)
    return {
        "pump program": program.model_dump(mode="json") if program else None,
        "low-reservoir alarm": forms.last_low_alarm_ml(history),
        "stimulation programs": {p.name: p.model_dump(mode="json") for p in stims},
        "active program": active,
    }


def read_history(engine, serial):
    with read_session(engine) as s:
        return queries.history_by_serial(s, serial)


def fill_what_a_visit_adds(fields, raw: dict) -> dict:
    """A value in each required field the form left blank (none of them a setting)."""
    raw = dict(raw)
    for f in fields:
        if f.required and raw.get(f.key) in (None, ""):
            if f.type == "choice":
                raw[f.key] = f.choices[0][0]
            elif f.type == "text":
                raw[f.key] = "checked"
            elif f.type == "date":
                raw[f.key] = TODAY.isoformat()
            else:
                raw[f.key] = "3"
    return raw


MODELS = [m for m in CAT.device_models]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_saving_any_visit_form_unedited_changes_no_setting(engine, data):
    model = data.draw(st.sampled_from(MODELS), label="model")
    pump = model.kind is DeviceKind.intrathecal_pump
    kinds = [k for k in VISIT_FORM_KINDS if (k is not EventKind.refill or pump) and (pump is False or k not in (EventKind.trial_start, EventKind.trial_end))]
    kind = data.draw(st.sampled_from(kinds), label="form")
    serial = f"S{next(SERIALS)}"
    with write_session(engine) as s:
        mrn = f"M{serial}"
        services.add_patient(session=s, patient=PatientIn(mrn=mrn, name="Ann Lee", birth_date=dt.date(1950, 1, 2)), author="rn", today=TODAY)
        services.add_device(session=s, device=DeviceIn(patient_mrn=mrn, model=model.code, serial=serial, implanted_on=IMPLANTED),
                            author="rn", today=TODAY)
        if pump:
            program = data.draw(pump_programs(model.constant_flow), label="program in force")
            low_alarm = data.draw(st.one_of(st.none(), st.floats(0.5, 4.0, allow_nan=False)), label="alarm volume")
            first = RefillData(volume_withdrawn_ml=0.0, volume_added_ml=model.reservoir_ml, reservoir_volume_after_ml=model.reservoir_ml,
                               program=program, low_alarm_ml=low_alarm)
        else:
            programs, active = data.draw(stim_programs(), label="programs in force")
            first = ProgrammingData(stim_programs=programs, active_program=active)
        first_id = services.record_event(session=s, event=EventIn(device_serial=serial, occurred_on=IMPLANTED, author="rn", data=first),
                                         today=TODAY).id
    history = read_history(engine, serial)
    before = device_settings(history)

    amend = kind in (EventKind.refill, EventKind.programming) and history.events[-1].kind is kind and data.draw(st.booleans(), label="amend")
    fields = forms.event_fields(kind, model, CAT.drugs)
    entry = history.events[-1] if amend else None
    raw = forms.raw_from_data(kind, entry.data, entry.occurred_on) if entry else forms.defaults(kind, history, TODAY)
    raw = fill_what_a_visit_adds(fields, raw)
    typed = forms.parse_fields(fields, raw, today=TODAY, known_drugs=KNOWN)
    keep = [p.model_dump(mode="json") for p in forms.current_stim_programs(history)[0]] if kind is EventKind.programming and not pump else []
    base = forms.base_pump_program(history, entry.data if entry else None)
    record = services.parse_event_data(kind.value, forms.event_values(kind, typed, keep, base_program=base))
    with write_session(engine) as s:
        if entry:
            services.amend_event(session=s, event_id=first_id, occurred_on=typed["occurred_on"], data=record, reason="checked",
                                 author="rn", today=TODAY)
        else:
            services.record_event(session=s, event=EventIn(device_serial=serial, occurred_on=typed["occurred_on"], author="rn", data=record),
                                  today=TODAY)
    after = read_history(engine, serial)
    assert len(after.events) == (1 if amend else 2)
    assert device_settings(after) == before


# ------------------------------------------------------------------ in the TUI, as a nurse types it


def _pump_with_lockout(engine):
    """NGP900, SynchroMed II 20 mL: morphine 10 mg/mL at 2 mg/day, patient bolus 0.1 mL × 4/day,
    lockout 180 min (as NGP000016A in the demo), filled to 20 mL on 2026-10-01."""
    from tests.test_tui import seed_clinic

    seed_clinic(engine)
    program = PumpProgram(mode="simple_continuous", drugs=[{"drug": "morphine", "concentration_mg_per_ml": 10.0}],
                          dose_mg_per_day=2.0, bolus_ml=0.1, bolus_max_per_day=4, bolus_lockout_min=180)
    with write_session(engine) as s:
        services.add_device(session=s, device=DeviceIn(patient_mrn="MRN001", model="synchromed-ii-20", serial="NGP900",
                                                       implanted_on=dt.date(2026, 9, 1)), author="rn", today=TODAY)
        services.record_event(session=s, event=EventIn(device_serial="NGP900", occurred_on=dt.date(2026, 10, 1), author="rn",
                                                       data=RefillData(volume_withdrawn_ml=0.0, volume_added_ml=20.0,
                                                                       reservoir_volume_after_ml=20.0, program=program)),
                              today=TODAY)
    return program


async def test_a_plain_refill_keeps_the_lockout_and_says_the_program_is_unchanged(engine):
    from tests.test_tui import SIZE, events, make, open_device, settle
    from devicelog.tui.screens.visit import VisitScreen

    program = _pump_with_lockout(engine)
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        await open_device(pilot, "NGP900")
        await pilot.press("r")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, VisitScreen)
        await pilot.press(*"9.0")
        await settle(pilot)
        preview = str(form.query_one("#preview").render())
        assert "program settings unchanged" in preview and "lockout" not in preview
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, VisitScreen)
    saved = [r for r in events(engine, "NGP900") if r.kind == "refill"][-1]
    assert saved.data["volume_withdrawn_ml"] == 9.0
    assert saved.data["program"] == program.model_dump(mode="json")  # lockout 180 min, bolus 0.1 mL × 4: as they were
    # Boluses since last fill left blank: unknown, not 0.0 (issue 13.5).
    assert saved.data["bolus_volume_since_last_fill_ml"] is None


async def test_amend_preview_of_an_unchanged_refill_shows_the_ledgers_reconciliation(engine):
    """NGP900 filled to 20 mL on 2026-10-01, then refilled on 2026-11-23 with 9.4 mL withdrawn:
    53 days × 0.2 mL/day = 10.6 → expected 9.4, worst case 0.2 + 0.1 × 4 = 0.6 mL/day.
    Amending that refill unchanged previews "+0.00 mL", not a self-comparison against
    the 20 mL it was filled to (−10.60 mL FLAG)."""
    from tests.test_tui import SIZE, make, open_device, settle, type_into
    from devicelog.clinic.ledger import refill_ledger
    from devicelog.tui.screens.visit import VisitScreen

    program = _pump_with_lockout(engine)
    with write_session(engine) as s:
        services.record_event(session=s, event=EventIn(device_serial="NGP900", occurred_on=TODAY, author="rn",
                                                       data=RefillData(volume_withdrawn_ml=9.4, volume_added_ml=20.0,
                                                                       reservoir_volume_after_ml=20.0, program=program)),
                              today=TODAY)
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_device(pilot, "NGP900")
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("a")  # the most recent entry: the refill of today
        await settle(pilot)
        form = app.screen
        assert isinstance(form, VisitScreen) and form.amend is not None
        await type_into(pilot, form.rows["amendment_reason"], "checked")
        await settle(pilot)
        preview = str(form.query_one("#preview").render())
        assert "Expected residual 9.4 mL" in preview and "+0.00 mL" in preview and "FLAG" not in preview
        assert "program settings unchanged" in preview
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is screen
    row = refill_ledger(read_history(engine, "NGP900"), app.settings, {d.code: d for d in CAT.drugs})[-1]
    assert row.expected_residual_ml == pytest.approx(9.4) and row.discrepancy_ml == pytest.approx(0.0)


async def test_ziconotide_programming_preview_reads_mcg_per_day(engine):
    """Ziconotide 25 mcg/mL at 2.4 mcg/day raised to 3.6 mcg/day: the preview says so in
    mcg/day (0.096 → 0.144 mL/day), as the history does."""
    from tests.test_tui import SIZE, make, open_device, settle, type_into
    from devicelog.tui.screens.visit import VisitScreen

    from tests.test_tui import seed_clinic

    seed_clinic(engine)
    zico = PumpProgram(mode="simple_continuous", drugs=[{"drug": "ziconotide", "concentration_mg_per_ml": 0.025}], dose_mg_per_day=0.0024)
    with write_session(engine) as s:
        services.add_device(session=s, device=DeviceIn(patient_mrn="MRN001", model="synchromed-ii-20", serial="NGP901",
                                                       implanted_on=dt.date(2026, 9, 1)), author="rn", today=TODAY)
        services.record_event(session=s, event=EventIn(device_serial="NGP901", occurred_on=dt.date(2026, 10, 1), author="rn",
                                                       data=RefillData(volume_withdrawn_ml=0.0, volume_added_ml=20.0,
                                                                       reservoir_volume_after_ml=20.0, program=zico)),
                              today=TODAY)
    app = make(engine)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_device(pilot, "NGP901")
        assert "ziconotide 25 mcg/mL; 2.4 mcg/day" in str(screen.query_one("#summary").render())
        screen._open_form(EventKind.programming)
        await settle(pilot)
        form = app.screen
        assert isinstance(form, VisitScreen)
        await type_into(pilot, form.rows["pump_program.dose_mg_per_day"], "0.0036")
        await settle(pilot)
        preview = str(form.query_one("#preview").render())
        assert "ziconotide dose: 2.4 mcg/day → 3.6 mcg/day" in preview
        assert "0.0024 mg/day" not in preview
