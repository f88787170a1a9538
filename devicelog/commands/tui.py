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
    from devicelog.tui.app import make_app

    engine, settings = preload.engine_and_settings()  # raises what opening raised (bad settings, newer file)
    # The first frame shows the clinic when its data comes soon: painting an empty screen
    # first costs a second full layout, and both threads would share one core (the GIL)
    # while the reads are done.  A slow database (a remote server) gets the empty
    # "Loading…" screen after FIRST_SCREEN_WAIT_S, then its data when read.
    preload.wait("warnings", "search", timeout=FIRST_SCREEN_WAIT_S)
    app = make_app(engine, settings, today, user, preload)
    app.run()
    return app.return_code or 0


def run(args: argparse.Namespace, ctx) -> int:
    return open_tui(ctx)
