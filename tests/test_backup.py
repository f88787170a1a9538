"""Issue 7: backups are consistent while the database is in use; a restore checks before it replaces."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import stat

import pytest
from sqlalchemy import func
from sqlmodel import select

from devicelog import services
from devicelog.cli import main
from devicelog.clinic.records import PatientIn
from devicelog.store import audit, tables
from devicelog.store.backup import BackupError, backup, restore
from devicelog.store.db import make_engine, read_session, write_session
from devicelog.store.schema import prepare
from tests.conftest import requires_sqlite
from tests.safety_data import make_clinic

pytestmark = requires_sqlite


@pytest.fixture
def clinic(tmp_path):
    path = tmp_path / "clinic.db"
    engine = make_engine(path)
    prepare(engine)
    make_clinic(engine)
    yield path, engine
    engine.dispose()


def mrns(path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [m for (m,) in conn.execute("SELECT mrn FROM patient ORDER BY mrn")]
    finally:
        conn.close()


def add_patient(session, mrn: str):
    services.add_patient(session=session, today=dt.date(2026, 11, 23), patient=PatientIn(mrn=mrn, name="Late Comer", birth_date=dt.date(1970, 1, 1)), author="rn")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_backup_while_a_write_is_in_progress_is_consistent(clinic, tmp_path):
    path, engine = clinic
    with write_session(engine) as s:  # holds the write lock, uncommitted, during the backup
        add_patient(s, "MRN003")
        copied = backup(path, tmp_path / "copy.db")
    assert mrns(path) == ["MRN001", "MRN002", "MRN003"]
    assert mrns(copied.path) == ["MRN001", "MRN002"]
    assert copied.entries == 11
    copy_engine = make_engine(copied.path)
    assert audit.verify(copy_engine).ok
    copy_engine.dispose()


def test_database_and_backup_files_are_owner_only(clinic, tmp_path):
    path, engine = clinic
    old = os.umask(0o022)
    try:
        with read_session(engine) as s:  # a connection is open: the WAL and SHM files exist
            s.exec(select(func.count()).select_from(tables.Patient)).one()
            for p in (path, f"{path}-wal", f"{path}-shm"):
                assert mode(p) == 0o600, p
        (tmp_path / "backups").mkdir()  # a backup goes into an existing folder (a missing one is refused)
        copied = backup(path, tmp_path / "backups" / "copy.db")
    finally:
        os.umask(old)
    assert mode(copied.path) == 0o600


def test_backup_never_overwrites(clinic, tmp_path):
    path, _ = clinic
    dest = tmp_path / "copy.db"
    dest.write_text("precious")
    with pytest.raises(BackupError, match="already exists"):
        backup(path, dest)
    assert dest.read_text() == "precious"


def test_restore_replaces_after_checking_and_keeps_the_old_file(clinic, tmp_path):
    path, engine = clinic
    copied = backup(path, tmp_path / "copy.db")
    with write_session(engine) as s:
        add_patient(s, "MRN003")
    kept, report = restore(copied.path, path)
    assert report.ok and report.entries == 11
    assert kept == tmp_path / "clinic.db.before-restore" and mode(kept) == 0o600
    assert mrns(kept) == ["MRN001", "MRN002", "MRN003"]
    # The engine that was open all along sees the restored content.
    with read_session(engine) as s:
        assert sorted(s.exec(select(tables.Patient.mrn)).all()) == ["MRN001", "MRN002"]
    assert audit.verify(engine).ok
    # A second restore keeps the first kept file too.
    kept_again, _ = restore(copied.path, path)
    assert kept_again == tmp_path / "clinic.db.before-restore.2" and kept.exists()


def test_a_tampered_backup_is_refused_and_nothing_replaced(clinic, tmp_path):
    path, engine = clinic
    copied = backup(path, tmp_path / "copy.db")
    conn = sqlite3.connect(copied.path, isolation_level=None)
    conn.execute("DROP TRIGGER event_no_update")
    conn.execute("UPDATE event SET data = json_set(data, '$.volume_added_ml', 30.0) WHERE id = 1")
    conn.close()
    with write_session(engine) as s:
        add_patient(s, "MRN003")
    with pytest.raises(BackupError) as info:
        restore(copied.path, path)
    assert "event 1: changed outside devicelog: data.volume_added_ml 20.0 → 30.0" in info.value.problems
    assert mrns(path) == ["MRN001", "MRN002", "MRN003"]
    assert not (tmp_path / "clinic.db.before-restore").exists()
    assert not (tmp_path / "clinic.db.restoring").exists()


def test_a_backup_with_a_silenced_due_table_is_refused(clinic, tmp_path):
    """The due table is derived and not audited: a backup whose overdue rows were
    deleted would restore a list that calls nobody (issue 15, section 4)."""
    path, engine = clinic
    copied = backup(path, tmp_path / "copy.db")
    conn = sqlite3.connect(copied.path, isolation_level=None)
    stored = conn.execute("SELECT count(*) FROM due_item").fetchone()[0]
    assert stored > 0
    conn.execute("DELETE FROM due_item")
    conn.close()
    with pytest.raises(BackupError) as info:
        restore(copied.path, path)
    assert any(p.startswith("due table ") and "0 stored, the records give" in p for p in info.value.problems)
    assert not (tmp_path / "clinic.db.before-restore").exists()

def test_a_file_that_is_not_a_database_is_refused(clinic, tmp_path):
    path, _ = clinic
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 300)
    with pytest.raises(BackupError) as info:
        restore(junk, path)
    assert any("not a readable SQLite database" in p or "integrity" in p for p in info.value.problems)
    assert mrns(path) == ["MRN001", "MRN002"]


def test_a_backup_from_a_newer_devicelog_is_refused(clinic, tmp_path):
    path, _ = clinic
    copied = backup(path, tmp_path / "copy.db")
    conn = sqlite3.connect(copied.path, isolation_level=None)
    conn.execute("UPDATE alembic_version SET version_num = '0099_future'")
    conn.close()
    with pytest.raises(BackupError) as info:
        restore(copied.path, path)
    assert "newer devicelog" in info.value.problems[0]
    assert not (tmp_path / "clinic.db.before-restore").exists()


def test_backup_and_restore_commands(clinic, tmp_path, capsys):
    path, engine = clinic
    engine.dispose()
    dest = tmp_path / "b.db"
    assert main(["--db", str(path), "backup", str(dest)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"backed up {path} to {dest}") and "11 audit entries" in out
    assert main(["--db", str(path), "backup", str(dest)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["--db", str(path), "restore", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "ok: 11 audit entries chain intact" in out and "clinic.db.before-restore" in out
    assert main(["--db", str(path), "restore", str(tmp_path / "missing.db")]) == 1
    assert "no such backup file" in capsys.readouterr().err
