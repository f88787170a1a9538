"""Issue 15 on a real PostgreSQL server: each person's own login, the roles' rights as the
server enforces them (through devicelog and through plain SQL), and who read what.

Login roles are cluster-wide: each test makes its own, named with a uuid, and drops
them afterwards.  The group roles (``devicelog_nurse`` …) are shared by every test
database of the server, as they would be by a clinic's databases."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from devicelog import services
from devicelog.cli import main
from devicelog.clinic.records import EventIn, OutcomeData
from devicelog.store import access, audit, tables
from devicelog.store.db import make_engine, read_session, resolve_url, write_session
from tests.conftest import TODAY, requires_pg
from tests.test_history import make_clinic

pytestmark = requires_pg

ROLES = ("nurse", "clinician", "scheduler", "auditor", "admin")


@pytest.fixture
def server(engine, db_url):
    """The hand-built clinic, ``admin setup`` run by the database owner, and one login per
    role: {role: (login, url, engine)}."""
    make_clinic(engine)
    access.setup(engine)
    tag = uuid.uuid4().hex[:8]
    admin = create_engine(resolve_url(db_url), isolation_level="AUTOCOMMIT")
    people = {}
    with admin.connect() as conn:
        for role in ROLES:
            login = f"t_{role}_{tag}"
            conn.execute(text(f'CREATE ROLE "{login}" LOGIN'))
            access.grant(engine, login, role)
            url = db_url.replace("://postgres@", f"://{login}@", 1)
            people[role] = (login, url, make_engine(url))
    yield people
    for _, _, eng in people.values():
        eng.dispose()
    with admin.connect() as conn:
        for login, _, _ in people.values():
            conn.execute(text(f'DROP ROLE IF EXISTS "{login}"'))
    admin.dispose()


def refused(eng, sql: str) -> bool:
    """Whether the server refuses ``sql`` to this login for want of a privilege (SQLSTATE 42501)."""
    with eng.connect() as conn:
        try:
            conn.execute(text(sql))
        except DBAPIError as exc:
            return getattr(exc.orig, "sqlstate", None) == "42501"
        finally:
            conn.rollback()
    return False


def audit_rows(engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT author, action, payload FROM audit ORDER BY id"))]


# --------------------------------------------------------------------- setup


def test_setup_hands_every_table_to_a_nologin_owner(engine, server):
    with engine.connect() as conn:
        owners = set(conn.execute(text("SELECT tableowner FROM pg_tables WHERE schemaname = current_schema()")).scalars())
        can_login = conn.execute(text("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'devicelog_owner'")).scalar()
    assert owners == {"devicelog_owner"} and can_login is False
    access.setup(engine)  # again (after an upgrade): nothing breaks
    assert audit.verify(engine).problems == []


# --------------------------------------------------------------------- append-only against psql


TAMPERING = [
    "UPDATE event SET occurred_on = occurred_on + 1",
    "DELETE FROM event",
    "TRUNCATE event",
    "UPDATE audit SET author = 'x'",
    "DELETE FROM audit",
    "TRUNCATE audit",
    "UPDATE patient SET name = 'x'",
    "DELETE FROM patient",
    "UPDATE device SET serial = 'x'",
    "ALTER TABLE event DISABLE TRIGGER event_no_update",
    "ALTER TABLE event DISABLE ROW LEVEL SECURITY",
    "DROP TRIGGER event_no_delete ON event",
    "ALTER TABLE event ADD COLUMN x int",
    "DROP TABLE audit",
    "CREATE OR REPLACE FUNCTION devicelog_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    "CREATE TABLE public.mine (x int)",
    "TRUNCATE due_item",
]


@pytest.mark.parametrize("role", ["nurse", "clinician", "scheduler", "auditor", "admin"])
def test_no_application_role_can_rewrite_the_record_with_plain_sql(server, role):
    _, _, eng = server[role]
    assert [sql for sql in TAMPERING if not refused(eng, sql)] == []


def test_an_audit_entry_signed_with_another_name_is_refused(server):
    login, _, eng = server["nurse"]
    row = "(now(), '{}', 'x', '{{\"changes\":[]}}', '{}', '{}')"
    insert = "INSERT INTO audit (at, author, action, payload, prev_hash, hash) VALUES "
    assert refused(eng, insert + row.format("someone.else", "a" * 64, "b" * 64))
    with eng.connect() as conn:  # signed by the login itself: the server lets it in (verify then names a broken chain)
        conn.execute(text(insert + row.format(login, "c" * 64, "d" * 64)))
        conn.rollback()


# --------------------------------------------------------------------- each role's rights


def test_nurse_records_a_visit_as_their_login_and_may_not_amend(server, engine):
    login, url, eng = server["nurse"]
    with write_session(eng) as s:
        row = services.record_event(
            session=s, event=EventIn(device_serial="SCS300", occurred_on=TODAY, author=login, data=OutcomeData(pain_nrs=4)), today=TODAY
        )
    with pytest.raises(access.AccessRefused, match="devicelog_clinician"):
        with write_session(eng) as s:
            services.void_event(session=s, event_id=row.id, reason="typo", author=login)
    # Through devicelog's command line: a pre-MRI checklist is an entry a nurse records.
    assert main(["--db", url, "mri", "NGP200", "--mri-on", "2026-11-25", "--record-checklist", "--on", "2026-11-23", "--as-of", "2026-11-23"]) == 0
    with read_session(eng) as s:
        authors = [r[0] for r in s.exec(select(tables.EventRow.author).order_by(tables.EventRow.id.desc()).limit(2))]
    assert authors == [login, login]
    # the visit, the checklist and the read of the device the mri command made: each signed by the login
    assert [a for a, _, _ in audit_rows(engine)][-2:] == [login] * 2


def test_the_author_is_the_login_whatever_user_says(server, engine, capsys):
    login, url, _ = server["nurse"]
    before = len(audit_rows(engine))
    assert main(["--db", url, "--user", "dr.somebody.else", "history", "NGP100"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--user 'dr.somebody.else' is refused on a database server" in err
    assert len(audit_rows(engine)) == before  # refused before anything was read or written
    assert main(["--db", url, "history", "NGP100"]) == 0
    assert [a for a, _, _ in audit_rows(engine)[before:]] == [login]


def test_clinician_amends_and_voids(server):
    login, _, eng = server["clinician"]
    with write_session(eng) as s:
        row = services.record_event(
            session=s, event=EventIn(device_serial="SCS300", occurred_on=TODAY, author=login, data=OutcomeData(pain_nrs=4)), today=TODAY
        )
    with write_session(eng) as s:
        services.void_event(session=s, event_id=row.id, reason="wrong patient", author=login)
    assert refused(eng, f"UPDATE event SET voided = true WHERE id = {row.id}")


def test_scheduler_sees_the_due_list_not_the_history(server, capsys):
    _, url, eng = server["scheduler"]
    assert main(["--db", url, "due", "--as-of", "2026-11-23", "--within", "60", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"]
    assert main(["--db", url, "history", "NGP100"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "reading event needs the role devicelog_nurse or devicelog_clinician" in err
    for sql in ("SELECT * FROM event", "SELECT data FROM event", "SELECT payload FROM audit", "INSERT INTO patient (mrn) VALUES ('x')"):
        assert refused(eng, sql), sql
    with eng.connect() as conn:  # contact details: who, and how to find them
        assert conn.execute(text("SELECT count(*) FROM patient")).scalar() == 1
    assert main(["--db", url, "mri", "NGP200", "--mri-on", "2026-11-25", "--record-checklist", "--on", "2026-11-23"]) == 2
    assert "devicelog_" in capsys.readouterr().err


def test_nurse_acknowledges_a_due_item_as_their_login_and_no_role_rewrites_it(server, engine, capsys):
    """Issue 14.2: acknowledgements are append-only records like entries; the scheduler
    reads them (the due list hides what they hide) and records none."""
    login, url, eng = server["nurse"]
    assert main(["--db", url, "due", "--as-of", "2026-11-23", "--format", "json"]) == 0
    key = json.loads(capsys.readouterr().out)["items"][0]["item_key"]
    assert main(["--db", url, "due", "ack", key, "--reason", "dealt with at the visit"]) == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT author FROM due_ack")).scalar() == login
    _, sched_url, sched = server["scheduler"]
    assert main(["--db", sched_url, "due", "--as-of", "2026-11-23", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["acknowledged"][0]["item_key"] == key
    assert main(["--db", sched_url, "due", "withdraw", key, "--reason", "x"]) == 2
    for role in ("nurse", "clinician", "scheduler"):
        assert refused(server[role][2], "UPDATE due_ack SET reason = 'x'"), role
        assert refused(server[role][2], "DELETE FROM due_ack"), role


def test_auditor_verifies_and_examines_but_does_not_write(server, capsys):
    _, url, eng = server["auditor"]
    assert main(["--db", url, "verify"]) == 0
    capsys.readouterr()
    assert main(["--db", url, "audit", "--patient", "MRN001", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"]
    assert refused(eng, "INSERT INTO event (device_id, kind, occurred_on, author, recorded_at, voided) VALUES (1, 'outcome', now(), 'x', now(), false)")
    assert not refused(eng, "SELECT payload FROM audit")


def test_admin_grants_revokes_and_lists(server, capsys):
    _, admin_url, _ = server["admin"]
    nurse_login, nurse_url, _ = server["nurse"]
    assert main(["--db", admin_url, "admin", "grant", nurse_login, "scheduler"]) == 0
    assert main(["--db", admin_url, "admin", "who"]) == 0
    out = capsys.readouterr().out
    assert f"{nurse_login:<24} devicelog_nurse" in out and f"{nurse_login:<24} devicelog_scheduler" in out
    assert main(["--db", admin_url, "admin", "revoke", nurse_login, "nurse"]) == 0
    assert "keep their name" in capsys.readouterr().out
    assert main(["--db", nurse_url, "history", "NGP100"]) == 2  # a scheduler now
    capsys.readouterr()
    # A nurse may not grant; an unknown role is named.
    assert main(["--db", nurse_url, "admin", "grant", nurse_login, "admin"]) == 2
    assert "devicelog_admin" in capsys.readouterr().err
    assert main(["--db", admin_url, "admin", "grant", nurse_login, "surgeon"]) == 2
    assert "role 'surgeon' is not a devicelog role" in capsys.readouterr().err
    assert main(["--db", admin_url, "admin", "grant", "t_nobody_" + uuid.uuid4().hex[:8], "nurse"]) == 2
    assert "does not exist on this server: create it first" in capsys.readouterr().err
    # Setup is the database owner's: a login that may not create roles is told so.
    assert main(["--db", admin_url, "admin", "setup"]) == 2
    assert "admin setup needs a login that may create roles (CREATEROLE)" in capsys.readouterr().err


# --------------------------------------------------------------------- reads


def test_every_opened_history_leaves_a_read_entry_by_the_login(server, engine):
    login, url, _ = server["nurse"]
    before = len(audit_rows(engine))
    assert main(["--db", url, "history", "NGP100", "--patient"]) == 0
    rows = audit_rows(engine)[before:]
    assert [(a, act) for a, act, _ in rows] == [(login, "read: history of patient MRN001 (all devices)")]
    assert json.loads(rows[0][2])["read"]["patients"] == ["MRN001"]
    assert audit.verify(engine).problems == []


# --------------------------------------------------------------------- the TUI


async def test_tui_offers_amend_to_a_clinician_only_and_names_a_refusal(server):
    from devicelog.settings import Settings
    from devicelog.tui.app import make_app
    from devicelog.tui.screens.device import DeviceScreen, open_device
    from tests.test_history_tui import SIZE, settle

    seen = {}
    for role in ("nurse", "clinician", "scheduler"):
        login, _, eng = server[role]
        app = make_app(eng, Settings(), TODAY, login)
        notices: list[str] = []
        app.notify = lambda message, notices=notices, **kw: notices.append(str(message))  # what the person reads
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            open_device(app.screen, 1)  # NGP100, the first device, as Enter on the search list opens it
            await settle(pilot)
            screen = app.screen
            if isinstance(screen, DeviceScreen):
                seen[role] = (True, screen.may_amend, screen.check_action("void", ()), notices)
            else:  # refused: the main screen stays, with a line saying why
                seen[role] = (False, None, None, notices)
    assert seen["nurse"][:3] == (True, False, False) and seen["nurse"][3] == []
    assert seen["clinician"][:3] == (True, True, True) and seen["clinician"][3] == []
    # A scheduler sees one line naming the roles that may read a device's entries.
    assert seen["scheduler"][0] is False
    assert [n for n in seen["scheduler"][3] if n.startswith("Not shown")] == [
        (
            "Not shown: refused by the server: reading event needs the role devicelog_nurse or devicelog_clinician"
            " or devicelog_auditor (ask your devicelog admin)"
        )
    ]


def test_a_refused_read_of_the_trail_names_the_auditor_only(server, capsys):
    """Every role may read the chain head (two columns) to chain its entries; reading the
    trail is the auditor's, and the refusal says so (it listed every role before)."""
    _, url, _ = server["nurse"]
    assert main(["--db", url, "audit"]) == 2
    assert capsys.readouterr().err == (
        "devicelog: refused by the server: reading audit needs the role devicelog_auditor (ask your devicelog admin)\n"
    )


def test_a_database_owner_who_is_not_a_superuser_sets_up_and_upgrades(db_url, capsys):
    """The deployment the docs describe: ``createuser --createrole clinic_owner``,
    ``createdb -O clinic_owner``.  Handing a table to devicelog_owner needs that role to
    have CREATE on the schema (it was refused with 'alter is not granted' before)."""
    tag = uuid.uuid4().hex[:8]
    owner, database = f"t_owner_{tag}", f"t_own_{tag}"
    admin = create_engine(resolve_url(db_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{owner}" LOGIN CREATEROLE'))
        conn.execute(text(f'CREATE DATABASE "{database}" OWNER "{owner}"'))
    url = db_url.rsplit("/", 1)[0].replace("://postgres@", f"://{owner}@", 1) + f"/{database}"
    try:
        assert main(["init", url]) == 0  # creates the tables
        assert main(["--db", url, "verify"]) == 0
        assert main(["--db", url, "admin", "setup"]) == 0
        assert main(["--db", url, "verify"]) == 0  # the owner still reads everything, and writes
        assert "ok: 1 audit entries" in capsys.readouterr().out
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{owner}"'))
        admin.dispose()


def test_a_soft_drug_limit_is_overridden_by_a_clinician_only(server):
    """Issue 18.2: morphine 16 mg/day is above the PACC 15 mg/day (soft); the override with
    its reason is a clinician's, refused to a nurse by devicelog and by the server."""
    from devicelog import forms
    from devicelog.clinic.catalogue import shipped_catalogue
    from devicelog.clinic.forecast import dose_warnings
    from devicelog.settings import Settings
    from devicelog.store import queries
    from tests.test_history import refill

    on = TODAY
    nurse, _, nurse_eng = server["nurse"]
    clinician, _, clinician_eng = server["clinician"]
    with read_session(clinician_eng) as s:
        history = queries.history_by_serial(s, "NGP200")
    data = refill(20.0, dose=16.0, volume=40.0)
    warnings = dose_warnings(history, data.program, on, Settings(), shipped_catalogue())
    overridden = forms.with_limit_override(data, "pain crisis, agreed", warnings)
    assert overridden.limit_override is not None
    with pytest.raises(services.InputError, match="needs the role devicelog_clinician"):
        with write_session(nurse_eng) as s:
            services.record_event(session=s, event=EventIn(device_serial="NGP200", occurred_on=on, author=nurse, data=overridden), today=TODAY)
    # The server refuses it too, to a nurse writing past devicelog (row-level security).
    payload = json.dumps(overridden.model_dump(mode="json")).replace("'", "''")
    sql = (f"INSERT INTO event (device_id, kind, occurred_on, author, recorded_at, data, voided) "
           f"SELECT id, 'refill', DATE '{on}', '{nurse}', now(), '{payload}'::json, false FROM device WHERE serial = 'NGP200'")
    assert refused(nurse_eng, sql)
    with write_session(clinician_eng) as s:
        row = services.record_event(session=s, event=EventIn(device_serial="NGP200", occurred_on=on, author=clinician, data=overridden),
                                    today=TODAY)
    with read_session(clinician_eng) as s:
        assert s.get(tables.EventRow, row.id).data["limit_override"]["reason"] == "pain crisis, agreed"
