"""``devicelog due``: what is due, overdue first, then by date, in any format.

Examples::

    devicelog due --within 30
    devicelog due --within 14 --kind pump --kind scs --format csv -o due.csv
    devicelog due --within 28 --format pdf -o due.pdf --redact
    devicelog due --format ics -o due.ics
    devicelog due --show-acknowledged                 # acknowledged and snoozed items too, marked
    devicelog due ack 12:impedance:345 --reason "E2 programmed off, impedance accepted"
    devicelog due snooze 7:mri_checklist: --until 2026-12-20 --reason "patient away until the 20th"
    devicelog due withdraw 12:impedance:345 --reason "acknowledged the wrong item"

ITEM is the item's key as ``devicelog due --format json`` shows it in ``item_key``.
An acknowledged or snoozed item leaves the active list until its inputs change (a new
reading, a new program) or, for a snooze, until its date (``clinic.acks``).
"""

from __future__ import annotations

import argparse
import sys

FORMATS = ("text", "csv", "json", "pdf", "ics", "html")


def _within(text: str) -> int:
    from devicelog.store.forecasts import MAX_WITHIN_DAYS

    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 0 <= days <= MAX_WITHIN_DAYS:
        raise argparse.ArgumentTypeError(f"{days} is not a number of days from 0 to {MAX_WITHIN_DAYS}")
    return days


def _kind(text: str):
    from devicelog.store.due import parse_kind

    try:
        return parse_kind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    from devicelog.cli import parse_date

    parser.description = (
        "What is due: everything overdue, then what falls due from the as-of date on, "
        "by date, with why.  Elective items suppressed by goals of care are counted at the foot."
    )
    parser.add_argument("--as-of", type=parse_date, metavar="DATE", help="the day the list is for (default: today)")
    parser.add_argument(
        "--within", type=_within, metavar="DAYS", help="only items due up to DAYS days after the as-of date (default: all)"
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument(
        "--kind",
        type=_kind,
        action="append",
        metavar="KIND",
        help="only this device kind (pump, scs, drg, pns, or the full name); repeat for several",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument(
        "--redact", action="store_true", help="initials and the last 4 MRN characters; no names, full MRNs or drug names"
    )
    parser.add_argument("--group", choices=("week", "day"), default="week", help="pdf/html: group by week or day")
    parser.add_argument("--page-size", choices=("A4", "Letter"), help="pdf/html page size (default: the settings')")
    parser.add_argument(
        "--show-acknowledged", action="store_true",
        help="also list the acknowledged and snoozed items, marked as such (they are counted at the foot either way)",
    )
    _configure_actions(parser)


#: The options as a person typed them, for the refusals (``services`` names fields).
OPTION_OF = {"item": "ITEM", "reason": "--reason", "until": "--until"}


def _configure_actions(parser: argparse.ArgumentParser) -> None:
    """``due ack|snooze|withdraw ITEM``: optional subcommands, so every listing
    invocation (options only) works as before."""
    from devicelog.cli import global_options, parse_date

    actions = parser.add_subparsers(dest="due_action", metavar="ACTION", required=False)
    common = global_options(default=argparse.SUPPRESS)
    helps = {
        "ack": "acknowledge a due item with a reason: it leaves the active list until its inputs change",
        "snooze": "put a due item off until a date, with a reason (never past its latest safe date; never a critical item)",
        "withdraw": "withdraw the acknowledgement or snooze in force for an item (both stay on record)",
    }
    for name, text in helps.items():
        p = actions.add_parser(name, help=text, description=text, parents=[common])
        p.add_argument("item", metavar="ITEM", help="the item's key, as item_key in devicelog due --format json")
        p.add_argument("--reason", required=True, help="why (it stays on the device's record)")
        p.add_argument("--as-of", type=parse_date, metavar="DATE", default=argparse.SUPPRESS,
                       help="the day it is recorded for (default: today)")
        if name == "snooze":
            p.add_argument("--until", type=parse_date, metavar="DATE", required=True,
                           help="the day the item comes back on the list")


def run(args: argparse.Namespace, ctx) -> int:
    if getattr(args, "due_action", None):
        return _act(args, ctx)
    try:
        return _run(args, ctx)
    except BrokenPipeError:  # the reader (head, less) went away: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace, ctx) -> int:
    from devicelog.output import check_target, private_file
    from devicelog.reports import due as report

    as_of = args.as_of or ctx.today
    settings = ctx.settings
    fmt = args.format
    if fmt == "pdf" and not args.output and sys.stdout.isatty():
        print("devicelog due: --format pdf writes a file: give -o FILE (or pipe the output)", file=sys.stderr)
        return 2
    if args.output:
        check_target(args.output)  # a bad -o is refused (one line, exit 2) before the list is read
    if not args.redact:  # names and MRNs of everyone on the list: a logged read
        from devicelog.store.chain import log_read  # (store.audit would load the ORM)

        log_read(ctx.engine, author=ctx.user, what=f"due list as of {as_of} ({args.format})",
                 scope=f"every patient on the due list as of {as_of}" + (f", written to {args.output}" if args.output else ""))

    from devicelog.store.due import due_list

    # A plain connection: the list is read from the due table without the ORM (issue 8.2).
    with ctx.engine.connect() as conn:
        dl = due_list(conn, as_of=as_of, settings=settings, within_days=args.within, kinds=args.kind or (),
                      show_acknowledged=args.show_acknowledged)
    if args.redact:
        from devicelog.reports.redact import redact_due_list
        from devicelog.store import queries
        from devicelog.store.db import read_session

        with read_session(ctx.engine) as session:
            dl = redact_due_list(dl, queries.catalogue(session).drugs)

    page_size = args.page_size or settings.page_size
    if fmt == "text":
        if args.output:
            with private_file(args.output) as fh:
                report.render_text(dl, fh, width=80, color=False)
        else:
            report.render_text(dl, sys.stdout)
    elif fmt == "json":
        _write_text(args.output, lambda fh: report.render_json(dl, fh))
    elif fmt == "csv":
        # csv, html and ics are written a chunk of rows at a time (never the whole file in memory).
        if args.output:
            with private_file(args.output, binary=True) as fh:
                report.write_csv(dl, fh)
        else:
            report.render_csv(dl, sys.stdout)
    elif fmt == "html":
        from devicelog.reports.due_html import write_html

        _write_text(args.output, lambda fh: write_html(dl, fh, page_size=page_size, group=args.group))
    elif fmt == "pdf":
        from devicelog.reports.due_pdf import PageLimitExceeded, render_pdf

        # Laid out before anything is written: a list over the page limit leaves no file.
        try:
            data = render_pdf(dl, page_size=page_size, group=args.group, max_pages=settings.due_pdf_max_pages)
        except PageLimitExceeded as exc:
            print(f"devicelog due: {exc}", file=sys.stderr)
            return 2
        if args.output:
            with private_file(args.output, binary=True) as fh:
                fh.write(data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
    elif fmt == "ics":
        import datetime as dt

        from devicelog.reports.due_ics import write_ics

        now = dt.datetime.now(dt.timezone.utc)
        if args.output:
            with private_file(args.output, binary=True) as fh:
                write_ics(dl, fh, reminder_days=settings.calendar_reminder_days, generated_at=now)
        else:
            write_ics(dl, sys.stdout.buffer, reminder_days=settings.calendar_reminder_days, generated_at=now)
            sys.stdout.flush()

    _say_written(args.output, len(dl.entries))
    if dl.suppressed and fmt in ("csv", "ics"):
        # These formats have no foot: say it here so it is never silent.
        print(f"devicelog due: {dl.suppressed_text()}", file=sys.stderr)
    if dl.hidden and fmt in ("csv", "ics"):
        print(f"devicelog due: {dl.hidden_text()}", file=sys.stderr)
    return 0


def _act(args: argparse.Namespace, ctx) -> int:
    """Record an acknowledgement, a snooze or a withdrawal: one transaction, audited."""
    from devicelog import services
    from devicelog.problems import InputError, Problem
    from devicelog.store.db import write_session

    today = getattr(args, "as_of", None) or ctx.today
    try:
        with write_session(ctx.engine) as session:
            if args.due_action == "ack":
                services.acknowledge_item(session=session, item_key=args.item, reason=args.reason, author=ctx.user,
                                          settings=ctx.settings)
                said = "acknowledged: it leaves the active list until its inputs change"
            elif args.due_action == "snooze":
                services.snooze_item(session=session, item_key=args.item, until=args.until, reason=args.reason,
                                     author=ctx.user, today=today, settings=ctx.settings)
                said = f"snoozed until {args.until}: it comes back on that day, or sooner if its inputs change"
            else:
                services.withdraw_ack(session=session, item_key=args.item, reason=args.reason, author=ctx.user)
                said = "acknowledgement withdrawn: the item is active again"
    except InputError as exc:
        if type(exc) is not InputError:  # a server refusal (AccessRefused): exit 2, as it is
            raise
        raise InputError([Problem(OPTION_OF.get(p.field, p.field), p.value, p.message) for p in exc.problems]) from None
    print(f"devicelog due: {args.item}: {said}", file=sys.stderr)
    return 0


def _say_written(path: str | None, n: int) -> None:
    if path:
        print(f"devicelog due: {n} item{'s' if n != 1 else ''} written to {path}", file=sys.stderr)


def _write_text(path: str | None, write) -> None:
    if path:
        from devicelog.output import private_file

        with private_file(path) as fh:
            write(fh)
    else:
        write(sys.stdout)
