"""``devicelog init [PATH]``: create a new, empty clinic database.

Only ``init``, ``demo`` and the terminal UI (after a yes to "create a new clinic at
PATH?") create a database; every other command refuses a missing one with "no
devicelog database at PATH" and exit 2, so a mistyped ``--db`` never answers
"nothing due" about an empty file.

Examples::

    devicelog init ~/clinic/devicelog.db
    devicelog init postgresql://devicelog@db.clinic.local/devicelog   # an empty database made with createdb
    devicelog --db clinic.db init
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "path", nargs="?", metavar="PATH", help="the new SQLite file or an empty database's URL (default: --db, then the configured database)"
    )


def run(args: argparse.Namespace, ctx) -> int:
    from devicelog.store.db import NoDatabase, shown
    from devicelog.store.schema import open_database

    if args.path is not None:
        if not args.path.strip():
            print("devicelog init: PATH is empty: give a file or a database URL", file=sys.stderr)
            return 2
        if args.db and args.db != args.path:
            print(f"devicelog init: two databases named: PATH {args.path!r} and --db {args.db!r}; give one", file=sys.stderr)
            return 2
        args.db = args.path
    where = shown(args.db)
    try:  # already a devicelog database? then nothing is made (it is brought up to date, as any command would)
        open_database(args.db, settings=ctx.settings).dispose()
    except NoDatabase:
        pass
    else:
        print(f"{where} already holds a devicelog database; nothing created.", file=sys.stderr)
        return 0
    ctx.create = True
    ctx.engine.dispose()
    print(f"Created a new clinic database at {where}.", file=sys.stderr)
    return 0
