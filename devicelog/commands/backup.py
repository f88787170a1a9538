"""``devicelog backup DEST`` and ``devicelog restore SRC`` (one module, two commands).

``backup`` copies the database while it is in use (SQLite's online backup API) into a
new file readable by its owner only.  ``restore`` checks the backup first (file
integrity, schema revision known, audit chain and rows verified), keeps the current
database as ``<name>.before-restore``, then copies the backup in.

Examples::

    devicelog backup /mnt/backups/clinic-2026-11-23.db
    devicelog restore /mnt/backups/clinic-2026-11-23.db
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "restore":
        parser.add_argument("src", metavar="SRC", help="the backup file to restore")
    else:
        parser.add_argument("dest", metavar="DEST", help="the new backup file (must not exist yet)")


def _database_path(args):
    """The SQLite file to copy from (backup) or into (restore), once it is known to be a
    devicelog database: a missing or foreign one is refused (``store.db.DatabaseError``,
    one line, exit 2) and nothing is made."""
    from devicelog.store.db import resolve_url, sqlite_path
    from devicelog.store.schema import open_database

    path = sqlite_path(resolve_url(args.db))
    if path is None:
        from devicelog.store.db import shown

        print(
            f"devicelog: {shown(args.db)}: backup and restore work on SQLite files; back up a PostgreSQL database with pg_dump",
            file=sys.stderr,
        )
        return None
    open_database(args.db, migrate=False).dispose()
    return path


def run(args, ctx) -> int:
    from devicelog.store.backup import BackupError, backup, restore

    path = _database_path(args)
    if path is None:
        return 2
    try:
        if args.command == "restore":
            kept, report = restore(args.src, path)
            print(f"restored {args.src} into {path}: {report.summary()}")
            if kept is not None:
                print(f"the database it replaced is kept as {kept}")
        else:
            copied = backup(path, args.dest)
            print(
                f"backed up {path} to {copied.path} ({copied.size_bytes} bytes, "
                f"{copied.entries} audit entries); integrity ok; anchor {copied.head_seq}:{copied.head or '-'} "
                "(keep it apart from the backup: verify --anchor checks the chain still holds it)"
            )
    except BackupError as exc:
        print(f"devicelog: {exc}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0
