"""``devicelog review SERIAL``: the flagged refills of a pump and their reviews (rule 26).

Examples::

    devicelog review NGP100                                    # every flagged refill, open or reviewed, with its entry id
    devicelog review NGP100 --refill 1234 --finding no_cause_found --note "residual re-read; patient well"
    devicelog review NGP100 --refill 1234 --finding catheter_study_ordered --on 2026-11-20

A flagged refill discrepancy (rule 8) or possible pocket fill (rule 9) stays on the
due list until a review is recorded: who (``--user``), when (``--on``, default
today), what was found or done (``--finding``) and a note.  Recording is one
transaction through ``services.record_review`` (checks, audit chain, due table); a
refill that is not flagged, or not this device's, is refused naming the option and
value, and nothing is written.
"""

from __future__ import annotations

import argparse
import sys

#: The options as a person typed them, for the refusals (``services`` names record fields).
OPTION_OF = {"data.refill_event_id": "--refill", "data.finding": "--finding", "data.note": "--note", "occurred_on": "--on",
             "device_serial": "SERIAL"}


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    from devicelog.cli import parse_date
    from devicelog.clinic.records import ReviewFinding

    parser.description = (
        "Rule 26: list a pump's flagged refills (discrepancy beyond the limit, possible pocket fill) with their "
        "reviews, or record the review of one; the flag stays on the due list until it is reviewed."
    )
    parser.add_argument("serial", metavar="SERIAL", help="the pump's serial number")
    parser.add_argument("--refill", metavar="ENTRY", help="record a review of this flagged refill (its entry id, as listed)")
    parser.add_argument("--finding", choices=[f.value for f in ReviewFinding], help="--refill: what was found or done")
    parser.add_argument("--note", default="", help="--refill: a free note")
    parser.add_argument("--on", type=parse_date, metavar="DATE", help="--refill: when the review was done (default: today)")


def flag_lines(history, settings) -> list[str]:
    """Each flagged refill of the pump: entry id, date, what is flagged, and its review or REVIEW DUE."""
    from devicelog.clinic.ledger import refill_ledger

    out = []
    for row in refill_ledger(history, settings):
        if not (row.flagged or row.pocket_fill_flagged):
            continue
        flags = []
        if row.flagged:
            flags.append(f"discrepancy {row.discrepancy_ml:+.2f} mL ({row.direction}, limit {row.limit_ml:g} mL)")
        if row.pocket_fill_flagged:
            flags.append("possible pocket fill")
        out.append(f"entry {row.event_id}  {row.refilled_on}  {'; '.join(flags)}  —  {row.review_text}")
    return out


def run(args: argparse.Namespace, ctx) -> int:
    from devicelog import services
    from devicelog.problems import InputError, Problem
    from devicelog.store import queries
    from devicelog.store.db import read_session, write_session

    recording = args.refill is not None
    if not recording and (args.finding or args.note or args.on):
        print("devicelog review: --finding, --note and --on go with --refill ENTRY", file=sys.stderr)
        return 2
    if recording and not args.finding:
        print("devicelog review: --refill needs --finding (what was found or done)", file=sys.stderr)
        return 2
    if recording:
        try:
            with write_session(ctx.engine) as session:
                row = services.record_review(session=session, serial=args.serial, refill_event_id=args.refill,
                                             finding=args.finding, note=args.note, author=ctx.user, today=ctx.today,
                                             occurred_on=args.on, settings=ctx.settings)
                entry = row.id
        except InputError as exc:
            raise InputError([Problem(OPTION_OF.get(p.field, p.field), p.value, p.message) for p in exc.problems]) from None
        print(f"devicelog review: {args.serial}: review of refill entry {args.refill} recorded (entry {entry}); "
              "its flag leaves the due list", file=sys.stderr)
    with read_session(ctx.engine) as session:
        history = queries.history_by_serial(session, args.serial)
    if history is None:
        print(f"devicelog review: SERIAL = {args.serial!r}: no device has this serial", file=sys.stderr)
        return 1
    if not history.device.model.is_pump:
        print(f"devicelog review: SERIAL = {args.serial!r}: a {history.device.model.label} is not a pump: no refills to review",
              file=sys.stderr)
        return 1
    lines = flag_lines(history, ctx.settings)
    text = "\n".join(lines) if lines else f"{args.serial}: no flagged refill"
    sys.stdout.write(f"Flagged refills of {args.serial} ({history.patient.mrn} {history.patient.name}):\n{text}\n" if lines else text + "\n")
    return 0
