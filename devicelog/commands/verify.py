"""``devicelog verify``: check the database file, the audit chain and every recorded row.

Names every row changed, inserted or deleted outside devicelog (table, id, what
changed), every broken audit entry and every dropped append-only trigger; exits 1
when anything is wrong, 0 with a one-line summary when all is well.

Examples::

    devicelog verify
    devicelog --db /backups/clinic-2026-11-23.db verify
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = "exit status: 0 all is well, 1 something is wrong (each problem is listed)"


def run(args, ctx) -> int:
    from devicelog.store import audit
    from devicelog.store.schema import HEAD, current_revision, open_database

    engine = open_database(args.db, migrate=False)  # refuses a missing or foreign database (one line, exit 2)
    try:
        with engine.connect() as conn:
            at_head = current_revision(conn) == HEAD
        if not at_head:  # an older database is brought up to date first, as any command would
            engine.dispose()
            engine = ctx.engine
        report = audit.verify(engine)
    finally:
        engine.dispose()
    for problem in report.problems:
        print(f"  {problem}")
    print(report.summary())
    return 0 if report.ok else 1
