"""``devicelog import FILE`` and ``devicelog export [-o FILE]``: the whole clinic as one JSON document.

Import is all or nothing: every refusal is listed with its JSON path and the database
stays as it was.  Export → import into an empty database → export gives the same bytes.
The document's JSON Schema is ``schemas/document.schema.json``.
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "import":
        parser.description = (
            "Add a devicelog JSON document (patients, devices, events, catalogue additions) to the database, "
            "all or nothing: on any refusal every error is listed with its JSON path and nothing is written."
        )
        parser.add_argument("file", metavar="FILE", help="the JSON document to import ('-' reads standard input)")
    else:
        parser.description = (
            "Write the whole database as one devicelog JSON document (the format `devicelog import` reads)."
        )
        parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")


def run(args: argparse.Namespace, ctx) -> int:
    return _import(args, ctx) if args.command == "import" else _export(args, ctx)


def _import(args, ctx) -> int:
    """Streams the file (``transfer.import_stream``): memory holds one item at a time, not the document."""
    import contextlib
    import os

    from devicelog import transfer
    from devicelog.progress import progress
    from devicelog.store.db import write_session

    source = "standard input" if args.file == "-" else args.file
    with contextlib.ExitStack() as stack:
        try:
            if args.file == "-":
                stream, size = sys.stdin, None
            else:
                stream = stack.enter_context(open(args.file, encoding="utf-8"))
                size = os.fstat(stream.fileno()).st_size
        except OSError as exc:
            print(f"devicelog: cannot read {source}: {exc}", file=sys.stderr)
            return 1

        def phase(label: str, total: float):
            return stack.enter_context(progress(total, label))

        try:
            with write_session(ctx.engine) as session:
                summary = transfer.import_stream(
                    session, stream, author=ctx.user, today=ctx.today, source=source, phases=phase, size=size,
                    settings=ctx.settings,
                )
        except (OSError, UnicodeDecodeError) as exc:  # nothing was written (rolled back)
            print(f"devicelog: cannot read {source}: {exc}", file=sys.stderr)
            return 1
    from devicelog.clinic.words import plural

    print(
        f"Imported {source}: {plural(summary.patients, 'patient')}, {plural(summary.devices, 'device')}, "
        f"{plural(summary.events, 'event')}"
        + (f", {plural(summary.catalogue_entries, 'catalogue entry', 'catalogue entries')}" if summary.catalogue_entries else "")
        + "."
    )
    return 0


def _export(args, ctx) -> int:
    import os

    from devicelog import transfer
    from devicelog.clinic.words import plural
    from devicelog.progress import progress
    from devicelog.store.audit import log_read
    from devicelog.store.db import read_session

    if args.output and args.output != "-":
        from devicelog.output import check_target

        check_target(args.output)  # a bad -o is refused (one line, exit 2) before the database is read
    log_read(  # before the document is written: an export is a read of every patient
        ctx.engine, author=ctx.user, what="export of the whole clinic" + (f" to {args.output}" if args.output and args.output != "-" else ""),
        scope="every patient (export)",
    )
    with read_session(ctx.engine) as session:
        if not args.output or args.output == "-":
            try:
                transfer.write_document(session, sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:  # the reader stopped early (`| head`): the document is incomplete
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 141
            return 0
        from devicelog.output import private_file

        # A private partial file that becomes the output only when whole (devicelog.output).
        with private_file(args.output) as fh:
            with progress(_count(session), f"Exporting to {args.output}") as tick:
                counts = transfer.write_document(session, fh, tick=tick)
    print(f"Exported {plural(counts['patients'], 'patient')}, {plural(counts['devices'], 'device')} and "
          f"{plural(counts['events'], 'event')} to {args.output}.")
    return 0


def _count(session) -> int:
    from sqlalchemy import func, select

    from devicelog.store import tables

    return sum(
        session.execute(select(func.count()).select_from(t.__table__)).scalar() or 0
        for t in (tables.Patient, tables.Device, tables.EventRow)
    )
