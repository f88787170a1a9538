"""A small clinic for the due-list tests, built through the use cases, and the due list
read from it (``devicelog.store.due``).

Expected dates below are worked out by hand from the clinical reference (as_of =
2026-11-23, the suite's TODAY):

- Ann Lee (MRN0001), SynchroMed II 20 mL NGP100, implanted 2025-01-05, refilled
  2026-11-01 to 20 mL of morphine 10 mg/mL at 2 mg/day: 0.2 mL/day; (20 − 2 mL
  alarm) / 0.2 = 90 days → low-reservoir alarm 2027-01-30; refill due = min(alarm −
  7 days = 2027-01-23, fill + 90 days morphine stability = 2027-01-30) = 2027-01-23.
  Planned replacement: implant + 78 months = 2031-07-05.
- Bob Stone (MRN0002), hospice, SynchroMed II 40 mL NGP200 implanted 2020-03-01:
  planned replacement 2020-03-01 + 78 months = 2026-09-01 (elective → suppressed,
  rule 24); his refill (hydromorphone) is never suppressed.
- Cara Diaz (MRN0003), SCS IPG SCS300 implanted 2026-11-13: wound check day 10 =
  2026-11-23 (due today), day 30 = 2026-12-13, day 90 = 2027-02-11.
- Dan Roe (MRN0004), pump NGP400 explanted 2026-11-16 after a morphine refill on
  2026-10-01: only the wound checks after the explant: day 10 = 2026-11-26, day 30 =
  2026-12-16, day 90 = 2027-02-14; no refill, no replacement, no follow-up.
- Eve Park (MRN0005), SPRINT PNS PNS500 implanted 2026-10-01: lead removal at day 60
  = 2026-11-30.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from devicelog import services
from devicelog.clinic.records import (
    DeviceIn,
    DrugConcentration,
    EventIn,
    GoalsOfCare,
    PatientIn,
    PumpProgram,
    RefillData,
    ReinterventionData,
    WoundCheckData,
)
from devicelog.settings import Settings
from devicelog.store.db import read_session, write_session
from devicelog.store.due import due_list, parse_kind
from tests.conftest import TODAY

D = dt.date
AS_OF = TODAY  # 2026-11-23


def _refill(drug: str, conc: float, dose: float, after: float = 20.0) -> RefillData:
    return RefillData(
        volume_withdrawn_ml=2.0,
        volume_added_ml=after,
        reservoir_volume_after_ml=after,
        program=PumpProgram(mode="simple_continuous", drugs=[DrugConcentration(drug=drug, concentration_mg_per_ml=conc)], dose_mg_per_day=dose),
    )


def _device_model(kind: str) -> str:
    from devicelog.clinic.catalogue import shipped_catalogue

    for m in shipped_catalogue().device_models:
        if m.kind.value == kind and (kind != "peripheral_nerve_stimulator" or m.lead_removal_day == 60):
            return m.code
    raise LookupError(kind)


def build_clinic(engine, today: dt.date = TODAY) -> None:
    """The five patients of the module docstring."""

    def event(s, serial, on, data):
        services.record_event(
            session=s, event=EventIn(device_serial=serial, occurred_on=on, author="rn", data=data), today=today
        )

    with write_session(engine) as s:
        for mrn, name, goals in [
            ("MRN0001", "Ann Lee", GoalsOfCare.active_treatment),
            ("MRN0002", "Bob Stone", GoalsOfCare.hospice),
            ("MRN0003", "Cara Diaz", GoalsOfCare.active_treatment),
            ("MRN0004", "Dan Roe", GoalsOfCare.active_treatment),
            ("MRN0005", "Eve Park", GoalsOfCare.active_treatment),
        ]:
            services.add_patient(
                session=s,
                today=dt.date(2026, 11, 23), patient=PatientIn(mrn=mrn, name=name, birth_date=D(1950, 1, 2), goals_of_care=goals),
                author="rn",
            )
        for mrn, model, serial, implanted in [
            ("MRN0001", "synchromed-ii-20", "NGP100", D(2025, 1, 5)),
            ("MRN0002", "synchromed-ii-40", "NGP200", D(2020, 3, 1)),
            ("MRN0003", _device_model("spinal_cord_stimulator"), "SCS300", D(2026, 11, 13)),
            ("MRN0004", "synchromed-ii-20", "NGP400", D(2024, 1, 1)),
            ("MRN0005", _device_model("peripheral_nerve_stimulator"), "PNS500", D(2026, 10, 1)),
        ]:
            services.add_device(
                session=s,
                device=DeviceIn(patient_mrn=mrn, model=model, serial=serial, implanted_on=implanted),
                author="rn",
                today=today,
            )
        event(s, "NGP100", D(2026, 11, 1), _refill("morphine", 10, 2))
        event(s, "NGP200", D(2026, 11, 10), _refill("hydromorphone", 5, 1, after=40.0))
        event(s, "NGP400", D(2026, 10, 1), _refill("morphine", 10, 2))
        event(
            s,
            "NGP400",
            D(2026, 11, 16),
            ReinterventionData(reintervention="explant", reason="pocket infection", devices_involved=["NGP400"]),
        )
        # Old implants' wound checks were done: no stale wound items for Ann, Bob, Eve.
        for serial, implanted in [("NGP100", D(2025, 1, 5)), ("NGP200", D(2020, 3, 1)), ("PNS500", D(2026, 10, 1))]:
            for day in (10, 30, 90):
                on = implanted + dt.timedelta(days=day)
                if on <= today:
                    event(s, serial, on, WoundCheckData())


@pytest.fixture
def clinic(engine):
    build_clinic(engine)
    return engine


def load(engine, **kw):
    kw.setdefault("as_of", AS_OF)
    kw.setdefault("settings", Settings())
    with read_session(engine) as s:
        return due_list(s, **kw)


def by_serial_code(dl):
    return {(i.device_serial, i.code): i for i in dl.items}


def test_kind_short_names():
    assert parse_kind("pump").value == "intrathecal_pump"
    assert parse_kind("SCS").value == "spinal_cord_stimulator"
    assert parse_kind("drg").value == "drg_stimulator"
    assert parse_kind("pns").value == "peripheral_nerve_stimulator"
    assert parse_kind("intrathecal_pump").value == "intrathecal_pump"
    with pytest.raises(ValueError, match="unknown device kind 'pmp'"):
        parse_kind("pmp")


def test_order_is_overdue_first_then_by_date_and_dates_are_the_hand_worked_ones(clinic):
    dl = load(clinic, within_days=90)
    got = [(i.device_serial, i.code, i.due_on) for i in dl.items]
    assert got == [
        ("SCS300", "wound_check_day_10", D(2026, 11, 23)),
        ("NGP400", "wound_check_day_10", D(2026, 11, 26)),
        ("PNS500", "pns_lead_removal", D(2026, 11, 30)),  # high before routine on the same day
        ("PNS500", "follow_up", D(2026, 11, 30)),
        ("NGP200", "refill", D(2026, 12, 10)),
        ("SCS300", "wound_check_day_30", D(2026, 12, 13)),
        ("NGP400", "wound_check_day_30", D(2026, 12, 16)),
        ("PNS500", "wound_check_day_90", D(2026, 12, 30)),
        ("NGP100", "refill", D(2027, 1, 23)),
        ("SCS300", "wound_check_day_90", D(2027, 2, 11)),
        ("NGP400", "wound_check_day_90", D(2027, 2, 14)),
    ]
    assert dl.until == D(2027, 2, 21) and dl.within_days == 90
    assert [e.status for e in dl.entries][:2] == ["due", "due"]
    assert by_serial_code(dl)[("NGP100", "refill")].latest_safe_on == D(2027, 1, 30)


def test_overdue_items_come_first_whatever_their_date(clinic):
    # Two weeks later, Cara's day-10 check (2026-11-23) and Dan's (2026-11-26) are overdue.
    dl = load(clinic, as_of=D(2026, 12, 7), within_days=7)
    assert [(e.status, e.item.device_serial, e.item.code) for e in dl.entries] == [
        ("overdue", "SCS300", "wound_check_day_10"),
        ("overdue", "NGP400", "wound_check_day_10"),
        ("overdue", "PNS500", "pns_lead_removal"),
        ("overdue", "PNS500", "follow_up"),
        ("due", "NGP200", "refill"),
        ("due", "SCS300", "wound_check_day_30"),
    ]


def test_explanted_pump_lists_only_what_the_explant_requires(clinic):
    dl = load(clinic)
    codes = sorted(code for serial, code in by_serial_code(dl) if serial == "NGP400")
    assert codes == ["wound_check_day_10", "wound_check_day_30", "wound_check_day_90"]
    assert all(s.item.device_serial != "NGP400" for s in dl.suppressed)
    why = by_serial_code(dl)[("NGP400", "wound_check_day_10")].why
    assert "explant on 2026-11-16" in why


def test_hospice_suppresses_the_overdue_elective_replacement_but_not_the_refill(clinic):
    dl = load(clinic, within_days=30)
    assert [(s.item.device_serial, s.item.code, s.item.due_on) for s in dl.suppressed] == [
        ("NGP200", "planned_replacement", D(2026, 9, 1))
    ]
    assert ("NGP200", "refill") in by_serial_code(dl)
    assert ("NGP200", "planned_replacement") not in by_serial_code(dl)
    assert dl.suppressed_by_reason() == [("elective item suppressed (hospice)", 1)]
    assert dl.suppressed_text().startswith("1 item suppressed by goals of care")


def test_within_days_keeps_items_due_up_to_and_including_the_last_day(clinic):
    # 2026-11-23 + 7 = 2026-11-30: the PNS lead removal on that day is in, the refill on 12-10 is out.
    dl = load(clinic, within_days=7)
    assert [i.code for i in dl.items] == ["wound_check_day_10", "wound_check_day_10", "pns_lead_removal", "follow_up"]
    dl = load(clinic, within_days=6)
    assert [i.code for i in dl.items] == ["wound_check_day_10", "wound_check_day_10"]


def test_kinds_filter_by_device_kind(clinic):
    dl = load(clinic, kinds=[parse_kind("pump")])
    assert {i.device_serial for i in dl.items} == {"NGP100", "NGP200", "NGP400"}
    dl = load(clinic, kinds=[parse_kind("scs"), parse_kind("pns")])
    assert {i.device_serial for i in dl.items} == {"SCS300", "PNS500"}
    assert dl.suppressed == ()  # the hospice patient's pump is not in this list
    assert load(clinic, kinds=[parse_kind("drg")]).entries == ()


def test_the_list_agrees_with_the_forecasts_own_due_items(clinic):
    from devicelog.clinic.forecast import due_items
    from devicelog.store import queries

    settings = Settings()
    with read_session(clinic) as s:
        expected = due_items(
            list(queries.load_histories(s)), AS_OF, settings, queries.drugs_by_code(s), within_days=45
        )
    dl = load(clinic, within_days=45)
    assert [(e.item, e.status) for e in dl.entries] == expected


def test_empty_range_says_so(clinic):
    dl = load(clinic, kinds=[parse_kind("drg")], within_days=14)
    assert dl.entries == ()
    assert dl.empty_text() == "Nothing overdue, and nothing due between 2026-11-23 and 2026-12-07."


def test_negative_range_is_refused(clinic):
    with pytest.raises(ValueError, match="within_days = -3"):
        load(clinic, within_days=-3)


def test_forecast_notes_travel_with_the_list(clinic):
    dl = load(clinic)
    codes = {(n.device_serial, n.warning.code) for n in dl.notes}
    assert ("NGP200", "compounded_bud_missing") in codes


def test_a_different_forecast_source_slots_in(clinic):
    """A maintained next-due table would be a source; the list logic stays the same."""
    from devicelog.store.due import ComputedForecasts

    computed = ComputedForecasts()

    class OnlyPumps:
        def forecasts(self, session, *, settings, kinds):
            for f in computed.forecasts(session, settings=settings, kinds=kinds):
                if f.history.device.model.is_pump:
                    yield f

    with read_session(clinic) as s:
        dl = due_list(s, as_of=AS_OF, settings=Settings(), within_days=30, source=OnlyPumps())
    assert {i.device_serial for i in dl.items} == {"NGP200", "NGP400"}


def test_the_suppressed_foot_line_groups_dated_reasons_and_keeps_every_count():
    """A 100,000-patient list had ~700 "patient deceased on <date>" reasons on one line."""
    import datetime as dt

    from devicelog.clinic.due import SuppressedItem
    from devicelog.store.due import DueList

    def item(n):
        return SimpleNamespace(n=n)

    reasons = ["patient deceased on 2025-08-25"] * 3 + ["patient deceased on 2026-01-02"] * 2
    reasons += ["elective item suppressed (hospice)"] * 4 + ["patient deceased on 2024-05-01 x"]
    dl = DueList(
        as_of=dt.date(2026, 11, 23), until=None, kinds=(), entries=(),
        suppressed=tuple(SuppressedItem(item(i), r) for i, r in enumerate(reasons)),
    )
    assert dl.suppressed_by_kind_of_reason() == [
        ("patient deceased on various dates", 5),
        ("elective item suppressed (hospice)", 4),
        ("patient deceased on 2024-05-01 x", 1),
    ]
    assert dl.suppressed_text() == (
        "10 items suppressed by goals of care (rule 24), not listed: 5 × patient deceased on various dates; "
        "4 × elective item suppressed (hospice); 1 × patient deceased on 2024-05-01 x."
    )
    one_date = DueList(as_of=dl.as_of, until=None, kinds=(), entries=(), suppressed=dl.suppressed[3:5])
    assert one_date.suppressed_by_kind_of_reason() == [("patient deceased on 2026-01-02", 2)]
    assert sum(c for _, c in dl.suppressed_by_reason()) == 10  # the JSON's reasons keep every date
