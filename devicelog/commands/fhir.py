"""``devicelog fhir``: export patients, devices, procedures and observations as a FHIR
R4 Bundle (JSON), validated by fhir.resources' R4B models before it is written.

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

    from pydantic import ValidationError

    from devicelog.reports.fhir import bundle_json, load_bundle
    from devicelog.store.db import read_session

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    try:
        with read_session(ctx.engine) as session:
            bundle = load_bundle(session, now, mrn=args.patient)
    except LookupError as exc:
        print(f"devicelog fhir: patient = {args.patient!r}: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:  # a record the FHIR models refuse: say which, write nothing
        print(f"devicelog fhir: the FHIR R4B models refused the bundle; nothing written:\n{exc}", file=sys.stderr)
        return 1
    text = bundle_json(bundle)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        counts: dict[str, int] = {}
        for entry in bundle.entry or []:
            kind = type(entry.resource).__name__
            counts[kind] = counts.get(kind, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        print(f"devicelog fhir: Bundle with {summary or 'no resources'} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
