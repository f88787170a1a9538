"""The ``devicelog`` command.  A bare ``devicelog`` opens the terminal UI.

Each subcommand lives in ``devicelog/commands/<name>.py`` with ``configure(parser)``
and ``run(args, ctx) -> int``; heavy libraries are imported inside ``run``, so
``devicelog --help`` and the TUI start stay fast.  The clock is read once, here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import sys
from dataclasses import dataclass
from functools import cached_property

#: (name, module, one-line help), in the order ``--help`` lists them.
COMMANDS: list[tuple[str, str, str]] = [
    ("tui", "devicelog.commands.tui", "open the clinic terminal UI (the default)"),
    ("verify", "devicelog.commands.verify", "check the database, the audit chain and every recorded row; exit 1 if anything is wrong"),
    ("backup", "devicelog.commands.backup", "copy the database, even while in use, to a new file (owner-only)"),
    ("restore", "devicelog.commands.backup", "check a backup, keep the current database as *.before-restore, then restore"),
    ("due", "devicelog.commands.due", "what is due: overdue first, then by date, as text, csv, json, pdf, ics or html"),
    ("history", "devicelog.commands.history", "a device's (or patient's) whole history as text, json or pdf"),
    ("mri", "devicelog.commands.mri", "before an MRI: a pump's checklist (rule 13) with its figures; record it done, log the post-MRI interrogation"),
    ("review", "devicelog.commands.review", "a pump's flagged refills and their reviews (rule 26); record a review that clears a flag"),
    ("quality", "devicelog.commands.quality", "the program quality report: refills, wounds, explants, device survival, trials, MME (text, json, csv, html, pdf)"),
    ("fhir", "devicelog.commands.fhir", "export patients, devices, procedures and observations as a FHIR R4 Bundle (JSON)"),
    ("demo", "devicelog.commands.demo", "build a realistic demo clinic in a new database (--open to open it)"),
    ("import", "devicelog.commands.transfer", "add a devicelog JSON document to the database, all or nothing"),
    ("export", "devicelog.commands.transfer", "write the whole database as a devicelog JSON document"),
]


class Context:
    """What every command shares: the database, the settings, the user and today."""

    def __init__(self, args: argparse.Namespace):
        self.args = args

    @cached_property
    def engine(self):
        from devicelog.store.db import make_engine
        from devicelog.store.schema import prepare

        engine = make_engine(self.args.db)
        # The due table (store.forecasts) follows the clinic's settings; copying a file does not need it.
        copying = getattr(self.args, "command", None) in ("backup", "restore")
        prepare(engine, settings=None if copying else self.settings)
        return engine

    @cached_property
    def settings(self):
        from devicelog.settings import load_settings

        return load_settings(self.args.settings)

    @cached_property
    def user(self) -> str:
        """``--user`` if given, else the operating-system login (``services.current_user``'s
        rule, here so that the TUI starts without importing the services and the ORM)."""
        if self.args.user:
            return self.args.user
        import getpass
        import os

        try:
            return getpass.getuser()
        except Exception:  # no login name (some containers)
            return os.environ.get("USER") or "unknown"

    @cached_property
    def today(self) -> dt.date:
        return dt.date.today()


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (use YYYY-MM-DD)") from None


class _Commands(argparse._SubParsersAction):
    """The subcommands, each configured (its module imported, its options added) only
    when the command line names it: ``devicelog tui`` does not import and configure the
    other ten (~10 ms of CPU at start).  ``devicelog --help`` lists them from
    ``COMMANDS`` alone."""

    def __call__(self, parser, namespace, values, option_string=None):
        name = values[0] if values else None
        chosen = self._name_parser_map.get(name)
        if chosen is not None:
            configure(chosen, name)
        super().__call__(parser, namespace, values, option_string)


def configure(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """Add command ``name``'s options to its parser (once)."""
    if not getattr(parser, "_devicelog_configured", False):
        parser._devicelog_configured = True
        importlib.import_module(parser.get_default("_module")).configure(parser, name)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devicelog", description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="SQLite file or database URL (default: $DEVICELOG_DB, then the user data directory)")
    parser.add_argument("--settings", help="clinic settings TOML file (default: $DEVICELOG_SETTINGS)")
    parser.add_argument("--user", help="who is writing (default: the operating-system login)")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", action=_Commands)
    for name, module, help_text in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
    return parser


def _version() -> str:
    from devicelog import __version__

    return f"devicelog {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "tui"])
    module = importlib.import_module(args._module)
    try:
        return module.run(args, Context(args)) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = _refusal(exc)
        if code is None:
            raise
        return code


def _refusal(exc: Exception) -> int | None:
    """The exit code for a refusal the user should read (and print it), None for a bug.

    The error classes are looked up in ``sys.modules`` rather than imported: a module
    that raised one is loaded already, and importing them up front would load pydantic
    and SQLAlchemy before the TUI can paint (they are loaded in a thread meanwhile)."""

    def raised(module: str, name: str) -> bool:
        cls = getattr(sys.modules.get(module), name, None)
        return cls is not None and isinstance(exc, cls)

    if raised("devicelog.settings", "SettingsError") or raised("devicelog.store.schema", "SchemaError"):
        print(f"devicelog: {exc}", file=sys.stderr)
        return 2
    if raised("devicelog.problems", "InputError"):
        print("devicelog: refused:", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    return None
