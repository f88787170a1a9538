"""``devicelog quality``: the program quality report (issue 17, section 3).

Examples::

    devicelog quality                                   # the last 12 months, as text
    devicelog quality --from 2026-01-01 --to 2026-06-30 --kind intrathecal_pump
    devicelog quality --format html -o quality.html
    devicelog quality --format pdf -o quality.pdf
"""

from __future__ import annotations

import argparse
import sys

FORMATS = ("text", "json", "csv", "html", "pdf")
KINDS = ("intrathecal_pump", "spinal_cord_stimulator", "drg_stimulator", "peripheral_nerve_stimulator")


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    from devicelog.cli import parse_date

    parser.description = (
        "The program quality report: on-time refills, flagged discrepancies and pocket fills, wound escalations "
        "and infections, explants and revisions, device survival (Kaplan-Meier), trial conversion and oral MME change. "
        "Every figure shows its numerator, denominator, period and who makes it up."
    )
    parser.add_argument("--from", dest="start", type=parse_date, metavar="DATE", help="first day of the period (default: a year before --to)")
    parser.add_argument("--to", dest="end", type=parse_date, metavar="DATE", help="last day of the period (default: today)")
    parser.add_argument("--kind", choices=KINDS, action="append", metavar="KIND", help=f"only devices of this kind ({', '.join(KINDS)}); repeat for several")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    parser.add_argument("--page-size", choices=("A4", "Letter"), help="pdf page size (default: the settings')")


def run(args: argparse.Namespace, ctx) -> int:
    import datetime as dt

    from devicelog.clinic.quality import Period, quality_report
    from devicelog.clinic.records import DeviceKind
    from devicelog.reports import quality as report
    from devicelog.store import queries
    from devicelog.store.db import read_session
    from devicelog.store.quality import quality_histories

    if args.format == "pdf" and not args.output and sys.stdout.isatty():
        print("devicelog quality: --format pdf writes a file: give -o FILE (or pipe the output)", file=sys.stderr)
        return 2
    end = args.end or ctx.today
    start = args.start or (end.replace(year=end.year - 1) + dt.timedelta(days=1) if not (end.month == 2 and end.day == 29) else dt.date(end.year - 1, 3, 1))
    if start > end:
        print(f"devicelog quality: --from {start} is after --to {end}", file=sys.stderr)
        return 2
    period = Period(start, end)
    if args.output:
        from devicelog.output import check_target

        check_target(args.output)  # a bad -o is refused (one line, exit 2) before the report is built
    kinds = tuple(DeviceKind(k) for k in (args.kind or ()))
    settings = ctx.settings
    with read_session(ctx.engine) as session:
        drugs = queries.drugs_by_code(session)
        built = quality_report(quality_histories(session, period, kinds), period=period, settings=settings, drugs=drugs, kinds=kinds)
    if args.format == "pdf":
        data: bytes | str = report.render_pdf(built, page_size=args.page_size or settings.page_size)
    else:
        render = {"text": report.render_text, "json": report.render_json, "csv": report.render_csv, "html": report.render_html}[args.format]
        data = render(built)
    if args.output:
        from devicelog.output import private_file

        # Owner-only, whole or not at all; a bad -o is one line, exit 2 (devicelog.output).
        with private_file(args.output, binary=isinstance(data, bytes)) as fh:
            fh.write(data)
    elif isinstance(data, bytes):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        try:
            sys.stdout.write(data)
            sys.stdout.flush()
        except BrokenPipeError:
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if args.output:
        print(f"devicelog quality: {period} written to {args.output}", file=sys.stderr)
    return 0
