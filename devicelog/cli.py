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
from functools import cached_property

#: (name, module, one-line help), in the order ``--help`` lists them.
COMMANDS: list[tuple[str, str, str]] = [
    ("tui", "devicelog.commands.tui", "open the clinic terminal UI (the default)"),
    ("init", "devicelog.commands.init", "create a new, empty clinic database (the only command, with demo, that creates one)"),
    ("verify", "devicelog.commands.verify", "check the database, the audit chain and every recorded row; exit 1 if anything is wrong"),
    ("backup", "devicelog.commands.backup", "copy the database, even while in use, to a new file (owner-only)"),
    ("restore", "devicelog.commands.backup", "check a backup, keep the current database as *.before-restore, then restore"),
    ("due", "devicelog.commands.due", "what is due: overdue first, then by date, as text, csv, json, pdf, ics or html"),
    ("history", "devicelog.commands.history", "a device's (or patient's) whole history as text, json or pdf"),
    ("mri", "devicelog.commands.mri", "before an MRI: a pump's checklist (rule 13) with its figures; record it done, log the post-MRI interrogation"),
    ("review", "devicelog.commands.review", "a pump's flagged refills and their reviews (rule 26); record a review that clears a flag"),
    ("quality", "devicelog.commands.quality", "the program quality report: refills, wounds, explants, device survival, trials, MME (text, json, csv, html, pdf)"),
    ("advisory", "devicelog.commands.advisory", "safety notices: import an advisory or openFDA recall, list and show affected devices, acknowledge"),
    ("fhir", "devicelog.commands.fhir", "export patients, devices, procedures and observations as a FHIR R4 Bundle (JSON)"),
    ("demo", "devicelog.commands.demo", "build a realistic demo clinic in a new database (--open to open it)"),
    ("import", "devicelog.commands.transfer", "add a devicelog JSON document to the database, all or nothing"),
    ("export", "devicelog.commands.transfer", "write the whole database as a devicelog JSON document"),
    ("audit", "devicelog.commands.audit", "who read and who changed what: the audit trail, by patient, login or dates"),
    ("admin", "devicelog.commands.admin", "on a PostgreSQL server: set up the roles; grant, revoke and list who holds them"),
]

#: Longest ``--user`` (the audit trail's author field holds 80 characters).
MAX_USER_CHARS = 80
DB_HELP = "SQLite file or database URL (default: $DEVICELOG_DB, then the user data directory)"
DEMO_DB_HELP = "the demo's database (default: ./demo.db; never $DEVICELOG_DB or the clinic's own)"


class Context:
    """What every command shares: the database, the settings, the user and today."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        #: Whether opening may make a new database: ``init``, ``demo``, the TUI after a yes.
        #: Every other command refuses a missing one (``store.db.NoDatabase``) and makes nothing.
        self.create = False

    @cached_property
    def engine(self):
        from devicelog.store.schema import open_database

        # The due table (store.forecasts) follows the clinic's settings; copying a file does not need it.
        # The settings are read first: a bad settings file is refused before the database is opened.
        copying = getattr(self.args, "command", None) in ("backup", "restore")
        settings = None if copying else self.settings
        return open_database(self.args.db, settings=settings, create=self.create)

    @cached_property
    def settings(self):
        from devicelog.settings import load_settings

        return load_settings(self.args.settings)

    @cached_property
    def user(self) -> str:
        """The author of what this command writes and reads (``devicelog.identity``): on a
        server the session's login; on a SQLite file the OS login, ``--user`` beside it."""
        from devicelog import identity

        if identity.is_server(self.args.db):
            identity.refuse_display_name_on_server(self.args.db, self.args.user)
            return identity.server_login(self.engine)
        return identity.local_author(self.args.user)

    @cached_property
    def today(self) -> dt.date:
        return dt.date.today()


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (use YYYY-MM-DD)") from None


def global_options(*, default, db_help: str = DB_HELP) -> argparse.ArgumentParser:
    """A parent parser (argparse's ``parents=``) holding ``--db``, ``--settings`` and ``--user``.

    The main parser gets them with ``default=None``; each command's parser gets them
    with ``default=argparse.SUPPRESS``, so an option given after the command sets the
    value and one left out there does not undo one given before it."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", metavar="PATH|URL", default=default, help=db_help)
    common.add_argument("--settings", metavar="FILE", default=default, help="clinic settings TOML file (default: $DEVICELOG_SETTINGS)")
    common.add_argument(
        "--user", metavar="NAME", default=default,
        help=f"a display name, up to {MAX_USER_CHARS} characters, recorded beside the operating-system login "
        "(SQLite only; on a server the login is the author)",
    )
    return common


def command_named(argv: list[str]) -> str | None:
    """The command ``argv`` names (its first positional word once the global options are
    taken out), None for none: that command alone is configured (its module imported and
    its options added), so ``devicelog tui`` does not import and configure the other
    eleven.  ``devicelog --help`` lists them from ``COMMANDS`` alone."""
    pre = argparse.ArgumentParser(add_help=False, parents=[global_options(default=None)], exit_on_error=False)
    pre.add_argument("command", nargs="?")
    try:
        known, _ = pre.parse_known_args(argv)
    except argparse.ArgumentError:  # e.g. `--db` with no value: the real parser says so
        return None
    return known.command


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``devicelog`` parser, with ``command``'s options added (the others' only when named)."""
    parser = argparse.ArgumentParser(
        prog="devicelog", description=__doc__.splitlines()[0], parents=[global_options(default=None)]
    )
    parser.add_argument("--version", action="version", version=_version())
    common = global_options(default=argparse.SUPPRESS)
    demo_common = global_options(default=argparse.SUPPRESS, db_help=DEMO_DB_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        p = sub.add_parser(
            name, help=help_text, description=help_text, parents=[demo_common if name == "demo" else common]
        )
        p.set_defaults(_module=module)
        if name == command:
            importlib.import_module(module).configure(p, name)
    return parser


def _version() -> str:
    from devicelog import __version__

    return f"devicelog {__version__}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = command_named(argv)
    if command is None:
        argv, command = [*argv, "tui"], "tui"  # a bare `devicelog` opens the TUI
    args = build_parser(command).parse_args(argv)
    refused = check_global_options(args)
    if refused:
        print(f"devicelog: {refused}", file=sys.stderr)
        return 2
    module = importlib.import_module(args._module)
    try:
        from devicelog.identity import refuse_display_name_on_server

        refuse_display_name_on_server(args.db, args.user)
        return module.run(args, Context(args)) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = _refusal(exc, args)
        if code is None:
            raise
        return code


def check_global_options(args: argparse.Namespace) -> str | None:
    """What is wrong with ``--db``, ``--settings`` or ``--user`` (one line), None if nothing."""
    for name in ("db", "settings"):
        value = getattr(args, name)
        if value is not None and not value.strip():
            return f"--{name} is empty: give a {'database file or URL' if name == 'db' else 'settings file'}, or leave --{name} out for the default"
    user = args.user
    if user is not None:
        if not user.strip():
            return "--user is empty: give a name, or leave --user out for the operating-system login"
        if len(user) > MAX_USER_CHARS:
            return f"--user = {user[:20]!r}… ({len(user)} characters): at most {MAX_USER_CHARS} characters"
        if any(not ch.isprintable() for ch in user):
            return f"--user = {user[:40]!r}: control characters are not allowed in a name"
    return None


def _refusal(exc: Exception, args: argparse.Namespace | None = None) -> int | None:
    """The exit code for a refusal the user should read (and print it), None for a bug.

    The error classes are looked up in ``sys.modules`` rather than imported: a module
    that raised one is loaded already, and importing them up front would load pydantic
    and SQLAlchemy before the TUI can paint (they are loaded in a thread meanwhile)."""

    def raised(module: str, name: str) -> bool:
        cls = getattr(sys.modules.get(module), name, None)
        return cls is not None and isinstance(exc, cls)

    if (
        raised("devicelog.settings", "SettingsError")
        or raised("devicelog.store.schema", "SchemaError")
        or raised("devicelog.store.db", "DatabaseError")
        or raised("devicelog.output", "OutputError")
    ):
        print(f"devicelog: {exc}", file=sys.stderr)
        return 2
    if raised("devicelog.identity", "IdentityError") or raised("devicelog.store.access", "AccessRefused"):
        print(f"devicelog: {exc}", file=sys.stderr)
        return 2
    if raised("sqlalchemy.exc", "DBAPIError"):  # a server refusal (a role lacking a right)
        from devicelog.store.access import refusal

        refused = refusal(exc)
        if refused is not None:
            print(f"devicelog: {refused}", file=sys.stderr)
            return 2
    if raised("sqlalchemy.exc", "OperationalError") or raised("sqlite3", "OperationalError"):
        # The database went away or refused a write after it was opened (a read-only file,
        # a server that stopped): one line, never a traceback.
        from devicelog.store.db import explain

        print(f"devicelog: {explain(getattr(args, 'db', None), exc)}", file=sys.stderr)
        return 2
    if raised("devicelog.problems", "InputError"):
        print("devicelog: refused:", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    return None
