import datetime as dt
import os
import uuid

import pytest

# No test depends on the machine's clock zone or a user's settings file.
os.environ["TZ"] = "UTC"
os.environ.pop("DEVICELOG_DB", None)
os.environ.pop("DEVICELOG_SETTINGS", None)

TODAY = dt.date(2026, 11, 23)

#: Set by .ci/run's PostgreSQL pass: an admin URL (postgresql://user@host:port/postgres).
#: Each test then gets a database of its own on that server instead of a SQLite file.
PG_ADMIN_URL = os.environ.get("DEVICELOG_TEST_PG")

requires_sqlite = pytest.mark.skipif(bool(PG_ADMIN_URL), reason="exercises SQLite files directly")
requires_pg = pytest.mark.skipif(not PG_ADMIN_URL, reason="exercises a PostgreSQL server (the CI's PostgreSQL pass)")


def user_args(display_name: str) -> list[str]:
    """``--user NAME`` on SQLite; nothing on a server, which refuses it (the login is the author)."""
    return [] if PG_ADMIN_URL else ["--user", display_name]


def recorded_author(display_name: str) -> str:
    """The author a command run with ``user_args(display_name)`` records: the OS login with
    the display name beside it, or on a server the login of the test's URL."""
    from devicelog import identity

    if PG_ADMIN_URL:
        return PG_ADMIN_URL.split("://", 1)[1].split("@", 1)[0]
    return identity.local_author(display_name)


def _pg_database(admin_url: str):
    from sqlalchemy import create_engine, text

    from devicelog.store.db import resolve_url

    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(resolve_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


@pytest.fixture
def db_url(tmp_path):
    """A fresh, empty database: a SQLite file, or a PostgreSQL database in the PG pass."""
    if PG_ADMIN_URL:
        url, drop = _pg_database(PG_ADMIN_URL)
        yield url
        drop()
    else:
        yield str(tmp_path / "clinic.db")


@pytest.fixture
def engine(db_url):
    from devicelog.store.db import make_engine
    from devicelog.store.schema import prepare

    eng = make_engine(db_url)
    prepare(eng)
    yield eng
    eng.dispose()
