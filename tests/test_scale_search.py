"""Issue 8.2: patient search stays instant at 100,000 patients (``queries.search_patients``).

On SQLite a keystroke uses the trigram index ``patient_search_fts`` (terms of 3+
characters with few matches) or walks the narrow ``patient_search`` table in name order,
both kept in step by triggers; PostgreSQL runs ILIKE, as a union that trigram indexes
serve.  Whichever way, the answer must be exactly what ILIKE over the clinical tables
gives (``search_patients_like``): the same patients in the same order.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from sqlmodel import select

from devicelog import demo, services
from devicelog.clinic.records import DeviceIn, PatientIn
from devicelog.store import queries, schema, tables
from devicelog.store.db import read_session, write_session
from tests.conftest import PG_ADMIN_URL, TODAY, requires_sqlite

requires_postgresql = pytest.mark.skipif(not PG_ADMIN_URL, reason="PostgreSQL's trigram indexes")


@pytest.fixture
def clinic(engine):
    demo.build(engine, patients=300, seed=2, as_of=TODAY, method="bulk")
    return engine


def needles(session) -> list[str]:
    names = [r[0] for r in session.execute(text("SELECT name FROM patient ORDER BY id LIMIT 40"))]
    mrns = [r[0] for r in session.execute(text("SELECT mrn FROM patient ORDER BY id DESC LIMIT 20"))]
    serials = [r[0] for r in session.execute(text("SELECT serial FROM device ORDER BY id LIMIT 20"))]
    found = set()
    for word in names + mrns + serials:
        for n in (1, 2, 3, 5, len(word)):
            found.add(word[:n])
        found.add(word[-4:].lower())
        found.add(word.upper())
    return sorted(found) + ["%", "_", "a_", "\\", "zzzz", "  Ann  ", "ann lee", "DEMO-0002"]


def ids(patients) -> list[int]:
    return [p.id for p in patients]


@pytest.mark.parametrize("sort_max", [queries.FTS_SORT_MAX, 7, 0])
def test_search_table_gives_exactly_what_ilike_gives(clinic, sort_max, monkeypatch):
    # sort_max 0: every term walks the name index; 7: most 3+ character terms walk, rare ones use the index.
    monkeypatch.setattr(queries, "FTS_SORT_MAX", sort_max)
    with read_session(clinic) as s:
        checked = 0
        for needle in needles(s):
            for limit in (5, 50):
                assert ids(queries.search_patients(s, needle, limit)) == ids(
                    queries.search_patients_like(s, needle.strip(), limit)
                ), needle
                checked += 1
    assert checked > 200


def test_search_finds_a_patient_by_mrn_name_or_any_serial_whatever_the_case(engine):
    with write_session(engine) as s:
        services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN-77", name="Zelda Quist", birth_date=dt.date(1950, 1, 2)), author="rn")
        services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN-78", name="Anna 50%_off", birth_date=dt.date(1950, 1, 2)), author="rn")
    with read_session(engine) as s:
        assert queries.search_patients(s, "srx") == []  # no device yet
    with write_session(engine) as s:
        services.add_device(
            session=s,
            device=DeviceIn(patient_mrn="MRN-77", model="synchromed-ii-20", serial="NGPSRX1", implanted_on=dt.date(2025, 1, 5)),
            author="rn",
            today=TODAY,
        )
        services.add_device(
            session=s,
            device=DeviceIn(patient_mrn="MRN-77", model="synchromed-ii-40", serial="NGPSRX2", implanted_on=dt.date(2026, 1, 5), replaces_serial="NGPSRX1"),
            author="rn",
            today=TODAY,
        )
    with read_session(engine) as s:
        for needle in ("srx1", "SRX2", "mrn-77", "zelda", "LDA Q", " quist "):
            assert [p.mrn for p in queries.search_patients(s, needle)] == ["MRN-77"], needle
        assert [p.mrn for p in queries.search_patients(s, "%_")] == ["MRN-78"]  # literal, not wildcards
        assert [p.mrn for p in queries.search_patients(s, "_")] == ["MRN-78"]
        assert [p.mrn for p in queries.search_patients(s, "mrn-7")] == ["MRN-78", "MRN-77"]  # by name: Anna, Zelda
        assert [p.mrn for p in queries.search_patients(s, "")] == ["MRN-78", "MRN-77"]
        assert queries.search_patients(s, "x\ny") == []


def _add(s, mrn: str, name: str, *serials: str) -> None:
    services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn=mrn, name=name, birth_date=dt.date(1950, 1, 2)), author="rn")
    for i, serial in enumerate(serials):
        services.add_device(
            session=s,
            device=DeviceIn(patient_mrn=mrn, model="synchromed-ii-20", serial=serial, implanted_on=dt.date(2020 + i, 1, 5),
                            replaces_serial=serials[i - 1] if i else None),
            author="rn",
            today=TODAY,
        )


@pytest.mark.parametrize("sort_max", [queries.FTS_SORT_MAX, 0])
def test_non_ascii_letters_match_whatever_their_case(engine, sort_max, monkeypatch):
    monkeypatch.setattr(queries, "FTS_SORT_MAX", sort_max)  # 0: the name walk for every term
    with write_session(engine) as s:
        _add(s, "MRN-1", "Özil Ärger", "ÖSTX1")
        _add(s, "MRN-2", "Élodie Brûlé")
        _add(s, "MRN-3", "Σίσυφος Παπάς")
        _add(s, "MRN-4", "Oskar Ebert")
    with read_session(engine) as s:
        def mrns(needle):
            return [p.mrn for p in queries.search_patients(s, needle)]

        for needle in ("öz", "ÖZ", "özil", "ÖZIL", "öZiL ä", "ärger", "ÄRGER", "östx1", "Östx"):
            assert mrns(needle) == ["MRN-1"], needle
        for needle in ("élo", "ÉLODIE", "brûlé", "BRÛLÉ", "û", "Û"):
            assert mrns(needle) == ["MRN-2"], needle
        assert mrns("ö") == mrns("Ö") == mrns("o")  # a lone accented letter is its plain letter
        assert mrns("é") == mrns("É") == mrns("e") == ["MRN-4", "MRN-2", "MRN-1"]  # Ebert, Élodie, Ärger
        for needle in ("σί", "ΣΊΣΥΦΟ", "παπ"):
            assert mrns(needle) == ["MRN-3"], needle
        # Accents fold too (issue 13.14): o finds Oskar, Élodie and Özil (Ö = O + umlaut), not
        # Greek ο; by name in code-point order: Oskar (O), Élodie (É), Özil (Ö).
        assert mrns("o") == ["MRN-4", "MRN-2", "MRN-1"]
        assert mrns("zil") == ["MRN-1"]
        assert mrns("oz") == mrns("OZIL ARGER") == mrns("ostx1") == ["MRN-1"]
        assert mrns("elodie brule") == mrns("BRULE") == ["MRN-2"]
        assert mrns("σισυφος") == mrns("ΣΙΣΥΦ") == ["MRN-3"]  # Greek tonos is a combining accent


@pytest.mark.parametrize("sort_max", [queries.FTS_SORT_MAX, 0])
def test_search_folds_accents_and_case_both_ways(engine, sort_max, monkeypatch):
    """Issue 13.14: "nunez" found no one while "Núñ" found O'Brien-Núñez.  Typed with or
    without accents, in any case, a name is found (on SQLite and PostgreSQL alike: the
    PostgreSQL run of this test uses its devicelog_fold function and indexes)."""
    monkeypatch.setattr(queries, "FTS_SORT_MAX", sort_max)  # 0: the name walk for every term
    with write_session(engine) as s:
        _add(s, "MRN-N1", "Aoife O'Brien-Núñez", "NÚÑ-77")
        _add(s, "MRN-N2", "Nina Nunes")
    with read_session(engine) as s:
        def mrns(needle):
            return [p.mrn for p in queries.search_patients(s, needle)]

        for needle in ("nunez", "NUNEZ", "ÑÚÑEZ", "núñez", "NÚÑEZ", "o'brien-nunez", "Brien-Nún", "nun-77", "úñ-7"):
            assert mrns(needle) == ["MRN-N1"], needle
        assert mrns("nun") == mrns("Núñ") == ["MRN-N1", "MRN-N2"]  # Aoife, Nina: "nun" is in both, folded
        assert mrns("nunes") == ["MRN-N2"]
        assert ids(queries.search_patients(s, "nunez")) == ids(queries.search_patients_like(s, "nunez"))


@pytest.mark.parametrize("sort_max", [queries.FTS_SORT_MAX, 7, 0])
def test_the_tuis_core_reads_find_what_search_patients_finds(clinic, sort_max, monkeypatch):
    """The TUI's first screen reads in Core, on a Connection (``search_patient_ids``,
    ``patients_by_id``, ``devices_of_patients``, ``catalogue``): the same patients in
    the same order as ``search_patients``, and the same patient and device values as
    the ORM rows give (``to_patient``, ``to_device``), non-ASCII names included."""
    from devicelog.settings import Settings
    from devicelog.tui import state

    monkeypatch.setattr(queries, "FTS_SORT_MAX", sort_max)
    with write_session(clinic) as s:
        _add(s, "MRN-O1", "Özil Ärger", "ÖSTX1", "ÖSTX2")
        _add(s, "MRN-E2", "Élodie Brûlé", "ÉLX9")
        _add(s, "MRN-S3", "Σίσυφος Παπάς")
    with read_session(clinic) as s:
        orm_catalogue = queries.Catalogue(
            device_models=[queries.to_device_model(r) for r in s.exec(select(tables.DeviceModelRow)).all()],
            drugs=[queries.Drug.model_validate(r.model_dump()) for r in s.exec(select(tables.DrugRow)).all()],
        )
        needles_ = needles(s) + ["ö", "ÖZ", "ärger", "östx", "É", "brûlé", "ΣΊΣ", "παπ", "mrn-", "x\ny"]
    with clinic.connect() as conn:
        assert queries.catalogue(conn) == orm_catalogue
    models = {m.code: m for m in orm_catalogue.device_models}
    checked = 0
    for needle in needles_:
        for limit in (5, 50):
            with read_session(clinic) as s:
                want = queries.search_patients(s, needle, limit)
                want_devices = {
                    p.id: sorted(
                        (queries.to_device(d, models[d.model_code]) for d in queries.devices_of_patient(s, p.id)),
                        key=lambda d: (not d.in_service, d.implanted_on, d.id),
                    )
                    for p in want
                }
            with clinic.connect() as conn:
                assert queries.search_patient_ids(conn, needle, limit) == ids(want), needle
            found = state.search(clinic, needle, as_of=TODAY, settings=Settings(), catalogue=orm_catalogue, limit=limit)
            assert [h.patient for h in found.hits] == [queries.to_patient(p) for p in want], needle
            assert {h.patient.id: list(h.devices) for h in found.hits} == want_devices, needle
            checked += 1
    assert checked > 200


@pytest.mark.parametrize("sort_max", [queries.FTS_SORT_MAX, 0])
def test_glob_and_fts_syntax_are_plain_characters(engine, sort_max, monkeypatch):
    monkeypatch.setattr(queries, "FTS_SORT_MAX", sort_max)
    with write_session(engine) as s:
        _add(s, "MRN-5", 'Ann [b]* ?"c" AND d')
        _add(s, "MRN-6", "Ann b")
        _add(s, "MRN-7", "Zoë Ñú*[?]")
    with read_session(engine) as s:
        for needle in ("[b", "[b]", "]*", '"', '"c"', '?"c', "AND d", "* ?"):
            assert [p.mrn for p in queries.search_patients(s, needle)] == ["MRN-5"], needle
        for needle in ("[", "*", "?"):
            assert [p.mrn for p in queries.search_patients(s, needle)] == ["MRN-5", "MRN-7"], needle
        for needle in ("ë ñú*[?", "Ë ÑÚ*[?]", "ñú", "Ú*["):  # folded (e nu*[?); * ? [ still plain
            assert [p.mrn for p in queries.search_patients(s, needle)] == ["MRN-7"], needle
        assert [p.mrn for p in queries.search_patients(s, "ann b")] == ["MRN-6"]
        assert [p.mrn for p in queries.search_patients(s, "ann")] == ["MRN-5", "MRN-6"]


def test_the_index_follows_renames_and_moved_devices(engine):
    with write_session(engine) as s:
        _add(s, "MRN-7", "Ödön Fekete", "SERIAL-A1")
        _add(s, "MRN-8", "Ida Nagy")
    with write_session(engine) as s:
        s.execute(text("UPDATE patient SET name = 'Ödön Feher', mrn = 'MRN-70' WHERE mrn = 'MRN-7'"))
        s.execute(text("UPDATE device SET patient_id = (SELECT id FROM patient WHERE mrn = 'MRN-8') WHERE serial = 'SERIAL-A1'"))
    with read_session(engine) as s:
        def mrns(needle):
            return [p.mrn for p in queries.search_patients(s, needle)]

        assert mrns("fekete") == []
        assert mrns("FEHER") == ["MRN-70"]
        assert mrns("mrn-70") == ["MRN-70"]
        assert mrns("serial-a") == ["MRN-8"]
        assert mrns("mrn-7") == ["MRN-70"]


@requires_sqlite
def test_the_trigram_index_holds_exactly_the_search_rows(clinic):
    with write_session(clinic) as s:
        _add(s, "MRN-9", "Zoë Ünal", "ZOE-1", "ZOE-2")
        s.execute(text("UPDATE patient SET name = 'Zoë Ünal-Berg' WHERE mrn = 'MRN-9'"))
    with read_session(clinic) as s:
        fts = s.execute(text("SELECT rowid, haystack FROM patient_search_fts ORDER BY rowid")).all()
        table = s.execute(text("SELECT patient_id, haystack FROM patient_search ORDER BY patient_id")).all()
        assert fts == table and len(table) == 301
        s.execute(text("INSERT INTO patient_search_fts (patient_search_fts) VALUES ('integrity-check')"))  # raises if corrupt
        plan = " ".join(r[-1] for r in s.execute(text("EXPLAIN QUERY PLAN " + queries._FTS_SORTED), {"q": '"abc"', "n": 5}))
        assert "VIRTUAL TABLE INDEX 0:M" in plan, plan  # the match drives the query


@requires_postgresql
def test_postgresql_trigram_indexes_serve_the_folded_search(engine):
    """The search's own query (a union over the folded MRN, name and serial) is served by
    the trigram indexes of revision 0007, not a scan of every patient."""
    from sqlalchemy import select as sa_select

    with engine.connect() as conn:
        have = {r[0] for r in conn.execute(text("SELECT indexname FROM pg_indexes"))}
        assert set(schema.PG_SEARCH_INDEXES) <= have  # pg_trgm is available on the test server
        assert not set(schema.PG_SEARCH_INDEXES_0005) & have  # replaced
        conn.execute(text("SET enable_seqscan = off"))
        query = sa_select(queries._PATIENT_T.c.id).where(queries._PATIENT_T.c.id.in_(queries._union_matches("nunez")))
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {compiled}")))
    for name in schema.PG_SEARCH_INDEXES:
        assert name in plan, plan
