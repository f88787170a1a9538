"""``devicelog due --format json`` from the due table on SQLite (issue 8.1).

``reports.due.json_from_table`` has SQLite write each item's JSON text
(``store.forecasts.read_range_json``) instead of reading the rows into Python.  It
must write the very bytes ``render_json`` writes for the same list (``store.due``),
for every range, kind filter, status and as-of date, whatever the text holds
(quotes, backslashes, control and non-ASCII characters, characters beyond the BMP),
in the same order (ties included); and it must never serve a stale table.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys

import pytest
from sqlalchemy import text

from devicelog import cli, demo
from devicelog.clinic.records import DeviceKind
from devicelog.reports import due as report
from devicelog.settings import Settings
from devicelog.store import due as store_due
from devicelog.store import forecasts
from tests.conftest import PG_ADMIN_URL, requires_sqlite
from tests.test_due_clinic import AS_OF, build_clinic

PUMP, SCS, PNS = DeviceKind.intrathecal_pump, DeviceKind.spinal_cord_stimulator, DeviceKind.peripheral_nerve_stimulator
RANGES = (None, 0, 14, 30, 365, forecasts.MAX_WITHIN_DAYS)
KINDS = ((), (PUMP,), (SCS, PNS), (PNS, SCS, PNS), (DeviceKind.drg_stimulator,))
AS_OFS = (AS_OF, AS_OF - dt.timedelta(days=400), AS_OF + dt.timedelta(days=400))

#: Text JSON escapes one way or another: quotes, backslash, the short escapes, other
#: control characters (\u00xx), DEL and the line separators (left as they are), and
#: non-ASCII characters in and beyond the BMP.
NASTY = (
    'Zoë "Zed" O\'Brien',
    "back\\slash \\\" both",
    "tab\there\nnewline\rcr\bbs\fff",
    "ctrl\x01\x02\x1f del\x7f",
    "sep\u2028para\u2029",
    "emoji 😀 and 𝔸",
    "ligature ﬀ",
    "€uro ¥en",
)
#: MRNs whose code-point order (Python's) differs from UTF-16's (U+FB00 < U+1D538 <
#: U+1F600 as code points and as UTF-8 bytes; not as UTF-16 units) and from a
#: case-insensitive one.
MRNS = ("ﬀ-1", "𝔸-1", "😀-1", "Z-1", "a-1", "é-1", "e-1", "A-1", "€-1")


def reference_json(conn, *, as_of, settings, within_days, kinds) -> str:
    dl = store_due.due_list(conn, as_of=as_of, settings=settings, within_days=within_days, kinds=kinds)
    out = io.StringIO()
    report.render_json(dl, out)
    return out.getvalue()


def table_json(conn, **kw) -> str:
    found = report.json_from_table(conn, **kw)
    assert found is not None, "the table is fresh: the JSON comes from it"
    out = io.StringIO()
    found.write(out)
    doc = json.loads(out.getvalue())
    assert found.count == doc["count"] == len(doc["items"])
    return out.getvalue()


@pytest.fixture
def clinic(engine):
    """The demo clinic and the hand-worked one, with awkward text written into the due
    table (a derived cache: both paths read the same rows) and items the sort key
    cannot tell apart."""
    demo.build(engine, patients=60, seed=7, as_of=AS_OF)
    build_clinic(engine)
    with engine.begin() as conn:
        n = len(NASTY)
        for k, nasty in enumerate(NASTY):
            conn.execute(
                text(
                    "UPDATE due_item SET patient_name = :v, why = why || :v, what = :v || what, rule = rule || :v "
                    "WHERE id % :n = :k"
                ),
                {"v": nasty, "n": n, "k": k},
            )
            conn.execute(
                text("UPDATE device_note SET patient_name = :v, message = message || :v WHERE id % :n = :k"),
                {"v": nasty, "n": n, "k": k},
            )
        for k, mrn in enumerate(MRNS):
            conn.execute(
                text("UPDATE due_item SET patient_mrn = :v WHERE id % :n = :k AND id % 5 = 1"),
                {"v": mrn, "n": len(MRNS), "k": k},
            )
        # Ties: every field of the sort key equal (due date and severity as they fall).
        conn.execute(
            text(
                "UPDATE due_item SET patient_mrn = 'TIE', device_serial = 'TIE', code = 'tie', "
                "source_event_id = NULL WHERE id % 4 = 0"
            )
        )
        conn.execute(text("UPDATE due_item SET code = 'q\"\\ é' WHERE id % 13 = 0"))
        # Suppressed items the key cannot tell apart (their order is the table's, as listed).
        conn.execute(
            text(
                "UPDATE due_item SET due_on = '2026-11-20', patient_mrn = 'TIE', device_serial = 'TIE', code = 'tie' "
                "WHERE suppressed_reason IS NOT NULL AND id % 2 = 0"
            )
        )
    return engine


@requires_sqlite
def test_the_table_json_is_render_json_byte_for_byte(clinic):
    statuses: set[str] = set()
    with clinic.connect() as conn:
        for settings in (Settings(), Settings(lead_time_days=3, clinic_name='Clinique "Zoë" \\ 😀')):
            assert forecasts.is_fresh(conn, settings), "display settings do not make the table stale"
            for as_of in AS_OFS:
                for within in RANGES:
                    for kinds in KINDS:
                        kw = dict(as_of=as_of, settings=settings, within_days=within, kinds=kinds)
                        expected = reference_json(conn, **kw)
                        assert table_json(conn, **kw) == expected, (as_of, within, kinds)
                        doc = json.loads(expected)
                        statuses |= {i["status"] for i in doc["items"] + doc["suppressed"]}
        doc = json.loads(table_json(conn, as_of=AS_OF, settings=Settings(), within_days=None, kinds=()))
    assert statuses == {"overdue", "due", "upcoming", "suppressed"}
    names = {i["patient_name"] for i in doc["items"]}
    assert set(NASTY) <= names, "the awkward names reached the list, and came back as they were"
    assert {"TIE", *MRNS} <= {i["patient_mrn"] for i in doc["items"]}
    assert doc["notes"] and doc["suppressed_by_reason"]
    assert len([s for s in doc["suppressed"] if s["patient_mrn"] == "TIE"]) > 2
    assert any(n["patient_name"] in NASTY for n in doc["notes"])


@requires_sqlite
def test_a_stale_table_is_never_served(clinic):
    """Settings that change a due date, or other forecast code or catalogue: no JSON from
    the table (the caller computes the forecasts)."""
    with clinic.connect() as conn:
        assert report.json_from_table(conn, as_of=AS_OF, settings=Settings(refill_margin_days=10)) is None
    with clinic.begin() as conn:
        conn.execute(text("UPDATE forecast_cache SET code_hash = 'older code'"))
    with clinic.connect() as conn:
        assert report.json_from_table(conn, as_of=AS_OF, settings=Settings()) is None
    with clinic.begin() as conn:
        conn.execute(text("DELETE FROM forecast_cache"))
    with clinic.connect() as conn:
        assert report.json_from_table(conn, as_of=AS_OF, settings=Settings()) is None


def test_postgresql_and_bad_ranges_take_the_store_path(engine):
    build_clinic(engine)
    with engine.connect() as conn:
        found = report.json_from_table(conn, as_of=AS_OF, settings=Settings(), within_days=30)
        assert (found is None) == bool(PG_ADMIN_URL) == (conn.dialect.name == "postgresql")
        with pytest.raises(ValueError, match="within_days"):
            report.json_from_table(conn, as_of=AS_OF, settings=Settings(), within_days=forecasts.MAX_WITHIN_DAYS + 1)


def test_the_command_writes_the_list_render_json_writes(clinic, tmp_path, capsys):
    """End to end (on PostgreSQL through ``store.due.due_rows``): the file is the same bytes."""
    out = tmp_path / "due.json"
    url = clinic.url.render_as_string(hide_password=False)
    args = ["--db", url, "due", "--as-of", AS_OF.isoformat(), "--within", "30", "--kind", "pump", "--kind", "scs"]
    assert cli.main([*args, "--format", "json", "-o", str(out)]) == 0
    with clinic.connect() as conn:
        expected = reference_json(conn, as_of=AS_OF, settings=Settings(), within_days=30, kinds=(PUMP, SCS))
    assert out.read_bytes() == expected.encode("utf-8")
    assert f"{json.loads(expected)['count']} items written to" in capsys.readouterr().err


def test_within_limit_is_the_store_limit():
    from devicelog.commands.due import _within

    assert store_due.MAX_WITHIN_DAYS == forecasts.MAX_WITHIN_DAYS
    assert _within(str(forecasts.MAX_WITHIN_DAYS)) == forecasts.MAX_WITHIN_DAYS
    with pytest.raises(Exception, match=f"0 to {forecasts.MAX_WITHIN_DAYS}"):
        _within(str(forecasts.MAX_WITHIN_DAYS + 1))


@requires_sqlite
def test_the_json_command_does_not_import_the_forecast_vocabulary(clinic, tmp_path):
    """``devicelog due --format json`` from a fresh table starts without ``store.due``,
    the history model, the catalogue or the ORM (a third of its start at 100,000 patients)."""
    out = tmp_path / "due.json"
    url = clinic.url.render_as_string(hide_password=False)
    code = (
        "import sys\n"
        "from devicelog import cli\n"
        f"assert cli.main(['--db', {url!r}, 'due', '--as-of', '{AS_OF}', '--within', '30', '--format', 'json', "
        f"'-o', {str(out)!r}]) == 0\n"
        "heavy = ('devicelog.store.due', 'devicelog.clinic.due', 'devicelog.clinic.history', "
        "'devicelog.clinic.catalogue', 'sqlmodel')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert json.loads(out.read_text(encoding="utf-8"))["count"] > 0
