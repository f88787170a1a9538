"""Opening a history reads rows in Core and validates each event's JSON text with
pydantic (``store.queries._read_events``) instead of ORM objects and ``to_event``, and
``build_report`` formats each pump program once and leaves the trends and the JSON
copy of each entry's data until they are read (issue 8).

Pinned here against the way it was done before, on every device of a demo clinic
(amendments and voided entries included) and on the hand-built clinic of
tests/test_history.py: the same events, histories, corrections and reports.
"""

import dataclasses
import datetime as dt
from collections import defaultdict

import pytest
from sqlmodel import select

from devicelog import demo, services
from devicelog.clinic.history import effective_events
from devicelog.clinic.records import ProgrammingData, RefillData
from devicelog.reports import history as rh
from devicelog.settings import Settings
from devicelog.store import queries, tables
from devicelog.store.db import read_session, write_session
from tests.conftest import TODAY
from tests.test_history import make_clinic


# ---------------------------------------------------------------- the ORM path, as it was


def orm_raw_events(session, device_ids):
    found = defaultdict(list)
    rows = session.exec(select(tables.EventRow).where(tables.EventRow.device_id.in_(list(device_ids))).order_by(tables.EventRow.id))
    for row in rows.all():
        found[row.device_id].append(queries.to_event(row))
    return found


def orm_histories(session, device_ids=None):
    """``load_histories`` as it read before: ORM rows, ``to_device``, ``to_patient``, ``to_event``."""
    cat = {m.code: m for m in queries.catalogue(session).device_models}
    query = select(tables.Device, tables.Patient).join(tables.Patient)
    if device_ids is not None:
        query = query.where(tables.Device.id.in_(list(device_ids)))
    pairs = session.exec(query.order_by(tables.Device.id)).all()
    serials = {d.id: d.serial for d, _ in session.exec(select(tables.Device, tables.Patient).join(tables.Patient)).all()}
    replaces = {d.replaced_by_id: d.serial for d, _ in pairs if d.replaced_by_id}
    events = orm_raw_events(session, [d.id for d, _ in pairs])
    out = []
    for device, patient in pairs:
        info = queries.to_device(device, cat[device.model_code], serials)
        if device.id in replaces:
            info = info.model_copy(update={"replaces_serial": replaces[device.id]})
        out.append(
            queries.DeviceHistory(patient=queries.to_patient(patient), device=info, events=tuple(effective_events(events.get(device.id, []))))
        )
    return out


def orm_corrections(session, device_ids):
    found = defaultdict(list)
    amendments = session.exec(
        select(tables.EventRow).where(tables.EventRow.device_id.in_(list(device_ids)), tables.EventRow.amends_id.is_not(None))
    ).all()
    for row in amendments:
        found[row.device_id].append(queries.to_event(row))
    wanted = sorted({row.amends_id for row in amendments})
    if wanted:
        for row in session.exec(select(tables.EventRow).where(tables.EventRow.id.in_(wanted))).all():
            found[row.device_id].append(queries.to_event(row))
    return found


def eager_report(session, device_ids, scope):
    """The report as ``load_report`` built it before: ORM inputs, every part computed."""
    histories = orm_histories(session, device_ids)
    drugs = {d.code: d for d in queries.catalogue(session).drugs}
    report = rh.build_report(histories, orm_corrections(session, device_ids), Settings(), drugs, TODAY, scope=scope)
    return report


# ---------------------------------------------------------------- clinics


@pytest.fixture
def demo_clinic(engine):
    demo.build(engine, patients=30, seed=5, as_of=TODAY)
    with write_session(engine) as s:
        # An amendment typed with spaces around the author: ``Event`` trims it on reading.
        row = s.exec(select(tables.EventRow).where(tables.EventRow.kind == "refill").order_by(tables.EventRow.id)).first()
        data = RefillData.model_validate(row.data)
        services.amend_event(
            session=s, event_id=row.id, occurred_on=row.occurred_on, data=data, reason="checked", author="  rn.typed  ", today=TODAY
        )
    return engine


def all_devices(session):
    return session.exec(select(tables.Device.id, tables.Device.patient_id).order_by(tables.Device.id)).all()


def test_demo_clinic_has_what_the_pins_need(demo_clinic):
    with read_session(demo_clinic) as s:
        rows = s.exec(select(tables.EventRow)).all()
        assert any(r.voided for r in rows) and any(r.amends_id and not r.voided for r in rows)
        assert any(d.replaced_by_id for d in s.exec(select(tables.Device)).all())
        assert any(r.author != r.author.strip() for r in rows)


# ---------------------------------------------------------------- loading


def test_events_read_as_the_orm_read_them(demo_clinic):
    with read_session(demo_clinic) as s:
        ids = [d for d, _ in all_devices(s)]
        new, old = queries.raw_events(s, ids), orm_raw_events(s, ids)
        assert dict(new) == dict(old)
        assert sum(len(v) for v in new.values()) > 500
        assert any(e.author == "rn.typed" for v in new.values() for e in v)


def test_histories_as_the_orm_path_gave_them(demo_clinic):
    with read_session(demo_clinic) as s:
        devices = all_devices(s)
        assert list(queries.load_histories(s)) == orm_histories(s)
        for device_id, _ in devices:
            assert list(queries.load_histories(s, [device_id])) == orm_histories(s, [device_id])
        by_patient = defaultdict(list)
        for device_id, patient_id in devices:
            by_patient[patient_id].append(device_id)
        for ids in by_patient.values():
            assert list(queries.load_histories(s, ids)) == orm_histories(s, ids)
        assert list(queries.load_histories(s, [])) == []


def test_corrections_as_before(demo_clinic):
    with read_session(demo_clinic) as s:
        ids = [d for d, _ in all_devices(s)]
        new, old = rh.load_corrections(s, ids), orm_corrections(s, ids)
        assert new.keys() == old.keys() and new
        for device_id in new:
            assert sorted(new[device_id], key=lambda e: e.id) == sorted(old[device_id], key=lambda e: e.id)


def test_same_report_for_every_device_and_patient(demo_clinic):
    with read_session(demo_clinic) as s:
        devices = all_devices(s)
        for device_id, _ in devices:
            new = rh.load_report(s, device_id=device_id, settings=Settings(), as_of=TODAY)
            serial = new.devices[0].serial
            old = eager_report(s, [device_id], f"device {serial}")
            assert rh.to_json_dict(new) == rh.to_json_dict(old)
            assert rh.render_text(new) == rh.render_text(old)
        for patient_id in {p for _, p in devices}:
            first = next(d for d, p in devices if p == patient_id)
            new = rh.load_report(s, device_id=first, settings=Settings(), as_of=TODAY, whole_patient=True)
            ids = [d.id for d in queries.devices_of_patient(s, patient_id)]
            old = eager_report(s, ids, f"patient {new.patient_mrn} (all devices)")
            assert rh.render_json(new) == rh.render_json(old)


def test_same_report_on_the_hand_built_clinic(engine):
    make_clinic(engine)
    with read_session(engine) as s:
        for serial, whole in (("NGP100", False), ("NGP200", True), ("SCS300", False)):
            new = rh.load_report(s, serial, settings=Settings(), as_of=TODAY, whole_patient=whole)
            device = queries.device_by_serial(s, serial)
            ids = [d.id for d in queries.devices_of_patient(s, device.patient_id)] if whole else [device.id]
            assert rh.render_json(new) == rh.render_json(eager_report(s, ids, new.scope))


# ---------------------------------------------------------------- building


def test_deferred_parts_are_what_computing_them_at_once_gives(demo_clinic):
    with read_session(demo_clinic) as s:
        device_id = max(
            (d for d, _ in all_devices(s)), key=lambda d: len(queries.raw_events(s, [d]).get(d, []))
        )
        histories = list(queries.load_histories(s, [device_id]))
        drugs = queries.drugs_by_code(s)
        report = rh.build_report(histories, rh.load_corrections(s, [device_id]), Settings(), drugs, TODAY)
    # Read after the session is closed, as the TUI's Trends tab does.
    assert report.device_trends == rh.device_trends(histories, Settings(), drugs)
    assert report.device_trends[0].series
    assert report.patient_series == rh.patient_series(histories)
    effective = {e.id: e for e in histories[0].events}
    shown = [e for e in report.timeline if e.event_id in effective]
    assert shown and all(e.data == effective[e.event_id].data.model_dump(mode="json") for e in shown)
    fields = {f.name for f in dataclasses.fields(rh.HistoryReport)}
    assert {"device_trends", "patient_series"} <= fields and {"device_trends", "patient_series"} <= dataclasses.asdict(report).keys()
    assert "_deferred_device_trends" not in rh.to_json_dict(report)


def test_a_timeline_entry_built_by_hand_keeps_its_data():
    a = rh.TimelineEntry(1, "NGP1", dt.date(2025, 1, 1), "refill", "Refill", "rn", "text")
    b = rh.TimelineEntry(2, "NGP1", dt.date(2025, 1, 1), "refill", "Refill", "rn", "text", data={"x": 1})
    a.data["y"] = 2
    assert a.data == {"y": 2} and b.data == {"x": 1}
    assert rh.TimelineEntry(3, "NGP1", dt.date(2025, 1, 1), "refill", "Refill", "rn", "text").data == {}
    assert dataclasses.replace(b, event_id=4).data == {"x": 1}


def test_program_texts_looked_up_are_the_ones_computed(demo_clinic):
    with read_session(demo_clinic) as s:
        drugs = queries.drugs_by_code(s)
        events = [e for v in queries.raw_events(s, [d for d, _ in all_devices(s)]).values() for e in v]
    programs = [e.data.program for e in events if isinstance(e.data, RefillData)]
    programs += [e.data.pump_program for e in events if isinstance(e.data, ProgrammingData) and e.data.pump_program]
    assert len({p.model_dump_json() for p in programs}) > 3
    texts, fields = {}, {}
    for p in programs:
        assert rh.pump_program_text(p, drugs, texts) == rh.pump_program_text(p, drugs)
        assert rh.pump_fields(p, drugs, fields) == rh.pump_fields(p, drugs)
    # A value that prints differently is a different key (−0.0 is not 0.0).
    zero, minus = (programs[0].model_copy(update={"bolus_ml": v}) for v in (0.0, -0.0))
    memo = {}
    assert rh.pump_program_text(zero, drugs, memo) == rh.pump_program_text(zero, drugs)
    assert rh.pump_fields(minus, drugs, {}) == rh.pump_fields(minus, drugs)
    assert rh.pump_program_text(minus, drugs, memo) == rh.pump_program_text(minus, drugs)
