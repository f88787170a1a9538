"""``devicelog fhir``: export patients, devices, procedures and observations as a FHIR
R4 Bundle (JSON), each resource validated by fhir.resources' R4B models before it is
written.

The Bundle is written as it is built, a batch of patients at a time, into a temporary
file that becomes the output only when every resource passed
(``devicelog.reports.fhir.export_file``): memory stays flat however large the clinic,
and a refused record still leaves nothing written.

Examples::

    devicelog fhir -o clinic.fhir.json
    devicelog fhir --patient MRN001 -o mrn001.fhir.json
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--patient", metavar="MRN", help="only this patient (default: every patient)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")


def run(args: argparse.Namespace, ctx) -> int:
    import datetime as dt

    from devicelog.reports.fhir import RefusedResource, export_file
    from devicelog.store.audit import log_read
    from devicelog.store.db import read_session

    if args.output:
        from devicelog.output import check_target

        check_target(args.output)  # a bad -o is refused (one line, exit 2) before the database is read
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    try:
        with read_session(ctx.engine) as session:
            counts = export_file(session, args.output, now, mrn=args.patient)
        log_read(  # once the Bundle is built, so an unknown MRN or a refused record logs nothing
            ctx.engine, author=ctx.user, what="FHIR export" + (f" of patient {args.patient}" if args.patient else " of every patient"),
            patients=[args.patient] if args.patient else [], scope="" if args.patient else "every patient (FHIR export)",
        )
    except LookupError as exc:
        print(f"devicelog fhir: patient = {args.patient!r}: {exc}", file=sys.stderr)
        return 1
    except RefusedResource as exc:  # a record the FHIR models refuse: say which, write nothing
        print(f"devicelog fhir: nothing written: {exc}", file=sys.stderr)
        return 1
    if args.output:
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        print(f"devicelog fhir: Bundle with {summary or 'no resources'} written to {args.output}", file=sys.stderr)
    return 0
