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
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from sqlalchemy import Engine, create_engine, event

from devicelog.store.folding import fold

if TYPE_CHECKING:
    from sqlmodel import Session

ENV_VAR = "DEVICELOG_DB"
BUSY_TIMEOUT_MS = 60_000


def default_db_path() -> Path:
    from platformdirs import user_data_path

    return user_data_path("devicelog") / "devicelog.db"


class DatabaseError(RuntimeError):
    """The database cannot be opened, or is not a devicelog database: one line naming it
    and what is wrong (the commands exit 2).  Nothing was created or changed."""


class NoDatabase(DatabaseError):
    """There is no devicelog database there (a missing file, or an empty database)."""


class NotDevicelog(DatabaseError):
    """The database holds another program's tables, not devicelog's (never written into)."""


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


#: Query arguments of a SQLite URL that are SQLite's own URI parameters (sqlite.org/uri.html).
_SQLITE_URI_PARAMS = frozenset({"mode", "immutable", "cache", "nolock", "vfs", "psow", "modeof"})


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (without its query: ``sqlite:///c.db?mode=ro`` is ``c.db``);
    None for a server or an in-memory database."""
    if not url.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database or ""
    if database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
        if database.startswith("//"):  # file:///abs/path
            from urllib.parse import unquote, urlsplit

            database = unquote(urlsplit("file:" + database).path)
    return None if database in ("", ":memory:") else Path(database)


def sqlite_read_only(url: str) -> bool:
    """Whether a SQLite URL asks for a read-only connection (``?mode=ro`` or ``?immutable=1``)."""
    if not url.startswith("sqlite:"):
        return False
    from sqlalchemy.engine import make_url

    query = make_url(url).query
    return query.get("mode") == "ro" or query.get("immutable") in ("1", "true")


def shown(db: str | os.PathLike | None = None) -> str:
    """The database as a person names it in a message: the SQLite file, or the server URL
    with its password hidden."""
    url = resolve_url(db)
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True).replace("postgresql+psycopg://", "postgresql://")
    except Exception:  # not a URL SQLAlchemy can parse: say it as given
        return url


def make_engine(db: str | os.PathLike | None = None, *, create: bool = True) -> Engine:
    """The engine of ``db`` (see :func:`resolve_url`).

    ``create``: a missing SQLite file is made (readable by its owner only, its folders
    too); otherwise it raises :class:`NoDatabase` and makes nothing."""
    url = resolve_url(db)
    path = sqlite_path(url)
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if path is not None:
            if not path.exists():
                if not create or sqlite_read_only(url):
                    raise NoDatabase(f"no devicelog database at {path}")
                _create_private_file(path)
            elif not path.is_file():
                raise DatabaseError(f"{path} is not a devicelog database: it is a folder or a device, not a file")
            else:
                if _read_only_folder(path) and not Path(f"{path}-wal").exists():
                    # SQLite cannot make the -shm it reads a WAL file through in a folder it may not
                    # write: read the file as immutable (with no -wal and no way to make one, no
                    # devicelog can be writing it).  Reads work; a write is refused ("readonly").
                    parsed = parsed.update_query_dict({"immutable": "1"})
            if set(parsed.query) & _SQLITE_URI_PARAMS and parsed.query.get("uri") != "true":
                # SQLite reads these only from a URI (else SQLAlchemy ignores them, and the
                # query would name another file): sqlite:///c.db?mode=ro → file:///abs/c.db?mode=ro
                parsed = parsed.set(database=path.resolve().as_uri(), query={**parsed.query, "uri": "true"})
        try:
            engine = create_engine(
                parsed, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
            )
        except Exception as exc:  # noqa: BLE001 - a URL SQLAlchemy refuses (unknown argument…)
            raise DatabaseError(f"cannot open {shown(db)}: {_first_line(exc)}") from None
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        try:
            engine = create_engine(url, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise DatabaseError(
                f"cannot open {shown(db)}: its driver ({exc.name}) is not installed "
                "(for PostgreSQL: pip install 'devicelog[postgres]')"
            ) from None
        except Exception as exc:  # noqa: BLE001 - an unknown scheme, a malformed URL
            raise DatabaseError(f"cannot open {shown(db)}: {_first_line(exc)}") from None
    return engine


def _first_line(exc: BaseException) -> str:
    """What a driver says, on one line (without SQLAlchemy's background link)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip() or type(inner).__name__
    return " ".join(line.strip() for line in text.splitlines()[:1])


def explain(db, exc: BaseException) -> str:
    """One line for a database error met while opening or reading ``db``."""
    what = _first_line(exc)
    where = shown(db)
    if "file is not a database" in what:
        return f"{where} is not a devicelog database: it is not a SQLite file ({what})"
    if "readonly database" in what or "read-only" in what:
        return f"{where} is read-only ({what}); nothing was written"
    return f"cannot open {where}: {what}"


def _read_only_folder(path: Path) -> bool:
    folder = path.resolve().parent
    try:
        return not os.access(folder, os.W_OK, effective_ids=os.access in os.supports_effective_ids)
    except OSError:
        return False


def _create_private_file(path: Path) -> None:
    """Database files are readable by their owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def tighten_modes(path: Path) -> list[str]:
    """A database (and its ``-wal``/``-shm``) readable or writable by others is made its
    owner's only, as devicelog creates them; said on standard error.  What cannot be
    tightened (another owner's file) is said too.  Returns what was said."""
    import stat
    import sys

    said = []
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(candidate.stat().st_mode)
        except OSError:
            continue
        if not mode & 0o077:
            continue
        try:
            os.chmod(candidate, mode & 0o700)
            said.append(f"devicelog: {candidate} was open to others (mode {mode:04o}); now {mode & 0o700:04o}, its owner's only")
        except OSError as exc:
            said.append(f"devicelog: warning: {candidate} is open to others (mode {mode:04o}) and could not be tightened ({exc.strerror})")
    for line in said:
        print(line, file=sys.stderr)
    return said


def _sqlite_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
    dbapi_connection.isolation_level = None
    # The search triggers fold names through it (store.folding; issue 13.14).
    dbapi_connection.create_function("devicelog_fold", 1, fold, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys = ON")
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal" and _devicelog_or_empty(cursor):
        # WAL is a lasting property of the file: set on devicelog's own (or a new one) only,
        # never on another program's SQLite file opened by mistake (it is refused unchanged).
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:  # a read-only database keeps its journal mode; it still serves reads
            pass
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _devicelog_or_empty(cursor) -> bool:
    tables = {r[0] for r in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    return not tables or "patient" in tables


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


def snapshot(engine: Engine) -> Engine:
    """``engine`` for reads that must agree with each other: every statement of one
    transaction sees the database as it was when the first one ran, whoever writes
    meanwhile (issue 19, section 4).

    PostgreSQL's default, READ COMMITTED, takes a new snapshot per statement, so an
    export could list a device whose patient it had not seen, and verify could call a
    row written between two of its queries "inserted outside devicelog".  There a read
    is REPEATABLE READ and READ ONLY.  SQLite in WAL mode already reads one snapshot
    per transaction."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return engine


@contextlib.contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session whose reads are one consistent snapshot (:func:`snapshot`)."""
    from sqlmodel import Session

    with refusals_named(), Session(snapshot(engine), expire_on_commit=False) as session:
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
