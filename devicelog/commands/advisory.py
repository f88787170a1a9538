"""``devicelog advisory``: safety notices (advisories and recalls) and the devices they concern.

Examples::

    devicelog advisory import notice.json                 # devicelog JSON (schemas/advisory.schema.json)
    devicelog advisory import notice.csv                  # devicelog CSV
    devicelog advisory import recall.json --class II      # an openFDA device recall file
    devicelog advisory import recall.json --model synchromed-ii-40 --class I
    devicelog advisory list [--format json]
    devicelog advisory show 3 [--format json]
    devicelog advisory ack 3 NGP000123A --done patient_informed --done alarm_education --note "phoned"

Import reads the file from disk (no network), stores the notice and its matches in one
transaction, and reports what was read and what could not be read.  Each affected
implanted device gets a due item until ``ack`` records what was done (docs/advisories.md).
"""

from __future__ import annotations

import argparse
import json
import sys

FORMATS = ("text", "json")


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    from devicelog.cli import global_options, parse_date
    from devicelog.clinic.advisory import ACTIONS

    parser.description = "Safety notices (advisories, recalls): import from a file, list, show affected devices, acknowledge."
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    # --db, --settings and --user may also come after the action (as after any command).
    common = [global_options(default=argparse.SUPPRESS)]
    p = sub.add_parser("import", parents=common, help="import a notice file: devicelog JSON or CSV, or an openFDA device recall JSON")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--model", action="append", default=[], metavar="CODE",
                   help="openFDA: the catalogue model the recall concerns (repeat for several)")
    p.add_argument("--class", dest="notice_class", choices=("I", "II", "III"),
                   help="openFDA: the recall class, when the file does not give it")
    p.add_argument("--as-of", type=parse_date, metavar="DATE", help="the date matches are recorded as found (default: today)")
    p = sub.add_parser("list", parents=common, help="every notice with its counts of affected devices")
    p.add_argument("--format", choices=FORMATS, default="text")
    p = sub.add_parser("show", parents=common, help="a notice and every device and patient it concerns, with tier and evidence")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--format", choices=FORMATS, default="text")
    p = sub.add_parser("ack", parents=common, help="record what was done for one device; its due item goes")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("serial", metavar="DEVICE_SERIAL")
    p.add_argument("--done", action="append", default=[], choices=tuple(ACTIONS), required=True,
                   help="what was done (repeat): " + ", ".join(ACTIONS))
    p.add_argument("--note", default="", help="free text: who was told, what was found")
    p.add_argument("--on", type=parse_date, metavar="DATE", help="when it was done (default: today)")


def _print(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


# ----------------------------------------------------------------------- rendering


def notice_dict(row, affected, counts=None) -> dict:
    from devicelog.clinic.advisory import SEVERITY_BY_CLASS, TIER_LABELS

    data = {
        "id": row.id, "title": row.title, "issued_on": row.issued_on.isoformat(), "source": row.source,
        "reference": row.reference, "notice_class": row.notice_class, "severity": SEVERITY_BY_CLASS[row.notice_class],
        "recommended_action": row.recommended_action, "rules": row.rules, "unparsed": list(row.unparsed or []),
        "form": row.form, "imported_by": row.author,
    }
    if counts is not None:
        matched, open_, possible = counts
        data.update(devices_matched=matched, open_items=open_, possible_matches=possible)
    if affected is not None:
        def one(a):
            return {
                "patient_mrn": a.patient_mrn, "patient_name": a.patient_name, "device_serial": a.serial, "model": a.model,
                "device_status": a.status, "tier": a.tier, "tier_label": TIER_LABELS[a.tier], "evidence": a.evidence,
                "matched_on": a.matched_on.isoformat(),
                "acknowledged": None if a.acknowledged_on is None else {
                    "on": a.acknowledged_on.isoformat(), "by": a.acknowledged_by, "done": list(a.actions), "note": a.note},
            }
        data["implanted"] = [one(a) for a in affected if a.implanted]
        data["explanted"] = [one(a) for a in affected if not a.implanted]
    return data


def show_lines(row, affected) -> list[str]:
    """A notice and its devices as text lines (the CLI prints them, the TUI shows them)."""
    from devicelog.clinic.advisory import ACTIONS, SEVERITY_BY_CLASS, TIER_LABELS

    out = [
        f"Safety notice {row.id}: {row.title}",
        f"  {row.source}{' · ' + row.reference if row.reference and row.reference not in row.source else ''} · issued {row.issued_on} · "
        f"class {row.notice_class} → due items {SEVERITY_BY_CLASS[row.notice_class]}",
        "  What to do: " + " ".join(row.recommended_action.split()),
    ]
    rules = row.rules or {}
    described = [f"{k.replace('_', ' ')}: {', '.join(v) if isinstance(v, list) else v}" for k, v in rules.items() if v]
    out.append("  Matches: " + ("; ".join(described) or "nothing"))
    for piece in row.unparsed or []:
        out.append(f"  NOT READ (check by hand): {piece}")
    implanted = [a for a in affected if a.implanted]
    explanted = [a for a in affected if not a.implanted]
    for title, group in (("Implanted devices", implanted), ("Explanted or replaced devices (no due item)", explanted)):
        out.append("")
        out.append(f"{title}: {len(group)}")
        for a in group:
            state = (f"acknowledged {a.acknowledged_on} by {a.acknowledged_by}: {', '.join(ACTIONS.get(x, x) for x in a.actions)}"
                     + (f" ({a.note})" if a.note else "")) if a.acknowledged_on else ("OPEN" if a.implanted else a.status)
            out.append(f"  {a.patient_mrn} {a.patient_name} · {a.model} {a.serial} · tier {a.tier} {TIER_LABELS[a.tier]} · {state}")
            out.append(f"      evidence: {a.evidence}")
    return out


def list_lines(rows, counts) -> list[str]:
    if not rows:
        return ["No safety notices imported (devicelog advisory import FILE)."]
    out = []
    for row in rows:
        matched, open_, possible = counts.get(row.id, (0, 0, 0))
        out.append(f"{row.id:>4}  {row.issued_on}  class {row.notice_class:<3} {matched} device(s), {open_} open, "
                   f"{possible} possible  {row.title}")
    return out


# ----------------------------------------------------------------------- the command


def run(args: argparse.Namespace, ctx) -> int:
    from devicelog.reports.safe import json_text, visible
    from devicelog.store import advisories
    from devicelog.store.db import read_session, write_session

    if args.action == "import":
        return _import(args, ctx)
    if args.action == "ack":
        with write_session(ctx.engine) as session:
            advisories.acknowledge(session, advisory_id=args.id, serial=args.serial, actions=args.done, note=args.note,
                                   author=ctx.user, done_on=args.on or ctx.today, today=ctx.today)
        print(f"devicelog advisory: notice {args.id}, device {args.serial}: acknowledged ({', '.join(args.done)}); "
              "its due item is closed", file=sys.stderr)
        return 0
    with read_session(ctx.engine) as session:
        rows = advisories.notices(session)
        counts = advisories.counts(session)
        if args.action == "list":
            if args.format == "json":
                _print(json_text(json.dumps([notice_dict(r, None, counts.get(r.id, (0, 0, 0))) for r in rows], indent=2,
                                            ensure_ascii=False)) + "\n")
            else:
                _print(visible("\n".join(list_lines(rows, counts))) + "\n")
            return 0
        row = next((r for r in rows if r.id == args.id), None)
        if row is None:
            print(f"devicelog advisory: ID = {args.id}: no safety notice has this number (devicelog advisory list)",
                  file=sys.stderr)
            return 1
        affected = advisories.affected(session, args.id)
    from devicelog.store.audit import log_read

    log_read(ctx.engine, author=ctx.user, what=f"safety notice {args.id}: affected devices",
             patients=[a.patient_mrn for a in affected], devices=[a.serial for a in affected])
    if args.format == "json":
        _print(json_text(json.dumps(notice_dict(row, affected, counts.get(row.id, (0, 0, 0))), indent=2,
                                    ensure_ascii=False)) + "\n")
    else:
        _print(visible("\n".join(show_lines(row, affected))) + "\n")
    return 0


def _import(args, ctx) -> int:
    from pathlib import Path

    from devicelog.clinic.advisory import NoticeError, read_notice
    from devicelog.problems import InputError, Problem
    from devicelog.store import advisories, queries
    from devicelog.store.db import read_session, write_session

    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"devicelog advisory: FILE = {args.file!r}: cannot be read ({exc.__class__.__name__}: {exc})", file=sys.stderr)
        return 2
    with read_session(ctx.engine) as session:
        catalogue = queries.device_models(session)
    try:
        notice, report = read_notice(text, name=args.file, models=args.model or None, notice_class=args.notice_class,
                                     catalogue=catalogue)
    except NoticeError as exc:
        raise InputError([Problem(f, v, m) for f, v, m in exc.problems]) from None
    with write_session(ctx.engine) as session:
        row, pairs = advisories.import_notice(session, notice=notice, author=ctx.user, today=args.as_of or ctx.today)
        notice_id = row.id
    for line in report:
        print(f"devicelog advisory: {line}", file=sys.stderr)
    tiers = {t: sum(1 for p in pairs if p[2].tier == t) for t in (1, 2, 3, 4)}
    print(f"devicelog advisory: imported notice {notice_id} ({notice.title}): {len(pairs)} device(s) matched "
          f"(tier 1: {tiers[1]}, tier 2: {tiers[2]}, tier 3: {tiers[3]}, possible: {tiers[4]}); "
          f"devicelog advisory show {notice_id}", file=sys.stderr)
    if notice.unparsed:
        print(f"devicelog advisory: {len(notice.unparsed)} passage(s) of the notice could not be read; they are kept "
              "with the notice and shown by `advisory show`: check them by hand", file=sys.stderr)
    return 0
