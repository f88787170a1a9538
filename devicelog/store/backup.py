"""Backing up and restoring a SQLite database file, checked before anything is replaced.

A backup is made with SQLite's online backup API in one read transaction, so it is a
consistent snapshot even while nurses keep writing (WAL lets them).  A restore first
copies the backup aside and checks the copy (file integrity, schema revision known to
this devicelog, audit chain and every row verified); only then does it keep the current
database as ``<name>.before-restore`` and copy the backup in, again through the backup
API, so processes that have the database open see the restored content, not a file
swapped under them.  Every file made here is readable by its owner only (0600).
PostgreSQL databases are backed up with the server's own tools (``pg_dump``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devicelog.store.db import BUSY_TIMEOUT_MS

if TYPE_CHECKING:
    from devicelog.store.audit import Anchor


class BackupError(RuntimeError):
    """The backup or restore was refused; ``problems`` says why. Nothing was replaced."""

    def __init__(self, message: str, problems: list | None = None):
        self.problems = list(problems or [])
        super().__init__(message)


@dataclass(frozen=True)
class Copied:
    path: Path
    entries: int
    head: str
    size_bytes: int
    head_seq: int = 0


def _private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 (refusing to reuse an existing file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}{'?mode=ro' if read_only else ''}"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _copy(src: sqlite3.Connection, dest: Path) -> None:
    """Online backup of ``src`` into a new private single file ``dest`` (no WAL)."""
    _private(dest)
    _copy_into(src, dest)


def _copy_into(src: sqlite3.Connection, dest: Path) -> None:
    """Online backup of ``src`` into the empty file ``dest`` (made already, private)."""
    out = sqlite3.connect(dest, isolation_level=None)
    try:
        src.backup(out)  # all pages in one step: one consistent read transaction
        out.execute("PRAGMA journal_mode = DELETE")
    finally:
        out.close()


def integrity(path: Path, *, read_only: bool = True) -> list[str]:
    """SQLite's integrity and foreign-key checks of a file: empty when all is well."""
    conn = _connect(path, read_only=read_only)
    try:
        found = [m for (m,) in conn.execute("PRAGMA integrity_check") if m != "ok"]
        found += [f"{t} row {r} refers to a missing {p} row" for t, r, p, _ in conn.execute("PRAGMA foreign_key_check")]
        return found
    except sqlite3.DatabaseError as exc:
        return [f"not a readable SQLite database ({exc})"]
    finally:
        conn.close()


def _audit_head(path: Path) -> tuple[int, str, int]:
    """How many entries, the head's hash and its sequence number (0 and "" when none)."""
    conn = _connect(path, read_only=True)
    try:
        count, head, seq = conn.execute(
            "SELECT count(*), (SELECT hash FROM audit ORDER BY id DESC LIMIT 1), coalesce(max(id), 0) FROM audit"
        ).fetchone()
        return count, head or "", seq
    except sqlite3.DatabaseError:
        return 0, "", 0
    finally:
        conn.close()


def backup_anchor(path) -> Anchor:
    """The chain head of a backup file, to check the live chain against (``verify
    --against``); ValueError naming the file when it has none."""
    from devicelog.store.audit import Anchor

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such backup file")
    conn = _connect(path, read_only=True)
    try:
        row = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{path}: not a devicelog backup ({exc})") from None
    finally:
        conn.close()
    if row is None:
        raise ValueError(f"{path}: its audit trail is empty, so it has no anchor")
    return Anchor(row[0], row[1])


def backup(database: Path, dest: Path) -> Copied:
    """Copy the database (in use or not) to ``dest``, a new file; check the copy's integrity."""
    database, dest = Path(database), Path(dest)
    if not database.exists():
        raise BackupError(f"{database}: no such database file")
    from devicelog.output import check_target, private_path

    check_target(dest)  # a folder, a missing folder, a device or a link: OutputError (one line, exit 2)
    if os.path.lexists(dest):
        raise BackupError(f"{dest}: already exists; choose a new file name (nothing was overwritten)")

    # A fresh private partial file beside dest (unique name, O_EXCL, 0600), fsynced and
    # renamed to dest only once its integrity is checked (devicelog.output).
    with private_path(dest) as tmp:
        src = _connect(database)
        try:
            _copy_into(src, tmp)
        finally:
            src.close()
        problems = integrity(tmp)
        if problems:
            raise BackupError(f"the copy of {database} failed its integrity check", problems)
    entries, head, seq = _audit_head(dest)
    return Copied(dest, entries, head, dest.stat().st_size, seq)


def check_backup(src: Path, scratch: Path):
    """Every reason ``src`` must not be restored (empty list when it may), checked on a scratch copy.

    The scratch copy is brought up to this devicelog's schema (an older backup is
    migrated, as opening it would) and then verified in full.  Returns (problems, report).
    """
    from devicelog.store import audit
    from devicelog.store.db import make_engine
    from devicelog.store.schema import SchemaError, current_revision, check_known, prepare

    problems = integrity(src)
    if problems:
        return [p if p.startswith("not a readable") else f"integrity check: {p}" for p in problems], None
    conn = _connect(src, read_only=True)
    try:
        _copy(conn, scratch)
    finally:
        conn.close()
    engine = make_engine(scratch)
    try:
        with engine.connect() as c:
            revision = current_revision(c)
        if revision is None:
            return ["it holds no devicelog database (no tables)"], None
        try:
            check_known(revision)
            prepare(engine)
        except SchemaError as exc:
            return [f"schema: {exc}"], None
        report = audit.verify(engine)
        return [str(f) for f in report.problems], report
    finally:
        engine.dispose()


def restore(src: Path, database: Path) -> tuple[Path | None, object]:
    """Replace the database with the verified content of ``src``; keep the old one as ``*.before-restore``.

    Returns (where the replaced database was kept, or None if there was none; the
    verification report of what was restored).  Raises ``BackupError`` and replaces
    nothing when the backup fails any check.
    """
    src, database = Path(src), Path(database)
    if not src.exists():
        raise BackupError(f"{src}: no such backup file")
    scratch = database.with_name(database.name + ".restoring")
    for leftover in (scratch, Path(f"{scratch}-wal"), Path(f"{scratch}-shm")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    try:
        problems, report = check_backup(src, scratch)
        if problems:
            raise BackupError(f"{src} was not restored: it failed its checks (nothing was replaced)", problems)
        kept = None
        if database.exists():
            kept = _free_name(database.with_name(database.name + ".before-restore"))
            current = _connect(database)
            try:
                _copy(current, kept)
            finally:
                current.close()
        else:
            _private(database)
        good = _connect(scratch)
        target = _connect(database)
        try:
            good.backup(target)  # replaces every page under the write lock; open readers see it next read
        finally:
            target.close()
            good.close()
        after = integrity(database, read_only=False)
        if after:
            raise BackupError(f"{database} failed its integrity check after the restore; the previous file is {kept}", after)
        return kept, report
    finally:
        for leftover in (scratch, Path(f"{scratch}-wal"), Path(f"{scratch}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _free_name(path: Path) -> Path:
    """``path``, or ``path.2``, ``path.3``… : an earlier kept file is never overwritten."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate
