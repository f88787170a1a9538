"""``devicelog audit``: who saw and who changed what (issue 15, HIPAA 164.312(b)).

Reads and writes are entries of the one chained trail (``devicelog.store.audit``): a
read's action starts with ``read:`` and says which patients or devices, or what scope.

Examples::

    devicelog audit --patient MRN001                 # everything about one patient
    devicelog audit --login jdoe --from 2026-11-01 --to 2026-11-30
    devicelog audit --format json -o trail.json
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    from devicelog.cli import parse_date

    parser.add_argument("--patient", metavar="MRN", help="only what concerns this patient (reads of every patient included)")
    parser.add_argument("--login", dest="login", metavar="LOGIN", help="only this login's reads and changes (a person's own login; --user is the global display name)")
    parser.add_argument("--from", dest="start", type=parse_date, metavar="DATE", help="from this date (UTC), included")
    parser.add_argument("--to", dest="end", type=parse_date, metavar="DATE", help="to this date (UTC), included")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")


def run(args: argparse.Namespace, ctx) -> int:
    import json

    from devicelog.store import audit
    from devicelog.store.db import read_session

    if args.start and args.end and args.end < args.start:
        print(f"devicelog audit: --to {args.end} is before --from {args.start}", file=sys.stderr)
        return 2
    try:
        with read_session(ctx.engine) as session:
            found = list(audit.trail(session.connection(), patient_mrn=args.patient, login=args.login, start=args.start, end=args.end))
    except LookupError as exc:
        print(f"devicelog audit: patient = {args.patient!r}: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        text = json.dumps({"entries": [e.as_json() for e in found]}, indent=2, ensure_ascii=False) + "\n"
    else:
        lines = []
        for e in found:
            at = e.as_json()["at"][:19].replace("T", " ")
            if e.kind == "read":
                what = ", ".join(filter(None, [e.scope, " ".join(f"patient {m}" for m in e.patients), " ".join(f"device {s}" for s in e.devices)]))
            else:
                what = ", ".join(e.changes[:5]) + (f" and {len(e.changes) - 5} more" if len(e.changes) > 5 else "")
            lines.append(f"{e.seq:>7}  {at} UTC  {e.author:<20}  {e.action}  [{what}]")
        text = "\n".join(lines) + "\n" if lines else "no audit entries match\n"
    if args.output:
        from devicelog.output import private_file

        with private_file(args.output) as fh:  # owner-only, whole or not at all (devicelog.output)
            fh.write(text)
        print(f"devicelog audit: {len(found)} entries written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
