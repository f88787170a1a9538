"""The stored due table is rebuilt when, and only when, the forecast changes (issue 16, section 5).

``store.forecasts.FORECAST_VERSION`` is bumped by hand; the table is not tied to the
source text, so a docstring edit rebuilds nothing.  This test holds the version to
the forecast: it fingerprints what the forecast stores for a demo clinic (every due
item and note of every device) and fails when that changes while the version did not.

When it fails because you changed the forecast on purpose: bump ``FORECAST_VERSION``
and record the new fingerprint with ``python -m tests.test_forecast_version``.
When the demo clinic itself changed (``demo_sha256`` differs), re-record it the same
way; bump the version too if the forecast also changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from sqlalchemy import select

from devicelog import demo
from devicelog.store import forecasts
from devicelog.store.db import make_engine
from devicelog.store.schema import prepare

FINGERPRINT = Path(__file__).with_name("forecast_fingerprint.json")
AS_OF = dt.date(2026, 11, 23)
PATIENTS, SEED = 60, 1


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()


def fingerprint(db_path: Path) -> dict:
    """The demo clinic's document and everything the forecast stores for it, hashed."""
    engine = make_engine(str(db_path))
    try:
        prepare(engine)
        demo.build(engine, patients=PATIENTS, seed=SEED, as_of=AS_OF, method="bulk")
        stored = []
        with engine.connect() as conn:
            for table in (forecasts.due_item, forecasts.device_note):
                cols = [c for c in table.c if c.name != "id"]
                stored.append([list(r) for r in conn.execute(select(*cols).order_by(table.c.device_id, table.c.seq))])
    finally:
        engine.dispose()
    return {
        "version": forecasts.FORECAST_VERSION,
        "demo_sha256": _sha(demo.document(PATIENTS, SEED, AS_OF)),
        "forecast_sha256": _sha(stored),
    }


def test_the_forecast_changes_only_with_its_version(tmp_path):
    now = fingerprint(tmp_path / "demo.db")
    recorded = json.loads(FINGERPRINT.read_text(encoding="utf-8"))
    if now["demo_sha256"] != recorded["demo_sha256"]:
        raise AssertionError("the demo clinic changed: re-record with `python -m tests.test_forecast_version`")
    if now["forecast_sha256"] != recorded["forecast_sha256"]:
        assert now["version"] != recorded["version"], (
            "the demo clinic's forecast changed but FORECAST_VERSION did not: bump it in store/forecasts.py "
            "(so every clinic's due table is rebuilt) and re-record with `python -m tests.test_forecast_version`"
        )
        raise AssertionError("FORECAST_VERSION was bumped: record the new fingerprint with `python -m tests.test_forecast_version`")
    assert now["version"] == recorded["version"], "the version changed but the forecast did not: re-record the fingerprint"


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        found = fingerprint(Path(folder) / "demo.db")
    FINGERPRINT.write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    print(f"recorded {found} in {FINGERPRINT}", file=sys.stderr)
