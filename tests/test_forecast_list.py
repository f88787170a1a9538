"""Rule 24 (goals of care, death), devices out of service, item status and the due list,
and the purity of the forecast module."""

import re
import subprocess
import sys

from devicelog.clinic.due import make_item
from devicelog.clinic.forecast import due_items, forecast_device, status
from devicelog.clinic.records import BatteryState, DeviceKind, DeviceStatus, GoalsOfCare, PatientStatus
from tests.clinic_builders import (
    CATALOGUE,
    SETTINGS,
    Story,
    codes,
    d,
    device,
    interrogation,
    item,
    patient,
    refill,
    reintervention,
    simple_program,
    wound,
)

# ------------------------------------------------------------------ rule 24


def old_pump_story(**patient_kwargs) -> Story:
    # SynchroMed II implanted 2019-08-31: planned replacement 2026-02-28 (elective)
    return Story(device=device(implanted_on="2019-08-31"), patient=patient(**patient_kwargs)).add(
        "2026-01-05", refill(simple_program(2.0))
    )


def test_hospice_suppresses_elective_replacement_but_keeps_the_refill():
    forecast = forecast_device(old_pump_story(goals=GoalsOfCare.hospice).history, SETTINGS, CATALOGUE)
    assert "refill" in codes(forecast)
    assert "planned_replacement" not in codes(forecast)
    assert [(s.item.code, s.reason) for s in forecast.suppressed] == [
        ("planned_replacement", "elective item suppressed (hospice)")
    ]


def test_survival_under_3_months_also_suppresses_elective_items():
    forecast = forecast_device(
        old_pump_story(goals=GoalsOfCare.survival_under_3_months).history, SETTINGS, CATALOGUE
    )
    assert [s.item.code for s in forecast.suppressed] == ["planned_replacement"]


def test_hospice_suppresses_the_elective_pump_replacement_at_eri_and_keeps_the_eos_decision():
    # Rule 28: ERI is non-critical, its replacement elective; the pump still stops at EOS,
    # so a non-elective decision item stays (intrathecal drug must never lapse unplanned).
    story = old_pump_story(goals=GoalsOfCare.hospice).add("2026-01-05", interrogation(battery_state=BatteryState.eri))
    forecast = forecast_device(story.history, SETTINGS, CATALOGUE)
    assert "pump_replacement_eos" not in codes(forecast)
    assert "pump_replacement_eos" in [s.item.code for s in forecast.suppressed]
    assert "eos_decision" in codes(forecast)


def test_hospice_suppresses_stimulator_eri_replacement():
    story = Story(device=device("medtronic-primeadvanced"), patient=patient(goals=GoalsOfCare.hospice)).add(
        "2025-03-03", interrogation(battery_state=BatteryState.eri)
    )
    forecast = forecast_device(story.history, SETTINGS, CATALOGUE)
    assert "ipg_replacement_eri" not in codes(forecast)
    assert [s.item.code for s in forecast.suppressed] == ["ipg_replacement_eri"]


def test_active_treatment_suppresses_nothing():
    forecast = forecast_device(old_pump_story().history, SETTINGS, CATALOGUE)
    assert "planned_replacement" in codes(forecast) and forecast.suppressed == ()


def test_death_keeps_only_the_removal_before_cremation_note():
    story = old_pump_story(status=PatientStatus.deceased, died_on=d("2026-01-20"))
    forecast = forecast_device(story.history, SETTINGS, CATALOGUE)
    note = item(forecast, "removal_before_cremation")
    assert codes(forecast) == ["removal_before_cremation"]
    assert (note.due_on, note.rule) == (d("2026-01-20"), "rule 24")
    suppressed = sorted(s.item.code for s in forecast.suppressed)
    assert "refill" in suppressed and "planned_replacement" in suppressed
    assert all("deceased" in s.reason for s in forecast.suppressed)


def test_death_with_the_device_already_explanted_has_no_note():
    story = Story(
        device=device(status=DeviceStatus.explanted),
        patient=patient(status=PatientStatus.deceased, died_on=d("2026-01-20")),
    )
    assert forecast_device(story.history, SETTINGS, CATALOGUE).items == ()


# ------------------------------------------------------------------ out of service


def test_explanted_pump_lists_only_the_wound_checks_of_the_explant():
    # explant 2025-06-02: day 10 → 2025-06-12, day 30 → 2025-07-02, day 90 → 2025-08-31
    story = (
        Story(device=device(status=DeviceStatus.explanted))
        .add("2025-01-06", refill(simple_program(2.0)))
        .add("2025-06-02", reintervention("explant"))
    )
    forecast = forecast_device(story.history, SETTINGS, CATALOGUE)
    assert sorted((i.code, i.due_on) for i in forecast.items) == [
        ("wound_check_day_10", d("2025-06-12")),
        ("wound_check_day_30", d("2025-07-02")),
        ("wound_check_day_90", d("2025-08-31")),
    ]


def test_replaced_device_without_explant_record_lists_nothing():
    story = Story(device=device(status=DeviceStatus.replaced)).add("2025-01-06", refill(simple_program(2.0)))
    assert forecast_device(story.history, SETTINGS, CATALOGUE).items == ()


def test_explanted_device_keeps_a_wound_escalation():
    story = (
        Story(device=device(status=DeviceStatus.explanted))
        .add("2025-06-02", reintervention("explant"))
        .add("2025-06-10", wound(fever_c=39.0))
    )
    assert "wound_escalation" in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


# ------------------------------------------------------------------ status


def test_status_overdue_due_upcoming():
    # due 2025-03-30, lead time 14 days
    refill_item = item(forecast_device(Story().add("2025-01-06", refill(simple_program(2.0))).history, SETTINGS, CATALOGUE), "refill")
    assert refill_item.due_on == d("2025-03-30")
    assert status(refill_item, d("2025-03-31"), SETTINGS) == "overdue"
    assert status(refill_item, d("2025-03-30"), SETTINGS) == "due"
    assert status(refill_item, d("2025-03-16"), SETTINGS) == "due"  # exactly 14 days ahead
    assert status(refill_item, d("2025-03-15"), SETTINGS) == "upcoming"


def test_items_do_not_depend_on_as_of():
    # the forecast takes no date: the same record gives the same items whatever the day
    story = Story().add("2025-01-06", refill(simple_program(2.0)))
    assert forecast_device(story.history, SETTINGS, CATALOGUE) == forecast_device(story.history, SETTINGS, CATALOGUE)


# ------------------------------------------------------------------ due list


def test_due_list_sorted_overdue_first_then_date_then_severity():
    pump = Story().add("2025-01-06", refill(simple_program(2.0)))  # refill due 2025-03-30
    scs = Story(device=device("abbott-proclaim-xr", implanted_on="2025-03-20").model_copy(update={"id": 11, "serial": "SN-11"}))
    scs.add("2025-03-30", interrogation(alarms=["motor_stall"]))  # critical, due 2025-03-30
    rows = due_items([pump.history, scs.history], d("2025-04-01"), SETTINGS, CATALOGUE, within_days=30)
    summary = [(i.code, i.due_on, s) for i, s in rows]
    # overdue: wound checks of the pump implanted 2025-01-06 (day 10, 30), then 2025-03-30 with
    # the critical alarm before the high refill; then due/upcoming by date
    assert summary[:4] == [
        ("wound_check_day_10", d("2025-01-16"), "overdue"),
        ("wound_check_day_30", d("2025-02-05"), "overdue"),
        ("alarm_motor_stall", d("2025-03-30"), "overdue"),
        ("refill", d("2025-03-30"), "overdue"),
    ]
    assert [s for _, s in rows] == sorted((s for _, s in rows), key=["overdue", "due", "upcoming"].index)
    # nothing beyond 2025-05-01 (as_of + 30 days)
    assert all(i.due_on <= d("2025-05-01") for i, _ in rows)


def test_due_list_filters_by_kind():
    pump = Story().add("2025-01-06", refill(simple_program(2.0)))
    scs = Story(device=device("abbott-proclaim-xr").model_copy(update={"id": 11, "serial": "SN-11"}))
    rows = due_items([pump.history, scs.history], d("2025-01-01"), SETTINGS, CATALOGUE, kinds=[DeviceKind.spinal_cord_stimulator])
    assert {i.device_serial for i, _ in rows} == {"SN-11"}


def test_due_items_accept_a_drug_list_or_mapping():
    pump = Story().add("2025-01-06", refill(simple_program(2.0)))
    by_catalogue = due_items([pump.history], d("2025-01-01"), SETTINGS, CATALOGUE)
    by_list = due_items([pump.history], d("2025-01-01"), SETTINGS, CATALOGUE.drugs)
    by_map = due_items([pump.history], d("2025-01-01"), SETTINGS, {x.code: x for x in CATALOGUE.drugs})
    assert by_catalogue == by_list == by_map


def test_due_item_carries_patient_and_device():
    pump = Story().add("2025-01-06", refill(simple_program(2.0)))
    refill_item = item(forecast_device(pump.history, SETTINGS, CATALOGUE), "refill")
    assert (refill_item.patient_mrn, refill_item.patient_name, refill_item.device_serial) == ("MRN-001", "Ada Test", "SN-10")
    assert refill_item.device_model == "Medtronic SynchroMed II 8637-20"
    assert refill_item.device_kind is DeviceKind.intrathecal_pump
    assert refill_item.key == f"10:refill:{pump.events[0].id}"


def test_make_item_is_frozen():
    made = make_item(Story().history, what="x", code="x", due_on=d("2025-01-01"), severity="routine", rule="r", why="w")
    try:
        made.code = "y"  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("DueItem should be frozen")


# ------------------------------------------------------------------ purity


def test_forecast_imports_no_database_or_screen_library():
    code = (
        "import sys, devicelog.clinic.forecast; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'sqlalchemy', 'sqlmodel')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_every_rule_function_cites_the_clinical_reference():
    from devicelog.clinic import alarms, battery, forecast, pump, trials, wounds

    rule_functions = [
        pump.daily_volume_ml,
        pump.bolus_allowance_ml_per_day,
        pump.low_reservoir_alarm_date,
        pump.refill_due_date,
        pump.drug_stability_limits,
        pump.ziconotide_refill_limit_days,
        pump.expected_residual_ml,
        pump.refill_discrepancy,
        pump.possible_pocket_fill,
        pump.titration_checks,
        pump.dose_checks,
        pump.concentration_checks,
        battery.pump_end_of_service_date,
        battery.planned_replacement_date,
        battery.primary_cell_eri_projection,
        battery.recharge_due_date,
        wounds.wound_check_schedule,
        wounds.wound_escalation_findings,
        trials.trial_outcome,
        trials.pns_lead_removal_date,
        alarms.alarm_task_date,
        alarms.impedance_out_of_range,
        forecast.removal_before_cremation_item,
        forecast.goals_of_care_filter,
    ]
    for function in rule_functions:
        doc = function.__doc__ or ""
        assert re.search(r"Rules? \d+", doc) and "domain.md" in doc, function.__name__
