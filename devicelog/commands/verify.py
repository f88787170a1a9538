"""``devicelog verify``: check the database file, the audit chain and every recorded row.

Names every row changed, inserted or deleted outside devicelog (table, id, what
changed), every broken audit entry and every dropped or altered append-only trigger;
exits 1 when anything is wrong, 0 with a one-line summary when all is well.  The
summary ends in the chain's anchor (``anchor SEQ:HASH``): written down elsewhere (a
notebook, another machine), a later ``verify --anchor SEQ:HASH`` proves the chain
still holds that entry unchanged, so deleting the newest entries or rewriting the
chain with recomputed hashes is caught.  ``--against BACKUP`` takes the anchor from a
backup file.

Examples::

    devicelog verify
    devicelog verify --anchor 1204:3f2a…(64 hex digits)
    devicelog verify --against /backups/clinic-2026-11-23.db
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = "exit status: 0 all is well, 1 something is wrong (each problem is listed), 2 a bad anchor or backup"
    parser.add_argument(
        "--anchor", action="append", default=[], metavar="SEQ:HASH",
        help="a chain head printed earlier by verify or backup: the chain must still hold it (repeatable)",
    )
    parser.add_argument("--against", metavar="BACKUP", help="a backup file (devicelog backup): the chain must still hold its head")


def _anchors(args) -> list:
    """The anchors named, or a one-line reason they cannot be read (exit 2)."""
    from devicelog.store import audit
    from devicelog.store.backup import backup_anchor

    anchors = [audit.Anchor.parse(text) for text in args.anchor]
    if args.against:
        anchors.append(backup_anchor(args.against))
    return anchors


def run(args, ctx) -> int:
    from devicelog.store import audit
    from devicelog.store.schema import HEAD, current_revision, open_database

    try:
        anchors = _anchors(args)
    except ValueError as exc:
        print(f"devicelog verify: {exc}", file=sys.stderr)
        return 2
    engine = open_database(args.db, migrate=False)  # refuses a missing or foreign database (one line, exit 2)
    try:
        with engine.connect() as conn:
            at_head = current_revision(conn) == HEAD
        if not at_head:  # an older database is brought up to date first, as any command would
            engine.dispose()
            engine = ctx.engine
        report = audit.verify(engine, anchors, show_progress=True)
    finally:
        engine.dispose()
    from devicelog.reports.safe import visible

    for problem in report.problems:
        print(f"  {visible(str(problem), one_line=True)}")
    print(report.summary())
    return 0 if report.ok else 1
