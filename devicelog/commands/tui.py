"""``devicelog tui``: open the clinic terminal UI (also what a bare ``devicelog`` does)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = (
        "Keys: type to search, Enter opens a device, F2 new patient, F3 new device, F4 due list, "
        "ctrl+p command palette, ctrl+q quit."
    )


#: Longest wait for the first screen's data before an empty screen is painted (seconds).
FIRST_SCREEN_WAIT_S = 0.5


def open_tui(ctx) -> int:
    """Run the TUI on the context's database, settings, user and today.

    The database is opened, and the first screen's data read, in a thread
    (``devicelog.tui.preload``) while this one imports Textual and paints."""
    from devicelog.tui.preload import Preload

    today, user = ctx.today, ctx.user  # read once, here, before the thread reads the context
    preload = Preload(ctx)
    from devicelog.store.db import NoDatabase
    from devicelog.tui.app import make_app

    try:
        engine, settings = preload.engine_and_settings()  # raises what opening raised (bad settings, newer file)
    except NoDatabase as exc:
        if not ask_to_create(ctx, exc):
            return 2
        ctx.create = True
        preload = Preload(ctx)
        engine, settings = preload.engine_and_settings()
    # The first frame shows the clinic when its data comes soon: painting an empty screen
    # first costs a second full layout, and both threads would share one core (the GIL)
    # while the reads are done.  A slow database (a remote server) gets the empty
    # "Loading…" screen after FIRST_SCREEN_WAIT_S, then its data when read.
    preload.wait("warnings", "search", timeout=FIRST_SCREEN_WAIT_S)
    app = make_app(engine, settings, today, user, preload)
    app.run()
    return app.return_code or 0


def interactive() -> bool:
    """Whether a person at a terminal can answer a question."""
    import sys

    return sys.stdin.isatty() and sys.stdout.isatty()


def ask_to_create(ctx, missing: Exception) -> bool:
    """No database where the TUI was pointed: ask "create a new clinic at PATH?" on a
    terminal (a yes makes it); without a terminal, or on any other answer, say so and
    make nothing."""
    import sys

    from devicelog.store.db import shown

    where = shown(ctx.args.db)
    if not interactive():
        print(f"devicelog: {missing}", file=sys.stderr)
        return False
    print(f"There is no devicelog database at {where}.")
    try:
        answer = input(f"Create a new clinic at {where}? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    print(f"devicelog: nothing created; no devicelog database at {where}", file=sys.stderr)
    return False


def run(args: argparse.Namespace, ctx) -> int:
    return open_tui(ctx)
