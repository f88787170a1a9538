"""Issue 8.2: patient search stays instant at 100,000 patients (``queries.search_patients``).

On SQLite a keystroke scans the narrow ``patient_search`` table that triggers keep in
step; the answer must be exactly what ILIKE over the clinical tables gives
(``search_patients_like``, what PostgreSQL runs): the same patients in the same order.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from devicelog import demo, services
from devicelog.clinic.records import DeviceIn, PatientIn
from devicelog.store import queries
from devicelog.store.db import read_session, write_session
from tests.conftest import TODAY


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


def test_search_table_gives_exactly_what_ilike_gives(clinic):
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
        services.add_patient(session=s, patient=PatientIn(mrn="MRN-77", name="Zelda Quist", birth_date=dt.date(1950, 1, 2)), author="rn")
        services.add_patient(session=s, patient=PatientIn(mrn="MRN-78", name="Anna 50%_off", birth_date=dt.date(1950, 1, 2)), author="rn")
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
