"""Issue 15 on either database: who the author is, and a chained record of who read what.

SQLite: the author is the OS login, ``--user`` a display name beside it.  Reads
(history, export, FHIR, an unredacted due list, the TUI's device and history screens)
each leave a ``read: …`` entry that ``verify`` accepts, and ``devicelog audit`` lists."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from devicelog import identity
from devicelog.cli import main
from devicelog.settings import Settings
from devicelog.store import audit
from tests.conftest import TODAY, recorded_author, requires_sqlite, user_args
from tests.test_history import make_clinic


@pytest.fixture
def clinic(engine):
    make_clinic(engine)
    return engine


def entries(engine) -> list[tuple[str, str, dict]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT author, action, payload FROM audit ORDER BY id")).all()
    return [(a, act, json.loads(p)) for a, act, p in rows]


def reads(engine) -> list[tuple[str, str, dict]]:
    return [(a, act, p["read"]) for a, act, p in entries(engine) if act.startswith("read: ")]


# --------------------------------------------------------------------- identity (SQLite)


def test_local_author_puts_the_display_name_beside_the_os_login(monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "jdoe")
    assert identity.local_author(None) == "jdoe"
    assert identity.local_author("Jane Doe") == "jdoe (Jane Doe)"
    assert identity.local_author("jdoe") == "jdoe"
    assert identity.login_of("jdoe (Jane Doe)") == "jdoe"


@requires_sqlite
def test_user_option_never_replaces_the_os_login(clinic, db_url, monkeypatch, capsys):
    """Before issue 15 ``--user dr.who`` was recorded as the author, instead of the login."""
    monkeypatch.setattr("getpass.getuser", lambda: "jdoe")
    assert main(["--db", db_url, "--user", "dr.who", "mri", "NGP200", "--mri-on", "2026-11-25",
                 "--record-checklist", "--on", "2026-11-23", "--as-of", "2026-11-23"]) == 0
    with clinic.connect() as conn:
        event_author = conn.execute(text("SELECT author FROM event ORDER BY id DESC LIMIT 1")).scalar()
    written = [a for a, act, _ in entries(clinic) if act.startswith("record ")][-1]
    assert event_author == written == "jdoe (dr.who)"


def test_user_option_is_refused_on_a_server(db_url, capsys, monkeypatch):
    monkeypatch.setenv("DEVICELOG_DB", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["--user", "dr.who", "due"]) == 2  # refused before any connection is tried
    err = capsys.readouterr().err.strip()
    assert err == (
        "devicelog: --user 'dr.who' is refused on a database server: the author is the login you connected with "
        "(ask for a login of your own, and connect with it)"
    )


# --------------------------------------------------------------------- reads


def test_a_read_entry_chains_and_verifies(clinic):
    """The payload readers took an entry without changes followed by what was read as
    'its payload is not a list of changes' before issue 15."""
    audit.log_read(clinic, author="rn", what="history of device NGP100", patients=["MRN001"], devices=["NGP100"])
    report = audit.verify(clinic)
    assert report.problems == []
    assert reads(clinic) == [("rn", "read: history of device NGP100", {"patients": ["MRN001"], "devices": ["NGP100"]})]


def test_history_export_fhir_and_an_unredacted_due_list_are_logged(clinic, db_url, tmp_path, capsys):
    who = recorded_author("rn.ann")
    as_user = user_args("rn.ann")
    assert main(["--db", db_url, *as_user, "history", "NGP100", "--as-of", "2026-11-23"]) == 0
    assert main(["--db", db_url, *as_user, "export", "-o", str(tmp_path / "all.json")]) == 0
    assert main(["--db", db_url, *as_user, "fhir", "--patient", "MRN001", "-o", str(tmp_path / "p.json")]) == 0
    assert main(["--db", db_url, *as_user, "due", "--as-of", "2026-11-23", "--format", "csv", "-o", str(tmp_path / "d.csv")]) == 0
    assert main(["--db", db_url, *as_user, "due", "--as-of", "2026-11-23", "--redact"]) == 0  # no names: not logged
    capsys.readouterr()
    found = reads(clinic)
    assert [(a, act) for a, act, _ in found] == [
        (who, "read: history of device NGP100"),
        (who, f"read: export of the whole clinic to {tmp_path / 'all.json'}"),
        (who, "read: FHIR export of patient MRN001"),
        (who, "read: due list as of 2026-11-23 (csv)"),
    ]
    assert found[0][2] == {"patients": ["MRN001"], "devices": ["NGP100"]}
    assert found[1][2]["scope"] == "every patient (export)"
    assert found[3][2]["scope"] == f"every patient on the due list as of 2026-11-23, written to {tmp_path / 'd.csv'}"
    assert audit.verify(clinic).problems == []


def test_unknown_serial_logs_no_read(clinic, db_url, capsys):
    assert main(["--db", db_url, "history", "NOPE"]) == 1
    assert reads(clinic) == []


async def test_opening_a_device_and_its_history_in_the_tui_is_logged(clinic):
    from devicelog.store import queries
    from devicelog.store.db import read_session
    from devicelog.tui.app import make_app
    from devicelog.tui.screens.device import DeviceScreen
    from tests.test_history_tui import SIZE, settle

    with read_session(clinic) as s:
        ids = {d.serial: d.id for d in queries.devices_of_patient(s, queries.patient_by_mrn(s, "MRN001").id)}
    app = make_app(clinic, Settings(), TODAY, "rn.ann")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert reads(clinic) == []  # the main screen (search, warnings) is not a patient's record
        app.push_screen(DeviceScreen(ids["SCS300"]))
        await settle(pilot)
        await pilot.press("h")
        await settle(pilot)
        app.action_reload()  # reading again what is on screen is not another opening
        await settle(pilot)
    assert [(a, act, r["patients"]) for a, act, r in reads(clinic)] == [
        ("rn.ann", "read: device screen SCS300 (patient MRN001)", ["MRN001"]),
        ("rn.ann", "read: history of device SCS300", ["MRN001"]),
    ]


# --------------------------------------------------------------------- examining the trail


def test_audit_command_by_patient_login_dates_and_json(clinic, db_url, capsys):
    audit.log_read(clinic, author="clerk (Pat)", what="history of device NGP100", patients=["MRN001"], devices=["NGP100"])
    audit.log_read(clinic, author="rn", what="export of the whole clinic", scope="every patient (export)")
    assert main(["--db", db_url, "audit", "--patient", "MRN001", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)["entries"]
    # make_clinic's writes about MRN001 (patient, devices, events; not the catalogue) and both reads
    assert found[0]["action"] == "add patient" and found[0]["changes"] == ["patient 1"]
    assert not any(e["action"].startswith("catalogue") for e in found)
    assert [e["action"] for e in found[-2:]] == ["read: history of device NGP100", "read: export of the whole clinic"]
    assert main(["--db", db_url, "audit", "--login", "clerk"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "clerk (Pat)" in lines[0] and "read: history of device NGP100  [patient MRN001, device NGP100]" in lines[0]
    assert main(["--db", db_url, "audit", "--from", "2001-01-01", "--to", "2001-12-31"]) == 0
    assert capsys.readouterr().out == "no audit entries match\n"
    assert main(["--db", db_url, "audit", "--patient", "NOPE"]) == 1
    assert "patient = 'NOPE': no patient has this MRN" in capsys.readouterr().err


@requires_sqlite
def test_admin_is_a_servers_command(db_url, capsys):
    assert main(["init", db_url]) == 0
    capsys.readouterr()
    assert main(["--db", db_url, "admin", "who"]) == 2
    assert "roles are a database server's (PostgreSQL)" in capsys.readouterr().err
