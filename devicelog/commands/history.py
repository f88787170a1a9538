"""``devicelog history SERIAL``: a device's whole history for the chart (issue 5.5).

Examples::

    devicelog history NGP100
    devicelog history NGP100 --patient               # every device of the patient, old ones too
    devicelog history NGP100 --kind refill --kind programming
    devicelog history NGP100 --format pdf -o ngp100.pdf --page-size Letter
    devicelog history NGP100 --format json -o ngp100.json
"""

from __future__ import annotations

import argparse
import sys

FORMATS = ("text", "json", "pdf")
KINDS = ("refill", "interrogation", "programming", "wound_check", "reintervention", "trial_start", "trial_end", "outcome", "refill_review")


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    from devicelog.cli import parse_date

    parser.description = (
        "A device's whole history: timeline with amendments, programming changes as diffs, "
        "the refill ledger with its discrepancy trend, and trends (reservoir, dose, battery, pain, oral MME)."
    )
    parser.add_argument("serial", metavar="SERIAL", help="the device's serial number")
    parser.add_argument("--patient", action="store_true", help="every device of the device's patient, old ones included")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument("--page-size", choices=("A4", "Letter"), help="pdf page size (default: the settings')")
    parser.add_argument(
        "--kind", choices=KINDS, action="append", metavar="KIND", help=f"timeline: only this event kind ({', '.join(KINDS)}); repeat for several"
    )
    parser.add_argument("--as-of", type=parse_date, metavar="DATE", help="the date the report is for (default: today)")


def run(args: argparse.Namespace, ctx) -> int:
    from devicelog.reports import history as report
    from devicelog.store.db import read_session

    if args.format == "pdf" and not args.output and sys.stdout.isatty():
        print("devicelog history: --format pdf writes a file: give -o FILE (or pipe the output)", file=sys.stderr)
        return 2
    settings = ctx.settings
    as_of = args.as_of or ctx.today
    try:
        with read_session(ctx.engine) as session:
            built = report.load_report(session, args.serial, settings=settings, as_of=as_of, whole_patient=args.patient)
    except LookupError as exc:
        print(f"devicelog history: serial = {args.serial!r}: {exc}", file=sys.stderr)
        return 1
    kinds = args.kind or None
    if args.format == "pdf":
        from devicelog.reports.history_pdf import render_pdf

        data = render_pdf(built, page_size=args.page_size or settings.page_size, kinds=kinds)
        if args.output:
            with open(args.output, "wb") as fh:
                fh.write(data)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
    else:
        if args.format == "json":
            text = report.render_json(built)
            if kinds:
                import json

                from devicelog.reports.safe import json_text

                data = json.loads(text)
                data["timeline"] = [e for e in data["timeline"] if e["kind"] in kinds]
                text = json_text(json.dumps(data, indent=2, ensure_ascii=False)) + "\n"
        else:
            text = report.render_text(built, kinds=kinds)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            try:
                sys.stdout.write(text)
                sys.stdout.flush()
            except BrokenPipeError:
                import os

                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if args.output:
        print(f"devicelog history: {len(built.timeline_of(kinds))} events written to {args.output}", file=sys.stderr)
    return 0
