"""Issue 7: the schema is versioned by Alembic; old databases upgrade with data intact, newer ones are refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from devicelog.cli import main
from devicelog.store import audit, schema
from devicelog.store.db import make_engine, resolve_url
from tests.conftest import requires_sqlite

#: The tables revisions after 0008 add: 0009 safety notices, 0010 acknowledgements of due items.
TABLES_AFTER_0008 = ("advisory", "advisory_match", "advisory_action", "due_ack")


def test_head_constant_is_the_migrations_head():
    scripts = ScriptDirectory.from_config(schema.alembic_config())
    assert scripts.get_heads() == [schema.HEAD]
    assert [s.revision for s in scripts.walk_revisions()][::-1] == [f"{n:04d}" for n in range(1, int(schema.HEAD) + 1)]


def _include(name, type_, parent_names) -> bool:
    """Leave out the search index (revision 0005), which the table models do not describe."""
    return not schema.is_search_index_object(name, type_)


def _diffs(conn) -> list:
    return compare_metadata(MigrationContext.configure(conn, opts={"include_name": _include}), SQLModel.metadata)


def test_migrations_build_exactly_the_tables_the_code_describes(engine):
    with engine.connect() as conn:
        diffs = _diffs(conn)
    assert diffs == []
    with engine.connect() as conn:
        assert schema.current_revision(conn) == schema.HEAD
        assert schema.protection_problems(conn) == []


def _at_revision(db_url: str, revision: str):
    """A database built by the migrations up to ``revision`` only."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), revision)
    return engine


REV1_ROWS = [
    "INSERT INTO device_model (code, maker, model, kind, power, reservoir_ml, low_alarm_ml, constant_flow, mr_status, mr_note, source) "
    "VALUES ('synchromed-ii-20', 'Medtronic', 'SynchroMed II 8637-20', 'intrathecal_pump', 'primary_cell', 20.0, 2.0, false, 'conditional', '', '')",
    "INSERT INTO drug (code, name, display_unit, is_ziconotide, is_opioid, source) VALUES ('morphine', 'Morphine', 'mg', false, true, '')",
    "INSERT INTO patient (id, mrn, name, birth_date, goals_of_care, status, author, recorded_at) "
    "VALUES (1, 'MRN9', 'Old Record', '1948-05-06', 'active_treatment', 'active', 'rn', '2025-01-01 09:00:00')",
    "INSERT INTO device (id, patient_id, model_code, serial, implanted_on, implant_type, site, status, author, recorded_at) "
    "VALUES (1, 1, 'synchromed-ii-20', 'OLD1', '2024-03-04', 'permanent', 'abdomen', 'active', 'rn', '2025-01-01 09:00:00')",
    "INSERT INTO event (id, device_id, kind, occurred_on, author, recorded_at, data, voided) "
    "VALUES (1, 1, 'wound_check', '2024-03-14', 'rn', '2025-01-01 09:05:00', '{\"kind\": \"wound_check\", \"site\": \"abdomen\"}', false)",
]


def test_a_revision_1_database_upgrades_with_its_data_intact(db_url):
    old = _at_revision(db_url, "0001")
    with old.begin() as conn:
        assert "audit" not in inspect(conn).get_table_names()
        for statement in REV1_ROWS:
            conn.execute(text(statement))
    old.dispose()

    engine = make_engine(db_url)
    schema.prepare(engine)
    with engine.connect() as conn:
        assert schema.current_revision(conn) == schema.HEAD
        assert conn.execute(text("SELECT mrn, name, birth_date FROM patient")).one() == ("MRN9", "Old Record", _date(conn, "1948-05-06"))
        assert conn.execute(text("SELECT serial, status FROM device")).one() == ("OLD1", "active")
        data = conn.execute(text("SELECT data FROM event WHERE id = 1")).scalar()
        assert "abdomen" in str(data)
        assert schema.protection_problems(conn) == []
        first = conn.execute(text("SELECT author, payload FROM audit ORDER BY id LIMIT 1")).one()
    assert first.author == "devicelog migration 0002"
    baseline = {(c["table"], c["id"]) for c in __import__("json").loads(first.payload)["changes"]}
    assert {("patient", 1), ("device", 1), ("event", 1), ("drug", "morphine"), ("device_model", "synchromed-ii-20")} == baseline
    report = audit.verify(engine)
    assert report.problems == []
    # The baseline (5 rows), revision 0007's device identifiers of the one model there,
    # revision 0011's drug-limit library of the one drug there, and the catalogue
    # entries the old database lacked (13 models, 7 drugs: baclofen is new).
    assert (report.entries, report.rows) == (4, 5 + 13 + 7)
    # Issue 18.2: this old database's morphine row is not the one an earlier devicelog
    # shipped (no maxima, another name): revision 0011 leaves a clinic's entry as it is.
    from devicelog.store import queries
    from devicelog.store.db import read_session

    with read_session(engine) as session:
        morphine = queries.drugs_by_code(session)["morphine"]
    assert (morphine.name, morphine.limits, morphine.labelled_concentrations_mg_per_ml) == ("Morphine", (), ())
    engine.dispose()


def _date(conn, iso: str):
    import datetime as dt

    return iso if conn.dialect.name == "sqlite" else dt.date.fromisoformat(iso)


@requires_sqlite
def test_a_database_made_before_versioning_is_taken_as_revision_1(tmp_path):
    path = tmp_path / "legacy.db"
    old = _at_revision(str(path), "0001")
    with old.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))  # as create_all left it
        for statement in REV1_ROWS:
            conn.execute(text(statement))
    old.dispose()
    engine = make_engine(path)
    schema.prepare(engine)
    with engine.connect() as conn:
        assert schema.current_revision(conn) == schema.HEAD
    assert audit.verify(engine).ok


def test_a_database_from_a_newer_devicelog_is_refused_untouched(db_url):
    engine = make_engine(db_url)
    schema.prepare(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    engine.dispose()
    before = _fingerprint(db_url)

    engine = make_engine(db_url)
    with pytest.raises(schema.SchemaError) as info:
        schema.prepare(engine)
    assert "'0099_future'" in str(info.value) and "newer devicelog" in str(info.value)
    assert "nothing was changed" in str(info.value)
    engine.dispose()
    assert _fingerprint(db_url) == before


@requires_sqlite
def test_cli_refuses_a_newer_database_with_a_message(tmp_path, capsys):
    path = tmp_path / "future.db"
    engine = make_engine(path)
    schema.prepare(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    engine.dispose()
    assert main(["--db", str(path), "backup", str(tmp_path / "b.db")]) == 0  # copying stays possible
    assert main(["--db", str(path), "verify"]) == 2
    assert "made by a newer devicelog" in capsys.readouterr().err


def _fingerprint(db_url: str) -> str:
    """The file's bytes (SQLite) or every table's rows (PostgreSQL)."""
    if "://" not in db_url:
        return hashlib.sha256(Path(db_url).read_bytes()).hexdigest()
    plain = create_engine(resolve_url(db_url))
    with plain.connect() as conn:
        names = sorted(inspect(conn).get_table_names())
        rows = {n: sorted(map(str, conn.execute(text(f'SELECT * FROM "{n}"')).all())) for n in names}
    plain.dispose()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_opening_twice_changes_nothing(engine):
    before = audit.verify(engine)
    schema.prepare(engine)
    after = audit.verify(engine)
    assert (after.entries, after.head) == (before.entries, before.head)


def test_only_the_search_index_is_left_out_of_the_comparison(engine):
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    left_out = {(d[0], d[1].name) for d in diffs}
    if engine.dialect.name == "sqlite":
        assert left_out == {("remove_table", n) for n in (schema.SEARCH_FTS, *schema.SEARCH_FTS_SHADOWS)}
    else:  # the trigram indexes (pg_trgm is available on the test server)
        assert left_out == {("remove_index", n) for n in schema.PG_SEARCH_INDEXES}


def _search(engine, needle: str) -> list[str]:
    from devicelog.store import queries
    from devicelog.store.db import read_session

    with read_session(engine) as s:
        return [p.mrn for p in queries.search_patients(s, needle)]


def test_revision_5_indexes_the_patients_already_there_and_goes_back(db_url):
    old = _at_revision(db_url, "0004")
    with old.begin() as conn:
        for statement in REV1_ROWS[:4]:
            conn.execute(text(statement))
        conn.execute(text(REV1_ROWS[2].replace("(1, 'MRN9', 'Old Record'", "(2, 'MRN10', 'Zsófia Öller'")))
    old.dispose()

    engine = make_engine(db_url)
    schema.prepare(engine)
    for needle in ("old1", "OLD RE", "mrn9"):
        assert _search(engine, needle) == ["MRN9"], needle
    # Revision 0008 rewrote the haystacks written at 0004 folded: with or without accents.
    for needle in ("ZSÓF", "öller", "zsofia oller", "OLLER", "óf"):
        assert _search(engine, needle) == ["MRN10"], needle
    assert _search(engine, "mrn") == ["MRN9", "MRN10"]  # by name: Old Record, Zsófia Öller
    with engine.begin() as conn:
        command.downgrade(schema.alembic_config(conn), "0004")
    with engine.connect() as conn:
        assert schema.current_revision(conn) == "0004"
        # The tables as the code describes them, but for the columns revisions 0007 and 0011
        # add, and the tables (with their indexes) revisions after 0008 add.
        diffs = _diffs(conn)
        later = [d for d in diffs if d[0] in ("add_table", "add_index")
                 and (d[1].name if d[0] == "add_table" else d[1].table.name) in TABLES_AFTER_0008]
        assert {d[1].name for d in later if d[0] == "add_table"} == set(TABLES_AFTER_0008)
        assert sorted((d[0], d[2], d[3].name) for d in diffs if d not in later) == [
            ("add_column", "device_model", "device_identifiers"),
            ("add_column", "drug", "boxed_warning"),
            ("add_column", "drug", "labelled_concentrations_mg_per_ml"),
            ("add_column", "drug", "limits"),
        ]
        if conn.dialect.name == "sqlite":
            assert conn.execute(text("SELECT count(*) FROM sqlite_master WHERE name LIKE 'patient_search_fts%'")).scalar() == 0
        else:
            assert conn.execute(text("SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%_trgm'")).scalar() == 0
    schema.prepare(engine)  # and up again
    assert _search(engine, "ÖLLER") == ["MRN10"]
    engine.dispose()


def test_revision_14_brings_the_drugs_an_earlier_version_shipped_to_the_library(db_url):
    """Issue 18.2: a database holding the shipped drug rows of revision 0008 (single maxima)
    gets the library's limits, each with its source; a clinic's own entry is left alone."""
    old = _at_revision(db_url, "0008")
    with old.begin() as conn:
        conn.execute(text(
            "INSERT INTO drug (code, name, display_unit, stability_days, max_concentration_mg_per_ml, max_dose_mg_per_day, "
            "caution_dose_mg_per_day, is_ziconotide, is_opioid, source) VALUES ('morphine', 'Morphine (Infumorph)', 'mg', 90, "
            "20, 15, 20, false, true, 'Infumorph label (90 d in pump, caution >20 mg/d); PACC 2017 maxima 20 mg/mL, 15 mg/d [GK, verify]')"))
        conn.execute(text(
            "INSERT INTO drug (code, name, display_unit, max_dose_mg_per_day, is_ziconotide, is_opioid, source) "
            "VALUES ('ketamine', 'Ketamine', 'mcg', 2.0, false, false, 'clinic')"))
    old.dispose()
    engine = make_engine(db_url)
    schema.prepare(engine)
    from devicelog.clinic.catalogue import shipped_catalogue
    from devicelog.store import queries
    from devicelog.store.db import read_session

    with read_session(engine) as session:
        drugs = queries.drugs_by_code(session)
    assert drugs["morphine"] == shipped_catalogue().drug("morphine")  # the library's entry, limits and sources
    assert drugs["morphine"].max_concentration_mg_per_ml is None
    ketamine = drugs["ketamine"]
    assert ketamine.limits == () and ketamine.max_dose_mg_per_day == 2.0  # read as a soft limit naming the entry
    assert [(lim.severity, lim.source) for lim in ketamine.all_limits()] == [("soft", "clinic catalogue entry ketamine (clinic)")]
    assert "baclofen" in drugs  # added on opening, as every shipped entry a database lacks
    engine.dispose()
