"""Issue 13 item 15: words a person reads use the labels on screen and count right."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from devicelog import forms
from devicelog.clinic.catalogue import shipped_catalogue
from devicelog.clinic.records import VISIT_FORM_KINDS, EventKind
from devicelog.clinic.words import plural, quoted
from devicelog.problems import Problem

CAT = shipped_catalogue()
SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def test_plural_counts_right():
    assert [plural(n, "problem") for n in (0, 1, 2)] == ["0 problems", "1 problem", "2 problems"]
    assert plural(1, "catalogue entry", "catalogue entries") == "1 catalogue entry"
    assert plural(2295, "event") == "2,295 events"


def test_a_long_or_huge_value_is_quoted_short():
    assert quoted("x" * 1_000_000) == repr("x" * 40) + "… (1,000,000 characters)"
    assert quoted(10**5000).startswith("a number of about 5,0")  # repr() of it would raise
    assert quoted("2027-01-15") == "'2027-01-15'" and quoted(41.0) == "41.0"
    assert len(str(Problem("name", "y" * 10**6, "is too long"))) < 100


def test_a_refusal_names_the_field_as_labelled_on_screen():
    # Seen: "Not saved: occurred_on = '2027-01-15'".
    text = forms.problem_text(Problem("occurred_on", "2027-01-15", "is after today (2026-11-23)"))
    assert text == "Date of visit '2027-01-15': is after today (2026-11-23)"
    refill = forms.event_fields(EventKind.refill, CAT.device_model("synchromed-ii-20"), CAT.drugs)
    text = forms.problem_text(Problem("data.program.dose_mg_per_day", 0.0, "must be greater than 0"), refill)
    assert text == "Daily dose (primary drug, mg/day) 0.0: must be greater than 0"


def test_messages_name_fields_and_values_in_the_forms_words():
    assert forms.humanise("mri_on 2026-11-20 is only for reintervention pre_mri_checklist, not lead_revision") == (
        "MRI date 2026-11-20 is only for reintervention pre mri checklist, not lead revision"
    )
    assert forms.humanise("is before the MRI on 2026-11-20 (data.mri_on): after the scan") == (
        "is before the MRI on 2026-11-20 (MRI date): after the scan"
    )


def test_coded_values_read_as_the_form_offers_them():
    # For the program-change diff (seen: "waveform: high_frequency → tonic").
    assert forms.field_label("stim_programs.0.waveform") == "Waveform"
    assert forms.value_label("waveform", "high_frequency") == "high frequency"
    assert forms.value_label("stim_programs.0.waveform", "tonic") == "tonic"
    assert forms.value_label("battery_state", "eri") == "ERI"
    assert forms.value_label("mode", "simple_continuous") == "simple continuous"
    assert forms.value_label("bolus_ml", 0.5) == "0.5"
    assert forms.value_label("goals_of_care", "survival_under_3_months") == "expected survival < 3 months"


@pytest.mark.parametrize("kind", VISIT_FORM_KINDS)
def test_every_field_of_every_form_reads_as_its_label(kind):
    for model in CAT.device_models:
        fields = forms.event_fields(kind, model, CAT.drugs)
        for f in fields:
            for path in f.paths:
                label = forms.field_label("data." + path, fields)
                assert label.startswith(f.label.removesuffix(")")), (path, label)
                assert not SNAKE.search(forms.problem_text(Problem("data." + path, "x", "is wrong"), fields))
                assert not SNAKE.search(forms.field_label("data." + path)), path


def test_a_field_no_form_shows_reads_in_words_with_its_unit():
    assert forms.field_label("data.expected_residual_ml") == "Expected residual (mL)"
    assert forms.field_label("birth_date") == "Date of birth"


def test_an_eri_alarm_says_its_name_once():
    # Seen: "ERI (elective replacement indicator) alarm (elective replacement indicator)".
    from devicelog.clinic.alarms import alarm_items
    from devicelog.clinic.history import DeviceHistory, DeviceInfo, PatientInfo
    from devicelog.clinic.records import Alarm, Event, InterrogationData
    from devicelog.settings import Settings

    on = dt.date(2026, 11, 20)
    data = InterrogationData(alarms=[Alarm(code="eri", note="elective replacement indicator")])
    history = DeviceHistory(
        patient=PatientInfo(id=1, mrn="M1", name="Ann", birth_date=dt.date(1950, 1, 1)),
        device=DeviceInfo(id=1, serial="S1", model=CAT.device_model("synchromed-ii-20"), implanted_on=dt.date(2020, 1, 1)),
        events=(Event(id=1, device_id=1, occurred_on=on, author="rn",
                      recorded_at=dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc), data=data),),
    )
    [item] = [i for i in alarm_items(history, Settings()) if i.code == "alarm_eri"]
    assert item.why.startswith("ERI (elective replacement indicator) alarm at the interrogation on 2026-11-20")
    assert item.why.count("elective replacement indicator") == 1


def test_a_battery_never_interrogated_says_which_cell():
    # Seen: "Battery: battery; not interrogated yet".
    from devicelog.clinic.history import DeviceHistory, DeviceInfo, PatientInfo
    from devicelog.tui.format import battery_summary

    def summary(code):
        return battery_summary(DeviceHistory(
            patient=PatientInfo(id=1, mrn="M1", name="Ann", birth_date=dt.date(1950, 1, 1)),
            device=DeviceInfo(id=1, serial="S1", model=CAT.device_model(code), implanted_on=dt.date(2020, 1, 1)),
            events=()))

    assert summary("synchromed-ii-20") == "not interrogated yet (primary cell)"
    assert summary("medtronic-intellis") == "not interrogated yet (rechargeable)"


def test_one_day_of_delivery_is_counted_in_the_singular():
    # Seen on the MRI checklist: "filled to 20.0 mL on 2026-12-02, 1 days at the programmed rate".
    from devicelog.clinic import mri
    from tests.test_mri import fill, history, program

    h = history("prometra-ii-20", (dt.date(2026, 11, 22), fill(20.0, program(1.0, ("morphine", 10)))))
    _, why = mri.expected_volume_now(h, dt.date(2026, 11, 23))
    assert "on 2026-11-22, 1 day at the programmed rate" in why


@pytest.mark.parametrize("user", ["u" * 81, "nurse\x1b]0;x\x07", "  "])
def test_a_user_name_no_record_can_hold_is_refused_before_anything_runs(user, capsys):
    # Issue 19: a --user longer than 80 characters gave a pydantic traceback at the first save.
    from devicelog.cli import main

    assert main(["--user", user, "due"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("devicelog: --user") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "\x1b" not in err
