"""Rules 20 and 22: wound checks after an implant or a revision, and same-day escalation.

Default schedule (settings): day 10 (window 7-14), day 30 (21-44), day 90 (75-104)."""

import pytest

from devicelog.clinic.forecast import forecast_device
from devicelog.clinic.records import Dehiscence, DeviceKind, Drainage, ImplantType
from devicelog.clinic.wounds import wound_escalation_findings
from tests.clinic_builders import (
    CATALOGUE,
    SETTINGS,
    Story,
    codes,
    d,
    device,
    item,
    reintervention,
    wound,
)


def wound_items(forecast):
    return sorted((i.code, i.due_on, i.latest_safe_on) for i in forecast.items if i.code.startswith("wound_check"))


def scs_story(**kwargs) -> Story:
    return Story(device=device("abbott-proclaim-xr", implanted_on="2025-01-06", **kwargs))


def test_wound_checks_after_implant():
    # implant 2025-01-06: day 10 → 2025-01-16 (window end day 14 → 2025-01-20);
    # day 30 → 2025-02-05 (day 44 → 2025-02-19); day 90 → 2025-04-06 (day 104 → 2025-04-20)
    forecast = forecast_device(scs_story().history, SETTINGS, CATALOGUE)
    assert wound_items(forecast) == [
        ("wound_check_day_10", d("2025-01-16"), d("2025-01-20")),
        ("wound_check_day_30", d("2025-02-05"), d("2025-02-19")),
        ("wound_check_day_90", d("2025-04-06"), d("2025-04-20")),
    ]
    day10 = item(forecast, "wound_check_day_10")
    assert day10.rule == "rule 20" and "window day 7-14" in day10.why


def test_wound_check_at_the_window_start_satisfies_day_10_only():
    # day 7 = 2025-01-13 is the first day of the day-10 window; the day-30 window starts day 21
    story = scs_story().add("2025-01-13", wound())
    assert [c for c, _, _ in wound_items(forecast_device(story.history, SETTINGS, CATALOGUE))] == [
        "wound_check_day_30",
        "wound_check_day_90",
    ]


def test_wound_check_before_the_window_does_not_count():
    # day 6 = 2025-01-12: before the day-10 window
    story = scs_story().add("2025-01-12", wound())
    assert "wound_check_day_10" in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


def test_late_wound_check_satisfies_the_earlier_windows():
    # a check on day 80 (2025-03-27) is on or after every window start (day 7, day 21 and
    # day 75 = 2025-03-22), so all three are satisfied
    story = scs_story().add("2025-03-27", wound())
    assert wound_items(forecast_device(story.history, SETTINGS, CATALOGUE)) == []


def test_surgical_reintervention_starts_a_new_series():
    # all implant checks done; pocket revision 2025-06-02 → day 10 2025-06-12 (window end
    # 2025-06-16), day 30 2025-07-02 (end 2025-07-16), day 90 2025-08-31 (end 2025-09-14)
    story = scs_story().add("2025-04-01", wound()).add("2025-06-02", reintervention("pocket_revision"))
    assert wound_items(forecast_device(story.history, SETTINGS, CATALOGUE)) == [
        ("wound_check_day_10", d("2025-06-12"), d("2025-06-16")),
        ("wound_check_day_30", d("2025-07-02"), d("2025-07-16")),
        ("wound_check_day_90", d("2025-08-31"), d("2025-09-14")),
    ]


def test_non_surgical_reintervention_starts_no_series():
    story = scs_story().add("2025-04-01", wound()).add("2025-06-02", reintervention("dye_study"))
    assert wound_items(forecast_device(story.history, SETTINGS, CATALOGUE)) == []


def test_trial_implant_gets_wound_checks():
    story = scs_story(implant_type=ImplantType.trial)
    assert len(wound_items(forecast_device(story.history, SETTINGS, CATALOGUE))) == 3


# ------------------------------------------------------------------ escalation (rule 22)


@pytest.mark.parametrize(
    ("fields", "kind", "escalate"),
    [
        ({"drainage": Drainage.purulent}, DeviceKind.spinal_cord_stimulator, True),
        ({"drainage": Drainage.serous}, DeviceKind.spinal_cord_stimulator, False),
        ({"dehiscence": Dehiscence.exposed_hardware}, DeviceKind.spinal_cord_stimulator, True),
        ({"dehiscence": Dehiscence.partial}, DeviceKind.spinal_cord_stimulator, False),
        ({"fever_c": 38.0}, DeviceKind.spinal_cord_stimulator, False),  # > 38.0 °C, strictly
        ({"fever_c": 38.1}, DeviceKind.spinal_cord_stimulator, True),
        ({"meningism": True}, DeviceKind.intrathecal_pump, True),
        ({"meningism": True}, DeviceKind.spinal_cord_stimulator, False),  # rule: in an IT patient
    ],
)
def test_escalation_findings(fields, kind, escalate):
    assert bool(wound_escalation_findings(wound(**fields), kind)) is escalate


def test_purulent_drainage_escalates_same_day_critical():
    story = scs_story().add("2025-01-16", wound(drainage=Drainage.purulent, fever_c=38.4))
    escalation = item(forecast_device(story.history, SETTINGS, CATALOGUE), "wound_escalation")
    assert (escalation.due_on, escalation.latest_safe_on) == (d("2025-01-16"), d("2025-01-16"))
    assert escalation.severity == "critical" and escalation.rule == "rule 22"
    assert "purulent drainage" in escalation.why and "38.4 °C" in escalation.why


def test_escalation_cleared_by_a_later_clean_wound_check():
    story = scs_story().add("2025-01-16", wound(drainage=Drainage.purulent)).add("2025-01-20", wound())
    assert "wound_escalation" not in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


def test_escalation_stays_while_later_checks_still_show_findings():
    story = (
        scs_story()
        .add("2025-01-16", wound(drainage=Drainage.purulent))
        .add("2025-01-18", wound(dehiscence=Dehiscence.exposed_hardware))
    )
    escalations = [i for i in forecast_device(story.history, SETTINGS, CATALOGUE).items if i.code == "wound_escalation"]
    assert [e.due_on for e in escalations] == [d("2025-01-18")]


def test_escalation_cleared_by_a_later_surgical_reintervention():
    story = (
        scs_story()
        .add("2025-01-16", wound(drainage=Drainage.purulent))
        .add("2025-01-17", reintervention("pocket_revision"))
    )
    assert "wound_escalation" not in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


def test_meningism_escalates_in_a_pump_patient():
    story = Story().add("2025-01-16", wound(meningism=True))
    assert "wound_escalation" in codes(forecast_device(story.history, SETTINGS, CATALOGUE))


def test_checks_never_logged_become_notes_once_the_patient_is_seen_after_surveillance_closed():
    # A stimulator implanted 2020-03-01 and first seen in devicelog on 2023-01-10.
    # Surveillance closes at the last window's end, day 104: 2020-03-01 + 104 days =
    # 2020-06-13 (Mar +30, Apr +30, May +31, Jun +13).  2023-01-10 is after it, so the
    # three checks cannot be done any more: notes, not items.
    from tests.clinic_builders import interrogation

    story = Story(device=device("abbott-proclaim-xr", implanted_on="2020-03-01")).add(
        "2023-01-10", interrogation(battery_percent=80)
    )
    forecast = forecast_device(story.history, SETTINGS, CATALOGUE)
    assert wound_items(forecast) == []
    missed = [w for w in forecast.warnings if w.code.startswith("wound_check_day_")]
    assert [w.code for w in missed] == ["wound_check_day_10_missed", "wound_check_day_30_missed", "wound_check_day_90_missed"]
    assert all("2020-06-13" in w.message for w in missed)


def test_checks_stay_overdue_while_the_patient_has_not_been_seen_since():
    # Implant 2025-01-06, an interrogation on day 5 (2025-01-11), nothing after: the three
    # checks stay items however late it gets (status is computed against as_of).
    from tests.clinic_builders import interrogation

    story = scs_story().add("2025-01-11", interrogation(battery_percent=90))
    assert [c for c, _, _ in wound_items(forecast_device(story.history, SETTINGS, CATALOGUE))] == [
        "wound_check_day_10",
        "wound_check_day_30",
        "wound_check_day_90",
    ]
