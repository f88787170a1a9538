import datetime as dt
import os

import pytest

# No test depends on the machine's clock zone or a user's settings file.
os.environ["TZ"] = "UTC"
os.environ.pop("DEVICELOG_DB", None)
os.environ.pop("DEVICELOG_SETTINGS", None)

TODAY = dt.date(2026, 11, 23)


@pytest.fixture
def engine(tmp_path):
    from devicelog.store.db import make_engine
    from devicelog.store.schema import prepare

    eng = make_engine(tmp_path / "clinic.db")
    prepare(eng)
    yield eng
    eng.dispose()
