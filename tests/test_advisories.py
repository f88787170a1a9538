"""Issue 18, section 1: safety notices (advisories, recalls) matched to devices.

Tiers (clinic.advisory): 1 exact serial or UDI serial; 2 lot; 3 model and manufacture
date (UDI (11)) inside the notice's range; 4 "possible": model only.  Severity follows
the notice's class: I → critical, II → high, III → routine.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from devicelog import services
from devicelog.clinic.advisory import AdvisoryIn, DeviceFacts, NoticeError, match_device, parse_code_info, read_notice
from devicelog.clinic.catalogue import shipped_catalogue
from devicelog.clinic.records import DeviceIn, PatientIn
from devicelog.problems import InputError
from devicelog.settings import Settings
from devicelog.store import advisories, audit, queries, tables
from devicelog.store.db import read_session, write_session
from devicelog.store.due import due_list
from tests.conftest import TODAY, user_args

D = dt.date
CAT = shipped_catalogue()


def notice(rules: dict, notice_class: str = "II", unparsed=()) -> AdvisoryIn:
    return AdvisoryIn.model_validate({
        "title": "Motor stall", "issued_on": "2019-08-01", "source": "Medtronic", "reference": "FA872",
        "recommended_action": "Inform the patient; reinforce alarm education.", "notice_class": notice_class,
        "rules": rules, "unparsed": list(unparsed),
    })


def facts(serial="NGP1", model="synchromed-ii-40", lot=None, made=None, udi_serial=None) -> DeviceFacts:
    return DeviceFacts(serial=serial, model_code=model, udi_lot=lot, udi_manufactured=made, udi_serial=udi_serial,
                       udi_di="00763000408633" if lot or made or udi_serial else None)


# ----------------------------------------------------------------------------- matching tiers (pure)


def test_tier_1_exact_serial_and_udi_serial():
    n = notice({"models": ["synchromed-ii-40"], "serials": ["NGP1"]})
    assert match_device(n, facts("NGP1")).tier == 1
    assert match_device(n, facts("ngp1")).tier == 1  # case is not part of a serial
    assert match_device(n, facts("OTHER", udi_serial="NGP1", lot="L9")).tier == 1
    # False positives the tier must not make: serial NGP1 is not NGP10 nor NGP11 nor XNGP1.
    for other in ("NGP10", "NGP11", "XNGP1"):
        assert match_device(n, facts(other)) is None, other


def test_tier_2_lot_and_its_false_positives():
    n = notice({"models": ["synchromed-ii-40"], "lots": ["L1"]})
    m = match_device(n, facts(lot="L1"))
    assert m.tier == 2 and "lot (10) L1" in m.evidence
    # A notice for lot L1 must not match the device of lot L10, nor of lot L11.
    assert match_device(n, facts(lot="L10")) is None
    assert match_device(n, facts(lot="L11")) is None
    # Nor a device of another model that happens to carry lot L1 (the notice names its model).
    assert match_device(n, facts(lot="L1", model="synchromed-ii-20")) is None


def test_tier_3_model_and_manufacture_date_range_and_its_edges():
    # The 2019 motor-stall notice: pumps made May 2018 to April 2019.
    n = notice({"models": ["synchromed-ii-40"], "manufactured_from": "2018-05-01", "manufactured_to": "2019-04-30"})
    assert match_device(n, facts(made=D(2018, 5, 1))).tier == 3  # first day inside
    assert match_device(n, facts(made=D(2019, 4, 30))).tier == 3  # last day inside
    # Two false positives the range must not make: a day before it and a day after it.
    assert match_device(n, facts(made=D(2018, 4, 30))) is None
    assert match_device(n, facts(made=D(2019, 5, 1))) is None
    # Manufacture date not scanned: it cannot be ruled out, so a "possible" match (tier 4).
    m = match_device(n, facts())
    assert m.tier == 4 and "manufacture date is not recorded" in m.evidence
    # Another model inside the range: not affected.
    assert match_device(n, facts(model="synchromed-ii-20", made=D(2018, 6, 1))) is None


def test_tier_4_model_only_is_possible_and_other_models_do_not_match():
    n = notice({"models": ["synchromed-ii-40"]})
    m = match_device(n, facts())
    assert m.tier == 4 and m.possible and "names no serial, lot or manufacture date" in m.evidence
    assert match_device(n, facts(model="prometra-ii-40")) is None


def test_no_match_and_the_best_tier_wins():
    n = notice({"models": ["synchromed-ii-40"], "serials": ["NGP1"], "lots": ["L1"]})
    # Listed serial and listed lot: the serial (tier 1) wins.
    assert match_device(n, facts("NGP1", lot="L1")).tier == 1
    # Known lot not listed, serial not listed: not affected (nothing "possible" about it).
    assert match_device(n, facts("NGP2", lot="L2")) is None
    # Lot not recorded: it could be L1, so possible.
    assert match_device(n, facts("NGP2")).tier == 4
    # Part of the notice unread: a device of the model it does not list is still "possible".
    unread = notice({"models": ["synchromed-ii-40"], "serials": ["NGP1"]}, unparsed=["serials 4000 to 4100"])
    assert match_device(unread, facts("NGP2")).tier == 4
    assert match_device(notice({"models": ["synchromed-ii-40"], "serials": ["NGP1"]}), facts("NGP2")) is None


def test_a_notice_that_could_match_nothing_is_refused():
    with pytest.raises(Exception, match="names no model, device identifier, serial or lot"):
        notice({})
    with pytest.raises(Exception, match="needs the models"):
        notice({"serials": ["A1"], "manufactured_from": "2018-01-01"})


# ----------------------------------------------------------------------------- reading files


OPENFDA = {
    "meta": {"results": {"total": 1}},
    "results": [{
        "res_event_number": "84000", "product_res_number": "Z-0001-2020", "event_date_initiated": "2020-01-15",
        "recall_status": "Open, Classified", "product_code": "LKK", "recalling_firm": "Medtronic Neuromodulation",
        "product_description": "SynchroMed II Implantable Infusion Pump, Model 8637-40",
        "code_info": "Serial numbers: NGP1, NGP2 and NGP3; Lot L1. UDI (01)00763000408633(21)NGP9; "
                     "GTIN 00763000408638; contact Medtronic for units distributed outside the US",
        "reason_for_recall": "Battery may deplete early.", "action": "Interrogate the pump at the next visit.",
        "classification": "Class I",
    }],
}


def test_openfda_code_info_read_as_far_as_it_goes_and_the_rest_reported():
    n, report = read_notice(json.dumps(OPENFDA), catalogue=CAT.device_models)
    assert n.form == "openfda" and n.notice_class == "I" and n.severity == "critical"
    assert n.issued_on == D(2020, 1, 15) and n.reference == "84000"
    # "Model 8637-40" picks the 40 mL SynchroMed II out of the two the name fits.
    assert n.rules.models == ["synchromed-ii-40"]
    assert n.rules.serials == ["NGP9", "NGP1", "NGP2", "NGP3"]  # the UDI's (21) first, then the list
    assert n.rules.lots == ["L1"]
    assert n.rules.device_identifiers == ["00763000408633"]
    # A GTIN with a wrong check digit (…638: the right one is 3) and the free text are kept, not dropped.
    assert "00763000408638" in n.unparsed
    assert any("contact Medtronic" in u for u in n.unparsed)
    assert any(line.startswith("NOT READ") and "contact Medtronic" in line for line in report)
    assert any("wrong check digit" in line for line in report)
    assert "Interrogate the pump" in n.recommended_action and "Battery may deplete early." in n.recommended_action


def test_openfda_without_a_class_asks_for_one_and_manufacture_range_is_read():
    data = json.loads(json.dumps(OPENFDA))
    del data["results"][0]["classification"]
    data["results"][0]["code_info"] = "All pumps manufactured between May 2018 and April 2019"
    with pytest.raises(NoticeError, match="give --class"):
        read_notice(json.dumps(data), catalogue=CAT.device_models)
    n, _ = read_notice(json.dumps(data), catalogue=CAT.device_models, notice_class="II", models=["synchromed-ii-40"])
    # The range rounds outwards (protects the patient): May 1st 2018 to April 30th 2019.
    assert (n.rules.manufactured_from, n.rules.manufactured_to) == (D(2018, 5, 1), D(2019, 4, 30))
    assert n.notice_class == "II" and n.rules.models == ["synchromed-ii-40"]


def test_code_info_lists_and_leftovers():
    info = parse_code_info("Sterile lot numbers: 0204B 0204D 0304A. EXP DATES 2/1/08-5/1/04")
    assert info.lots == ["0204B", "0204D", "0304A"]
    assert info.unparsed == ["Sterile", "EXP DATES 2/1/08-5/1/04"]
    assert parse_code_info("Lot #978933 & 978934").lots == ["978933", "978934"]
    assert parse_code_info("All serial numbers").unparsed == ["All serial numbers"]


def test_devicelog_csv_form():
    text = ("title,issued_on,source,recommended_action,notice_class,model,serial,lot\n"
            "Stall,2019-08-01,Medtronic,Inform,III,synchromed-ii-40,NGP1,L1\n"
            ",,,,,,NGP2,\n")
    n, report = read_notice(text)
    assert n.rules.serials == ["NGP1", "NGP2"] and n.rules.lots == ["L1"] and n.severity == "routine" and report == []
    with pytest.raises(NoticeError, match="unknown column"):
        read_notice("title,colour\nx,y\n")


# ----------------------------------------------------------------------------- the database


@pytest.fixture
def clinic(engine):
    with write_session(engine) as s:
        services.add_patient(session=s, today=TODAY, patient=PatientIn(mrn="M1", name="Ann Lee", birth_date=D(1950, 1, 2)), author="rn")
        services.add_patient(session=s, today=TODAY, patient=PatientIn(mrn="M2", name="Bo Kim", birth_date=D(1951, 1, 2)), author="rn")
        for mrn, serial, lot in (("M1", "NGP1", "L1"), ("M2", "NGP10", "L10")):
            services.add_device(session=s, device=DeviceIn(
                patient_mrn=mrn, model="synchromed-ii-40", serial=serial, implanted_on=D(2020, 1, 5),
                udi={"raw": f"(01)00763000408633(10){lot}(21){serial}", "device_identifier": "00763000408633", "lot": lot,
                     "serial": serial}), author="rn", today=TODAY)
    return engine


def advisory_items(engine, as_of=TODAY):
    with read_session(engine) as s:
        dl = due_list(s, as_of=as_of, settings=Settings())
    return [(e.item.device_serial, e.item.severity, e.item.due_on) for e in dl.entries if e.item.code.startswith("advisory_")]


def test_import_gives_a_due_item_until_acknowledged_and_the_database_says_so(clinic):
    n = notice({"models": ["synchromed-ii-40"], "lots": ["L1"]}, notice_class="I")
    with write_session(clinic) as s:
        row, pairs = advisories.import_notice(s, notice=n, author="rn", today=TODAY)
    # Lot L1 matches NGP1 only; NGP10 (lot L10) is not a match.
    assert [(d, m.tier) for _, d, m in pairs] == [(1, 2)]
    assert advisory_items(clinic) == [("NGP1", "critical", TODAY)]  # class I → critical, due the day it was matched
    with read_session(clinic) as s:
        [entry] = [e for e in due_list(s, as_of=TODAY, settings=Settings()).entries if e.item.code.startswith("advisory_")]
    assert entry.item.why.startswith("Inform the patient; reinforce alarm education.")
    assert "match 2 (lot)" in entry.item.why

    with write_session(clinic) as s:
        with pytest.raises(InputError, match="does not concern this device"):
            advisories.acknowledge(s, advisory_id=row.id, serial="NGP10", actions=["patient_informed"], note="",
                                   author="rn", done_on=TODAY, today=TODAY)
    with write_session(clinic) as s:
        advisories.acknowledge(s, advisory_id=row.id, serial="NGP1", actions=["patient_informed", "alarm_education"],
                               note="phoned", author="rn", done_on=TODAY, today=TODAY)
    assert advisory_items(clinic) == []
    with read_session(clinic) as s:
        acks = s.execute(select(tables.AdvisoryActionRow.__table__)).all()
        assert [(a.device_id, a.actions, a.note, a.author) for a in acks] == [(1, ["patient_informed", "alarm_education"], "phoned", "rn")]
        actions = [r[0] for r in s.execute(select(tables.AuditEntry.__table__.c.action))]
    assert "import safety notice" in actions and f"safety notice {row.id}: devices matched" in actions
    assert f"acknowledge safety notice {row.id}" in actions
    with write_session(clinic) as s:
        with pytest.raises(InputError, match="already acknowledged"):
            advisories.acknowledge(s, advisory_id=row.id, serial="NGP1", actions=["interrogation"], note="",
                                   author="rn", done_on=TODAY, today=TODAY)
    assert not audit.verify(clinic).problems


def test_the_generic_acknowledge_sends_a_notice_item_to_advisory_ack(clinic):
    """A notice item is closed with what was done (advisory_action), never by a bare
    reason: `due ack` on it is refused, names the command, and writes nothing."""
    n = notice({"models": ["synchromed-ii-40"], "lots": ["L1"]}, notice_class="II")
    with write_session(clinic) as s:
        row, _ = advisories.import_notice(s, notice=n, author="rn", today=TODAY)
    with read_session(clinic) as s:
        [entry] = [e for e in due_list(s, as_of=TODAY, settings=Settings()).entries if e.item.code.startswith("advisory_")]
        before = s.execute(select(func.count()).select_from(tables.AuditEntry)).scalar()
    with write_session(clinic) as s:
        with pytest.raises(InputError, match=f"devicelog advisory ack {row.id} NGP1"):
            services.acknowledge_item(session=s, item_key=entry.item.key, reason="done", author="rn")
    with read_session(clinic) as s:
        assert s.execute(select(func.count()).select_from(tables.AuditEntry)).scalar() == before
    assert advisory_items(clinic) == [("NGP1", "high", TODAY)]


def test_a_device_registered_later_is_matched_and_gets_its_item(clinic):
    with write_session(clinic) as s:
        advisories.import_notice(s, notice=notice({"models": ["synchromed-ii-40"], "serials": ["NGP7"]}), author="rn", today=TODAY)
    assert advisory_items(clinic) == []  # neither NGP1 nor NGP10 is listed
    later = TODAY + dt.timedelta(days=3)
    facts_on_form = DeviceFacts(serial="NGP7", model_code="synchromed-ii-40")
    with read_session(clinic) as s:
        [(notice_id, title, match)] = advisories.preview_matches(s, facts_on_form)  # the form's preview, before saving
    assert match.tier == 1
    with write_session(clinic) as s:
        services.add_device(session=s, device=DeviceIn(patient_mrn="M1", model="synchromed-ii-40", serial="NGP7",
                                                       implanted_on=D(2026, 1, 5)), author="rn", today=later)
    assert advisory_items(clinic, as_of=later) == [("NGP7", "high", later)]


def test_append_only_tables_refuse_changes(clinic):
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    with write_session(clinic) as s:
        advisories.import_notice(s, notice=notice({"models": ["synchromed-ii-40"]}), author="rn", today=TODAY)
    for sql in ("UPDATE advisory SET title = 'x'", "DELETE FROM advisory_match", "UPDATE advisory_match SET tier = 1"):
        with pytest.raises(DatabaseError):
            with clinic.begin() as conn:
                conn.execute(text(sql))
    from devicelog.store.schema import protection_problems

    with clinic.connect() as conn:
        assert protection_problems(conn) == []


def test_cli_import_list_show_ack(clinic, db_url, tmp_path, capsys):
    from devicelog.cli import main

    path = tmp_path / "recall.json"
    path.write_text(json.dumps(OPENFDA))
    assert main(["--db", db_url, *user_args("rn"), "advisory", "import", str(path), "--as-of", TODAY.isoformat()]) == 0
    err = capsys.readouterr().err
    assert "NOT READ from code_info" in err and "2 device(s) matched" in err
    assert main(["--db", db_url, "advisory", "list", "--format", "json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["severity"] == "critical" and listed["devices_matched"] == 2 and listed["open_items"] == 2
    assert main(["--db", db_url, *user_args("rn"), "advisory", "show", "1", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    # NGP1 is listed by serial (tier 1); NGP10 carries lot L10, not L1, but the notice has unread text: possible.
    assert [(d["device_serial"], d["tier"]) for d in shown["implanted"]] == [("NGP1", 1), ("NGP10", 4)]
    assert shown["explanted"] == []
    assert main(["--db", db_url, *user_args("rn"), "advisory", "ack", "1", "NGP1", "--done", "interrogation",
                 "--on", TODAY.isoformat()]) == 0
    assert main(["--db", db_url, "advisory", "show", "1"]) == 0
    out = capsys.readouterr().out
    assert "acknowledged 2026-11-23" in out and "interrogation" in out and "NOT READ (check by hand)" in out
    assert main(["--db", db_url, *user_args("rn"), "advisory", "ack", "9", "NGP1", "--done", "interrogation"]) == 1
    assert "no safety notice has this number" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the TUI


async def test_tui_notices_screen_acknowledge_and_flag_at_registration(clinic):
    """F7 opens the notices; the affected device is listed with its tier; k, space, ctrl+s
    records what was done (checked in the database); the device screen names the notice;
    a device typed on the registration form that matches a notice is flagged before saving."""
    from devicelog.tui.app import make_app
    from devicelog.tui.screens.advisories import AcknowledgeScreen, AdvisoriesScreen
    from devicelog.tui.screens.register import DeviceRegisterScreen
    from tests.test_tui import settle, type_into

    with write_session(clinic) as s:
        advisories.import_notice(s, notice=notice({"models": ["synchromed-ii-40"], "lots": ["L1"], "serials": ["NGP5"]}),
                                 author="rn", today=TODAY)
    app = make_app(clinic, Settings(), TODAY, "nurse")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("f7")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AdvisoriesScreen)
        assert [(a.serial, a.tier) for a in screen.affected] == [("NGP1", 2)]  # lot L10 (NGP10) is not lot L1
        await pilot.press("tab", "k")
        await settle(pilot)
        assert isinstance(app.screen, AcknowledgeScreen)
        await pilot.press("space", "down", "space")  # patient informed, alarm education
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is screen
        assert screen.affected[0].acknowledged_on == TODAY
        await pilot.press("escape")
        await settle(pilot)

        await pilot.press("f3")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, DeviceRegisterScreen)
        form.rows["model"].control.value = "synchromed-ii-40"
        await type_into(pilot, form.rows["serial"], "NGP5")
        await settle(pilot)
        flag = form.query_one("#advisory-flag")
        assert flag.display and "SAFETY NOTICE" in str(flag.render()) and "match 1" in str(flag.render())
        # NGP55 is not NGP5; with no lot recorded it may still be of lot L1: a possible match.
        await type_into(pilot, form.rows["serial"], "NGP55")
        await settle(pilot)
        shown_now = str(form.query_one("#advisory-flag").render())
        assert "match 4 (possible" in shown_now and "match 1" not in shown_now
        form.rows["model"].control.value = "synchromed-ii-20"  # another model: no notice concerns it
        await settle(pilot)
        assert not form.query_one("#advisory-flag").display
    with read_session(clinic) as s:
        [ack] = s.execute(select(tables.AdvisoryActionRow.__table__)).all()
        assert (ack.device_id, ack.actions, ack.author, ack.done_on) == (1, ["patient_informed", "alarm_education"], "nurse", TODAY)
    assert advisory_items(clinic) == []


def test_the_device_screen_line_names_the_notice(clinic):
    from devicelog.clinic.advisory import AdvisoryFlag

    flag = AdvisoryFlag(advisory_id=3, title="Motor stall", reference="FA872", source="Medtronic", notice_class="II",
                        recommended_action="Inform", tier=2, evidence="lot (10) L1", matched_on=TODAY)
    assert flag.line == "Safety notice 3 (class II, match: lot): Motor stall · NOT ACKNOWLEDGED"


def test_openfda_text_with_line_breaks_and_a_long_reason_is_read_and_the_cut_reported():
    data = json.loads(json.dumps(OPENFDA))
    data["results"][0]["product_description"] = "SynchroMed II\nImplantable Infusion Pump\r\nModel 8637-40"
    data["results"][0]["reason_for_recall"] = "x" * 2500
    n, report = read_notice(json.dumps(data), catalogue=CAT.device_models)
    assert n.title == "Medtronic Neuromodulation recall 84000: SynchroMed II Implantable Infusion Pump Model 8637-40"
    assert len(n.recommended_action) <= 2000 and n.recommended_action.endswith("[…]")
    assert any("cut to 2,000 characters" in line for line in report)
    with pytest.raises(NoticeError, match="are for openFDA files"):
        read_notice(json.dumps(notice({"serials": ["A1"]}).model_dump(mode="json")), models=["synchromed-ii-40"])
