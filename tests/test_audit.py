"""Issue 7: every write is audited and chained; verify names whatever was changed outside devicelog."""

from __future__ import annotations

import datetime as dt
import enum
import json
import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from devicelog.cli import main
from devicelog.store import audit, tables
from devicelog.store.db import write_session
from tests.conftest import PG_ADMIN_URL, requires_sqlite
from tests.safety_data import make_clinic

# By hand: catalogue seeding, 2 patients, 3 devices (pump, stimulator, its replacement),
# refill, amendment, wound check, its void, explant = 11 actions, one entry each.
ENTRIES = 11
# 14 device models + 8 drugs (baclofen is the eighth) in the shipped catalogue, 2 patients, 3 devices, 5 events.
ROWS = 14 + 8 + 2 + 3 + 5


def entries(engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, at, author, action, payload, prev_hash, hash FROM audit ORDER BY id"))
        return [dict(r._mapping) | {"changes": json.loads(r.payload)["changes"]} for r in rows]


def test_every_service_write_is_audited_and_verifies(engine):
    make_clinic(engine)
    report = audit.verify(engine)
    assert report.problems == []
    assert (report.entries, report.rows) == (ENTRIES, ROWS)
    assert report.summary().startswith(f"ok: {ENTRIES} audit entries chain intact")


def test_entries_say_who_when_what_and_chain(engine):
    started = dt.datetime.now(dt.timezone.utc)
    ids = make_clinic(engine)
    found = entries(engine)
    assert [e["author"] for e in found] == [
        "devicelog 0.1.0", "rn.ann", "rn.ann", "rn.ann", "rn.ann", "dr.bo", "rn.ann", "rn.ann", "rn.ann", "dr.bo", "dr.bo"
    ]
    assert found[0]["prev_hash"] == audit.GENESIS
    for before, after in zip(found, found[1:]):
        assert after["prev_hash"] == before["hash"]
    for e in found:
        at = e["at"] if isinstance(e["at"], dt.datetime) else dt.datetime.fromisoformat(e["at"])
        at = at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)
        assert started - dt.timedelta(seconds=1) <= at <= dt.datetime.now(dt.timezone.utc)

    amendment = found[5]
    assert amendment["action"] == f"amend refill {ids['refill']}"
    [change] = amendment["changes"]
    assert change["table"] == "event" and change["id"] == ids["amendment"] and change["before"] is None
    assert change["after"]["amends_id"] == ids["refill"] and change["after"]["amendment_reason"] == "wrong date"
    assert change["after"]["data"]["volume_added_ml"] == 20.0

    replacement = found[9]
    assert replacement["action"] == "add device"
    by_id = {c["id"]: c for c in replacement["changes"]}
    old = by_id[ids["old_stimulator"]]
    assert (old["before"]["status"], old["before"]["replaced_by_id"]) == ("active", None)
    assert (old["after"]["status"], old["after"]["replaced_by_id"]) == ("replaced", ids["new_stimulator"])

    explant = found[10]["changes"]
    assert [c["table"] for c in explant] == ["event", "device"]
    assert (explant[1]["before"]["status"], explant[1]["after"]["status"]) == ("active", "explanted")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE event SET occurred_on = occurred_on",
        "DELETE FROM event",
        "UPDATE audit SET author = 'x'",
        "DELETE FROM audit",
        "DELETE FROM patient WHERE mrn = 'MRN002'",
        "DELETE FROM device",
    ],
)
def test_the_database_refuses_changing_append_only_rows(engine, statement):
    make_clinic(engine)
    with pytest.raises(DBAPIError, match="never"):
        with engine.begin() as conn:
            conn.execute(text(statement))
    assert audit.verify(engine).ok


def test_a_huge_action_is_split_into_chained_entries(engine, monkeypatch):
    monkeypatch.setattr(audit, "CHANGES_PER_ENTRY", 2)
    with write_session(engine) as s:
        rows = [
            tables.Patient(mrn=f"M{i}", name=f"P {i}", birth_date=dt.date(1960, 1, 1 + i), author="importer")
            for i in range(5)
        ]
        s.add_all(rows)
        s.flush()
        audit.append(
            s, action="import", author="importer", changes=[audit.Change("patient", r.id, None, audit.row_values(r)) for r in rows]
        )
    found = entries(engine)
    assert [len(e["changes"]) for e in found if e["action"] == "import"] == [2, 2, 1]
    assert audit.verify(engine).ok


def test_append_refuses_what_it_cannot_account_for(engine):
    with write_session(engine) as s:
        with pytest.raises(ValueError, match="author"):
            audit.append(s, action="x", author="", changes=[audit.Change("patient", 1, None, {})])
        with pytest.raises(ValueError, match="id"):
            audit.append(s, action="x", author="a", changes=[audit.Change("patient", None, None, {})])


class Colour(enum.Enum):
    red = "red"


def test_row_values_are_canonical():
    values = audit.row_values(
        {
            "on": dt.date(2026, 1, 2),
            "at": dt.datetime(2026, 1, 2, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "naive": dt.datetime(2026, 1, 2, 10, 30),
            "ml": 0.1,
            "c": Colour.red,
            "data": {"when": dt.date(2026, 1, 3), "list": (1, 2.5)},
        }
    )
    assert values == {
        "on": "2026-01-02",
        "at": "2026-01-02T08:30:00+00:00",
        "naive": "2026-01-02T10:30:00+00:00",
        "ml": 0.1,
        "c": "red",
        "data": {"when": "2026-01-03", "list": [1, 2.5]},
    }
    # A whole number in a REAL column hashes as the float SQLite gives back.
    assert audit.typed("device", {"recharge_interval_days": 30, "id": 4}) == {"recharge_interval_days": 30.0, "id": 4}


# --------------------------------------------------------------------- tampering through plain sqlite3


@pytest.fixture
def tampered(db_url, engine):
    """The clinic, and a plain sqlite3 connection as an attacker would use."""
    from devicelog.store.folding import fold

    ids = make_clinic(engine)
    engine.dispose()
    conn = sqlite3.connect(db_url, isolation_level=None)
    conn.create_function("devicelog_fold", 1, fold, deterministic=True)  # as devicelog's own connections have it
    yield ids, conn
    conn.close()


def problems(engine, *, due_table: bool = False) -> list[str]:
    """What verify names; without the due table's findings unless asked (a row changed
    outside devicelog usually changes its device's forecast too)."""
    return [str(p) for p in audit.verify(engine).problems if due_table or p.table != "due table"]


@requires_sqlite
def test_changed_refill_volume_is_named(tampered, engine):
    ids, conn = tampered
    conn.execute("DROP TRIGGER event_no_update")
    conn.execute("UPDATE event SET data = json_set(data, '$.volume_added_ml', 30.0) WHERE id = ?", (ids["refill"],))
    assert problems(engine) == [
        "trigger event_no_update: missing: the append-only protection was altered outside devicelog",
        f"event {ids['refill']}: changed outside devicelog: data.volume_added_ml 20.0 → 30.0",
    ]


@requires_sqlite
def test_inserted_event_is_named(tampered, engine):
    ids, conn = tampered
    conn.execute(
        "INSERT INTO event (device_id, kind, occurred_on, author, recorded_at, data, voided) "
        "VALUES (?, 'wound_check', '2026-11-02', 'mallory', '2026-11-02 09:00:00.000000', '{}', 0)",
        (ids["pump"],),
    )
    new_id = conn.execute("SELECT max(id) FROM event").fetchone()[0]
    assert problems(engine) == [f"event {new_id}: inserted outside devicelog (no audit entry records it)"]


@requires_sqlite
def test_deleted_patient_is_named(tampered, engine):
    ids, conn = tampered
    conn.execute("DROP TRIGGER patient_no_delete")
    conn.execute("DELETE FROM patient WHERE id = ?", (ids["patient_without_device"],))
    found = problems(engine)
    assert found[0] == "trigger patient_no_delete: missing: the append-only protection was altered outside devicelog"
    assert found[1].startswith(f"patient {ids['patient_without_device']}: deleted outside devicelog (recorded by audit entry 3)")
    assert len(found) == 2


@requires_sqlite
def test_deleting_a_patient_with_devices_also_breaks_foreign_keys(tampered, engine):
    ids, conn = tampered
    conn.execute("DROP TRIGGER patient_no_delete")
    conn.execute("DELETE FROM patient WHERE id = ?", (ids["patient"],))  # the stdlib leaves foreign keys off
    found = problems(engine)
    assert sum("refers to a missing patient row" in p for p in found) == 3
    assert f"patient {ids['patient']}: deleted outside devicelog (recorded by audit entry 2)" in found


@requires_sqlite
def test_edited_audit_entry_is_named(tampered, engine):
    _, conn = tampered
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET author = 'someone else' WHERE id = 5")
    assert problems(engine) == [
        "trigger audit_no_update: missing: the append-only protection was altered outside devicelog",
        "audit 5: its content does not match its hash (the entry was edited)",
    ]


@requires_sqlite
def test_rehashed_audit_entry_breaks_the_link_after_it(tampered, engine):
    ids, conn = tampered
    for t in ("audit_no_update", "event_no_update"):
        conn.execute(f"DROP TRIGGER {t}")
    # The attacker changes a refill *and* its audit entry, and recomputes that entry's hash.
    conn.execute("UPDATE event SET data = json_set(data, '$.volume_added_ml', 30.0) WHERE id = ?", (ids["refill"],))
    prev, at, author, action, payload = conn.execute("SELECT prev_hash, at, author, action, payload FROM audit WHERE id = 5").fetchone()
    payload = payload.replace('"volume_added_ml":20.0', '"volume_added_ml":30.0')
    at = dt.datetime.fromisoformat(at).replace(tzinfo=dt.timezone.utc)
    conn.execute(
        "UPDATE audit SET payload = ?, hash = ? WHERE id = 5", (payload, audit.entry_hash(prev, at, author, action, payload))
    )
    found = problems(engine)
    assert "audit 6: does not follow the entry before it (an entry was inserted, deleted or reordered)" in found
    assert len(found) == 3  # and the two dropped triggers


@requires_sqlite
def test_deleted_audit_entry_is_named(tampered, engine):
    ids, conn = tampered
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute("DELETE FROM audit WHERE id = 7")  # the wound check's entry
    found = problems(engine)
    assert "audit 8: does not follow the entry before it (an entry was inserted, deleted or reordered)" in found
    assert any(p.endswith("inserted outside devicelog (no audit entry records it)") and p.startswith("event ") for p in found)


@requires_sqlite
def test_verify_command_exit_codes(tampered, db_url, capsys):
    ids, conn = tampered
    assert main(["--db", db_url, "verify"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"ok: {ENTRIES} audit entries chain intact") and f"{ROWS} rows" in out[0]

    conn.execute("DROP TRIGGER event_no_update")
    conn.execute("UPDATE event SET occurred_on = '2026-09-30' WHERE id = ?", (ids["refill"],))
    assert main(["--db", db_url, "verify"]) == 1
    out = capsys.readouterr().out
    assert f"event {ids['refill']}: changed outside devicelog: occurred_on '2026-10-01' → '2026-09-30'" in out
    assert "2 problems found" in out


# --------------------------------------------------------------------- at scale: pages and payloads


@pytest.fixture
def paged(monkeypatch):
    """Rows compared two at a time and one entry's payload per fetch, so that a small
    clinic crosses every page and fetch boundary a large one does."""
    monkeypatch.setattr(audit, "ROWS_PER_PAGE", 2)
    monkeypatch.setattr(audit, "PAYLOAD_BYTES_PER_FETCH", 1)


def test_paged_verify_of_an_intact_clinic(engine, paged):
    make_clinic(engine)
    report = audit.verify(engine)
    assert report.problems == [] and (report.entries, report.rows) == (ENTRIES, ROWS)


def test_an_import_sized_entry_is_read_change_by_change(engine, paged, monkeypatch):
    monkeypatch.setattr(audit, "CHANGES_PER_ENTRY", 3)
    with write_session(engine) as s:
        rows = [tables.Patient(mrn=f"M{i}", name=f"P {i}", birth_date=dt.date(1960, 1, 1 + i), author="importer") for i in range(7)]
        s.add_all(rows)
        s.flush()
        audit.append(s, action="import", author="importer", changes=[audit.Change("patient", r.id, None, audit.row_values(r)) for r in rows])
    assert [len(e["changes"]) for e in entries(engine) if e["action"] == "import"] == [3, 3, 1]
    report = audit.verify(engine)
    assert report.ok and report.rows == 14 + 8 + 7  # the catalogue and the 7 patients


def test_payload_changes_reads_canonical_and_other_json_alike():
    changes = [{"table": "event", "id": 1, "before": None, "after": {"data": {"a": [1, 2.5]}, "x": "é,]}"}},
               {"table": "patient", "id": 2, "before": {"n": 1}, "after": None}]
    canonical = audit.canonical({"changes": changes})
    assert canonical.startswith('{"changes":[')
    assert list(audit.payload_changes(canonical)) == changes
    assert list(audit.payload_changes(json.dumps({"changes": changes}, indent=1))) == changes
    assert list(audit.payload_changes('{"changes":[]}')) == []
    with pytest.raises(ValueError):
        list(audit.payload_changes('{"changes":[{"table":"event"}] trailing'))


@requires_sqlite
def test_rows_tampered_in_later_pages_are_named(tampered, engine, paged):
    """Changed in the second page of events, deleted from the middle, inserted after the
    last recorded row: each named, as on a single page."""
    ids, conn = tampered
    event_ids = [r[0] for r in conn.execute("SELECT id FROM event ORDER BY id")]
    assert len(event_ids) >= 5
    changed, removed = event_ids[3], event_ids[2]
    for t in ("event_no_update", "event_no_delete"):
        conn.execute(f"DROP TRIGGER {t}")
    conn.execute("UPDATE event SET author = 'mallory' WHERE id = ?", (changed,))
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("DELETE FROM event WHERE id = ?", (removed,))
    conn.execute(
        "INSERT INTO event (device_id, kind, occurred_on, author, recorded_at, data, voided) "
        "VALUES (?, 'wound_check', '2026-11-02', 'mallory', '2026-11-02 09:00:00.000000', '{}', 0)",
        (ids["pump"],),
    )
    new_id = conn.execute("SELECT max(id) FROM event").fetchone()[0]
    found = [p for p in problems(engine) if not p.startswith("trigger ") and "refers to a missing" not in p]
    recorded_by = next(e["id"] for e in entries(engine) if any(c["table"] == "event" and c["id"] == removed for c in e["changes"]))
    assert found[0].startswith(f"event {changed}: changed outside devicelog: author ")
    assert found[0].endswith("→ 'mallory'")
    assert found[1] == f"event {new_id}: inserted outside devicelog (no audit entry records it)"
    assert found[2] == f"event {removed}: deleted outside devicelog (recorded by audit entry {recorded_by})"
    assert len(found) == 3


@requires_sqlite
def test_a_row_deleted_after_the_last_page_is_named(tampered, engine, paged):
    ids, conn = tampered
    last = conn.execute("SELECT max(id) FROM device").fetchone()[0]
    conn.execute("DROP TRIGGER device_no_delete")
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("DELETE FROM device WHERE id = ?", (last,))
    found = [p for p in problems(engine) if p.startswith("device ") and "refers to a missing" not in p]
    assert len(found) == 1 and found[0].startswith(f"device {last}: deleted outside devicelog (recorded by audit entry ")


def test_recorded_digests_hash_the_canonical_text_and_decode_anything_else():
    changes = [{"table": "event", "id": 1, "before": None, "after": {"data": {"b": 2.5, "a": [1, "µ\n\"x\""]}, "v": -0.0}},
               {"table": "patient", "id": "code", "before": {"n": 1}, "after": None}]
    want = [("event", 1, audit._digest_bytes(changes[0]["after"])), ("patient", "code", None)]
    assert list(audit.recorded_digests(audit.canonical({"changes": changes}))) == want
    # valid JSON in another layout (keys unsorted, spaces): decoded, same digests
    assert list(audit.recorded_digests(json.dumps({"changes": changes}))) == want
    mixed = '{"changes":[' + json.dumps(changes[0]) + "," + audit.canonical(changes[1]) + "]}"
    assert list(audit.recorded_digests(mixed)) == want


@requires_sqlite
def test_a_trail_in_another_json_layout_names_no_row(tampered, engine):
    """An entry whose payload is the same values laid out differently: its hash breaks,
    but its rows still match what it recorded (they are not reported changed)."""
    _, conn = tampered
    conn.execute("DROP TRIGGER audit_no_update")
    payload = conn.execute("SELECT payload FROM audit WHERE id = 5").fetchone()[0]
    conn.execute("UPDATE audit SET payload = ? WHERE id = 5", (json.dumps(json.loads(payload), indent=1),))
    found = problems(engine)
    assert found == [
        "trigger audit_no_update: missing: the append-only protection was altered outside devicelog",
        "audit 5: its content does not match its hash (the entry was edited)",
    ]


# --------------------------------------------------------------------- issue 15, section 4: gaps verify closes


def _replace_statement(conn, table: str, row_id: int, **changes) -> tuple[str, tuple]:
    """``INSERT OR REPLACE`` of a whole row as it stands, with ``changes`` applied."""
    cur = conn.execute(f"SELECT * FROM {table} WHERE id = ?", (row_id,))
    row = dict(zip([c[0] for c in cur.description], cur.fetchone())) | changes
    columns = ", ".join(row)
    return f"INSERT OR REPLACE INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())


@requires_sqlite
@pytest.mark.parametrize(
    "table, key, changes",
    [
        ("event", "refill", {"data": '{"volume_added_ml": 30.0}'}),
        ("patient", "patient_without_device", {"name": "Someone Else"}),
        ("device", "pump", {"serial": "EVIL-1"}),
        ("audit", None, {"author": "mallory"}),
    ],
)
def test_insert_or_replace_cannot_rewrite_an_append_only_row(tampered, engine, table, key, changes):
    """SQLite runs REPLACE as a delete that fires no DELETE trigger: before revision 0006
    an event could be rewritten this way with every trigger in place."""
    ids, conn = tampered
    row_id = ids[key] if key else 5
    statement, values = _replace_statement(conn, table, row_id, **changes)
    with pytest.raises(sqlite3.IntegrityError, match="never replaced"):
        conn.execute(statement, values)
    assert audit.verify(engine).ok


@requires_sqlite
def test_a_replaced_row_of_another_key_is_refused_too(tampered, engine):
    """REPLACE also deletes a row that clashes on a unique column (a patient's MRN)."""
    ids, conn = tampered
    mrn = conn.execute("SELECT mrn FROM patient WHERE id = ?", (ids["patient_without_device"],)).fetchone()[0]
    statement, values = _replace_statement(conn, "patient", ids["patient_without_device"], id=999, mrn=mrn)
    with pytest.raises(sqlite3.IntegrityError, match="never replaced"):
        conn.execute(statement, values)


@requires_sqlite
def test_a_trigger_emptied_under_its_own_name_is_named(tampered, engine):
    ids, conn = tampered
    conn.execute("DROP TRIGGER event_no_update")
    conn.execute("CREATE TRIGGER event_no_update BEFORE UPDATE ON event BEGIN SELECT 1; END")
    conn.execute("UPDATE event SET occurred_on = '2026-09-30' WHERE id = ?", (ids["refill"],))
    found = problems(engine)
    assert found[0].startswith("trigger event_no_update: changed: 'CREATE TRIGGER event_no_update BEFORE UPDATE ON event BEGIN SELECT 1; END'")
    assert found[1] == f"event {ids['refill']}: changed outside devicelog: occurred_on '2026-10-01' → '2026-09-30'"
    assert len(found) == 2


@requires_sqlite
def test_a_missing_replace_guard_is_named(tampered, engine):
    ids, conn = tampered
    conn.execute("DROP TRIGGER event_no_replace")
    assert problems(engine) == ["trigger event_no_replace: missing: the append-only protection was altered outside devicelog"]


@pytest.mark.skipif(not PG_ADMIN_URL, reason="PostgreSQL's own trigger state")
def test_a_disabled_or_emptied_trigger_is_named_on_postgresql(engine):
    make_clinic(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE event DISABLE TRIGGER event_no_update"))
    assert problems(engine) == ["trigger event_no_update: disabled: the append-only protection was altered outside devicelog"]
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE event ENABLE TRIGGER event_no_update"))
        conn.execute(text("CREATE OR REPLACE FUNCTION devicelog_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"))
    assert problems(engine) == [
        "trigger devicelog_refuse: changed: the function no longer refuses: the append-only protection was altered outside devicelog"
    ]


# --------------------------------------------------------------------- anchors (issue 15, section 4)


def _anchor_from(out: str) -> str:
    """The SEQ:HASH that verify's or backup's line ends with."""
    import re

    return re.search(r"anchor (\d+:[0-9a-f]{64})", out).group(1)


@requires_sqlite
def test_deleting_the_newest_entries_with_their_rows_is_caught_by_an_anchor(tampered, db_url, capsys):
    """The attack verify alone cannot see: the newest entries and their rows removed
    together leave a shorter chain that is intact.  The anchor taken before sees it."""
    ids, conn = tampered
    assert main(["--db", db_url, "verify"]) == 0
    anchor = _anchor_from(capsys.readouterr().out)
    assert anchor.startswith(f"{ENTRIES}:")
    for t in ("audit_no_delete", "event_no_delete", "device_no_delete"):
        conn.execute(f"DROP TRIGGER {t}")
    # Entry 11 is the explant: it added an event and changed the device.  Undo both and drop the entry.
    last = json.loads(conn.execute("SELECT payload FROM audit WHERE id = ?", (ENTRIES,)).fetchone()[0])["changes"]
    conn.execute("DELETE FROM event WHERE id = ?", (last[0]["id"],))
    conn.execute("DROP TRIGGER IF EXISTS device_no_update")
    conn.execute("UPDATE device SET status = 'active' WHERE id = ?", (last[1]["id"],))
    conn.execute("DELETE FROM audit WHERE id = ?", (ENTRIES,))
    conn.execute("DELETE FROM forecast_cache")  # the due table is rebuilt from the records on the next open
    for name, sql in _protection_sql().items():  # and put every trigger back as it was
        if name in ("audit_no_delete", "event_no_delete", "device_no_delete"):
            conn.execute(sql)
    assert main(["--db", db_url, "verify"]) == 0  # without the anchor it passes
    capsys.readouterr()
    assert main(["--db", db_url, "verify", "--anchor", anchor]) == 1
    out = capsys.readouterr().out
    assert f"anchor {ENTRIES}: entry {ENTRIES} is gone (the chain now ends at entry {ENTRIES - 1})" in out


@requires_sqlite
def test_a_rewritten_and_rehashed_chain_is_caught_by_an_anchor(tampered, db_url, capsys):
    ids, conn = tampered
    assert main(["--db", db_url, "verify"]) == 0
    anchor = _anchor_from(capsys.readouterr().out)
    for t in ("audit_no_update", "event_no_update"):
        conn.execute(f"DROP TRIGGER {t}")
    # The refill becomes 30 mL; its entry (5) and every entry after it are re-hashed.
    conn.execute("UPDATE event SET data = json_set(data, '$.volume_added_ml', 30.0) WHERE id = ?", (ids["refill"],))
    prev = conn.execute("SELECT hash FROM audit WHERE id = 4").fetchone()[0]
    for entry_id, at, author, action, payload in conn.execute("SELECT id, at, author, action, payload FROM audit WHERE id >= 5 ORDER BY id").fetchall():
        if entry_id == 5:
            payload = payload.replace('"volume_added_ml":20.0', '"volume_added_ml":30.0')
        when = dt.datetime.fromisoformat(at).replace(tzinfo=dt.timezone.utc)
        new = audit.entry_hash(prev, when, author, action, payload)
        conn.execute("UPDATE audit SET payload = ?, prev_hash = ?, hash = ? WHERE id = ?", (payload, prev, new, entry_id))
        prev = new
    for name, sql in _protection_sql().items():
        if name in ("audit_no_update", "event_no_update"):
            conn.execute(sql)
    assert main(["--db", db_url, "verify"]) == 0  # a perfect forgery, to verify alone
    capsys.readouterr()
    assert main(["--db", db_url, "verify", "--anchor", anchor]) == 1
    assert f"anchor {ENTRIES}: entry {ENTRIES} now hashes to" in capsys.readouterr().out


@requires_sqlite
def test_verify_against_a_backup_and_bad_anchors(tampered, db_url, tmp_path, capsys):
    ids, conn = tampered
    dest = tmp_path / "b.db"
    assert main(["--db", db_url, "backup", str(dest)]) == 0
    printed = _anchor_from(capsys.readouterr().out)
    assert main(["--db", db_url, "verify", "--against", str(dest)]) == 0
    assert f"anchor {printed}" in capsys.readouterr().out  # nothing written since: the same head
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute("DELETE FROM audit WHERE id = ?", (ENTRIES,))
    assert main(["--db", db_url, "verify", "--against", str(dest)]) == 1
    assert f"entry {ENTRIES} is gone" in capsys.readouterr().out
    for bad in ("12", "x:" + "0" * 64, "3:abc"):
        assert main(["--db", db_url, "verify", "--anchor", bad]) == 2
        assert f"anchor {bad!r}: expected SEQ:HASH" in capsys.readouterr().err
    assert main(["--db", db_url, "verify", "--against", str(tmp_path / "none.db")]) == 2
    assert "none.db: no such backup file" in capsys.readouterr().err


def _protection_sql() -> dict[str, str]:
    from devicelog.store.schema import sqlite_protection_sql

    return sqlite_protection_sql()


@requires_sqlite
def test_a_silenced_due_table_is_named(tampered, engine, db_url, capsys):
    """Deleting the overdue rows and moving a refill to 2030 in the derived due table
    changed every list while verify said ok."""
    ids, conn = tampered
    assert problems(engine, due_table=True) == []
    serial = conn.execute("SELECT serial FROM device WHERE id = ?", (ids["pump"],)).fetchone()[0]
    what = conn.execute("SELECT what FROM due_item WHERE device_id = ? ORDER BY seq LIMIT 1", (ids["pump"],)).fetchone()[0]
    conn.execute("UPDATE due_item SET due_on = '2030-01-01' WHERE device_id = ? AND what = ?", (ids["pump"], what))
    found = problems(engine, due_table=True)
    assert len(found) == 1 and found[0].startswith(f"due table {serial}: due item {what!r}: due_on stored 2030-01-01, the records give ")
    conn.execute("DELETE FROM due_item WHERE device_id = ?", (ids["pump"],))
    found = problems(engine, due_table=True)
    assert found[0].startswith(f"due table {serial}: due items: 0 stored, the records give ")
    assert main(["--db", db_url, "verify"]) == 1
    assert f"due table {serial}: due items: 0 stored" in capsys.readouterr().out
