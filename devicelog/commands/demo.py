"""``devicelog demo``: build a realistic demo clinic in a new database, and open it.

    devicelog demo --db demo.db --open          # build it the first time, reopen it after
    devicelog demo --db big.db --patients 100000 --seed 7

A demo never writes into a database that already holds data: a file with a real
clinic in it is refused; a file that already holds a demo clinic is left as it is
(``--open`` opens it).  Without ``--db`` the demo goes to ``demo.db`` in the current
folder, never to the clinic's own database.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_DB = "demo.db"


def _patients(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{n} patients: choose from 1 to 1,000,000")
    return n


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    from devicelog.cli import parse_date

    # --db (the demo's database, default ./demo.db) is one of the global options (cli.DEMO_DB_HELP).
    parser.add_argument("--patients", type=_patients, default=60, metavar="N", help="number of patients (default: 60)")
    parser.add_argument("--seed", type=int, default=1, metavar="S", help="the same seed gives the same clinic (default: 1)")
    parser.add_argument("--as-of", type=parse_date, metavar="DATE", help="the clinic's 'today' (default: today)")
    parser.add_argument("--open", action="store_true", help="open the terminal UI on the demo clinic")


def run(args: argparse.Namespace, ctx) -> int:
    from devicelog import demo, transfer
    from devicelog.progress import progress
    from devicelog.store.db import read_session

    args.db = args.db or DEFAULT_DB  # never $DEVICELOG_DB: a demo never goes into the clinic's database
    ctx.create = True  # demo is one of the three ways to make a database (with init and the TUI)
    if args.as_of is not None:
        ctx.today = args.as_of  # the TUI opens on the demo's own today
    where = args.db
    with read_session(ctx.engine) as session:
        existing_demo = demo.is_demo(session)
        holds_data = existing_demo or transfer.holds_clinical_data(session)
    if existing_demo:
        print(f"{where} already holds a demo clinic; nothing written.", file=sys.stderr)
    elif holds_data:
        print(
            f"devicelog: refused: {where} already holds patients, devices or events and is not a demo clinic; "
            "a demo only goes into a new database (choose another --db)",
            file=sys.stderr,
        )
        return 1
    else:
        with progress(args.patients, f"Building a demo clinic of {args.patients:,} patients") as tick:
            summary = demo.build(ctx.engine, patients=args.patients, seed=args.seed, as_of=ctx.today, tick=tick)
        print(
            f"Built a demo clinic in {where}: {summary.patients:,} patients, {summary.devices:,} devices, "
            f"{summary.events:,} events (as of {ctx.today}; seed {args.seed}; {summary.checked}).",
            file=sys.stderr,
        )
    if args.open:
        from devicelog.commands.tui import open_tui

        return open_tui(ctx)
    return 0
