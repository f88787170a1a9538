"""``devicelog tui``: open the clinic terminal UI (also what a bare ``devicelog`` does)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.epilog = (
        "Keys: type to search, Enter opens a device, F2 new patient, F3 new device, F4 due list, "
        "ctrl+p command palette, ctrl+q quit."
    )


def open_tui(ctx) -> int:
    """Run the TUI on the context's database, settings, user and today."""
    from devicelog.tui.app import make_app

    app = make_app(ctx.engine, ctx.settings, ctx.today, ctx.user)
    app.run()
    return app.return_code or 0


def run(args: argparse.Namespace, ctx) -> int:
    return open_tui(ctx)
