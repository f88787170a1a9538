"""Engine, connection settings and transactions.

SQLite is the embedded default; a database URL (``postgresql://…``) selects a server.
SQLite connections get foreign keys, WAL and a busy timeout; a write transaction
begins with ``BEGIN IMMEDIATE`` so that two nurses saving at once queue for the
write lock inside the busy timeout instead of one of them seeing "database is locked"
when a read transaction tries to upgrade.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import Engine, create_engine, event

if TYPE_CHECKING:
    from sqlmodel import Session

ENV_VAR = "DEVICELOG_DB"
BUSY_TIMEOUT_MS = 60_000


def default_db_path() -> Path:
    from platformdirs import user_data_path

    return user_data_path("devicelog") / "devicelog.db"


def resolve_url(db: str | os.PathLike | None = None) -> str:
    """``--db`` wins, then ``$DEVICELOG_DB``, then the user's data directory.

    A value with ``://`` is a database URL; anything else is a SQLite file path.
    """
    value = str(db) if db else os.environ.get(ENV_VAR) or str(default_db_path())
    if "://" in value:
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value
    path = Path(value).expanduser()
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///"):
        rest = url.removeprefix("sqlite:///")
        return None if rest in ("", ":memory:") else Path(rest)
    return None


def make_engine(db: str | os.PathLike | None = None) -> Engine:
    url = resolve_url(db)
    path = sqlite_path(url)
    if url.startswith("sqlite"):
        if path is not None:
            _create_private_file(path)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def _create_private_file(path: Path) -> None:
    """Database files are readable by their owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def _sqlite_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _sqlite_begin(conn) -> None:
    immediate = conn.get_execution_options().get("devicelog_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """One transaction for one user action: committed on success, rolled back on any error."""
    from sqlmodel import Session

    bind = engine.execution_options(devicelog_write=True)
    with refusals_named(), Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextlib.contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    from sqlmodel import Session

    with refusals_named(), Session(engine, expire_on_commit=False) as session:
        yield session


@contextlib.contextmanager
def refusals_named() -> Iterator[None]:
    """A server's "permission denied" becomes ``access.AccessRefused``: one line naming
    the role that may do it (an ``InputError``, shown as every refused save is)."""
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except DBAPIError as exc:
        from devicelog.store.access import refusal

        refused = refusal(exc)
        if refused is None:
            raise
        raise refused from None
