"""``devicelog mri SERIAL``: the pre-MRI checklist of rule 13, and its two records.

Examples::

    devicelog mri PRO40                                  # the checklist, with the device's figures
    devicelog mri PRO40 --mri-on 2026-11-25 --format json
    devicelog mri PRO40 --mri-on 2026-11-25 --record-checklist --note "withdrew 12.5 mL; oral morphine plan by Dr Kim"
    devicelog mri PRO40 --mri-on 2026-11-25 --log-interrogation --on 2026-11-25 --reservoir-ml 0 --notes "refilled after"

Showing the checklist writes nothing.  ``--record-checklist`` records it as done for
the MRI date (a ``pre_mri_checklist`` reintervention with ``mri_on``), and
``--log-interrogation`` the post-MRI interrogation (an interrogation with reason
``post_mri`` and ``mri_on``); each is one transaction through
``services.record_event`` (checks, audit chain, due table), and a refusal names the
field and value and leaves the database as it was.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys

FORMATS = ("text", "json")
MARK = {"do": "[ ]", "warn": " ! ", "note": " · "}


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    from devicelog.cli import parse_date

    parser.description = (
        "Rule 13: before an MRI, the pump checklist (empty a Prometra, alternative analgesia for the drug the "
        "scan interrupts, post-MRI interrogation) with the device's own figures; for a stimulator, the MRI line "
        "of the clinical reference.  Also records the checklist as done and the post-MRI interrogation."
    )
    parser.add_argument("serial", metavar="SERIAL", help="the device's serial number")
    parser.add_argument("--mri-on", type=parse_date, metavar="DATE", help="the date of the MRI")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--as-of", type=parse_date, metavar="DATE", help="the date the checklist is for (default: today)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--record-checklist", action="store_true", help="record the checklist as done for --mri-on (today)")
    what.add_argument("--log-interrogation", action="store_true", help="log the post-MRI interrogation for --mri-on")
    parser.add_argument("--note", default="", help="--record-checklist: what was done (volume withdrawn, analgesia plan)")
    parser.add_argument("--on", type=parse_date, metavar="DATE", help="when the checklist or the interrogation was done (default: today)")
    parser.add_argument("--reservoir-ml", metavar="ML", help="--log-interrogation: reservoir volume the pump reports (mL)")
    parser.add_argument("--battery-state", choices=("ok", "eri", "eos"), default="ok", help="--log-interrogation: battery state")
    parser.add_argument("--battery-percent", metavar="PERCENT", help="--log-interrogation: battery (%%)")
    parser.add_argument("--alarm", action="append", default=[], metavar="CODE",
                        help="--log-interrogation: an alarm the pump shows (e.g. motor_stall); repeat for several")
    parser.add_argument("--notes", default="", help="--log-interrogation: notes")


# ----------------------------------------------------------------------- rendering


def as_dict(checklist, as_of: dt.date) -> dict:
    """The checklist as JSON-able values (dates as ISO strings), with each post-MRI status."""

    def plain(value):
        if isinstance(value, (dt.date, dt.datetime)):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    data = plain(dataclasses.asdict(checklist))
    data["rule"] = "rule 13"
    data["as_of"] = as_of.isoformat()
    for entry, post in zip(data["post_mri"], checklist.post_mri):
        entry["status"] = post.status(as_of)
        entry["text"] = post.text(as_of)
    data["outstanding_post_mri"] = [p.mri_on.isoformat() for p in checklist.outstanding]
    return data


def render_json(checklist, as_of: dt.date) -> str:
    from devicelog.reports.safe import json_text

    return json_text(json.dumps(as_dict(checklist, as_of), indent=2, ensure_ascii=False)) + "\n"


def lines(checklist, as_of: dt.date) -> list[tuple[str, str]]:
    """The checklist as (style, text) lines: the CLI prints the text, the TUI styles it."""
    c = checklist
    out: list[tuple[str, str]] = []
    title = "MRI checklist (rule 13)" if c.applies else "MRI check (outside rule 13: not a pump)"
    out.append(("bold", f"{title} · {c.patient_mrn} {c.patient_name} · {c.model_label} serial {c.serial}"))
    mr = {"conditional": "MR Conditional", "unsafe": "MR UNSAFE", "unknown": "MR status unknown"}[c.mr_status]
    out.append(("bold red" if c.mr_status != "conditional" else "", f"Catalogue: {mr}" + (f" — {c.mr_note}" if c.mr_note else "")))
    out.append(("bold", f"MRI on {c.mri_on}" if c.mri_on else "MRI date: not given"))
    out.append(("", ""))
    for number, step in enumerate(c.steps, 1):
        style = {"warn": "bold yellow", "note": "dim"}.get(step.level, "")
        out.append((style, f"{MARK[step.level]} {number}. {step.text}"))
        out.append(("dim", f"       from: {step.source}"))
    if c.applies:
        out.append(("", ""))
        if not c.post_mri:
            out.append(("dim", "Post-MRI interrogation: no checklist recorded for an MRI date yet."))
        for post in c.post_mri:
            state = post.status(as_of)
            style = {"overdue": "bold white on dark_red", "due": "bold black on yellow", "planned": "", "done": "green"}[state]
            word = {"overdue": "OVERDUE", "due": "DUE", "planned": "planned", "done": "done"}[state]
            out.append((style, f"{word}: {post.text(as_of)}"))
    return out


def render_text(checklist, as_of: dt.date) -> str:
    from devicelog.reports.safe import visible

    return visible("\n".join(text for _, text in lines(checklist, as_of))) + "\n"


# ----------------------------------------------------------------------- records


def record_checklist(session, *, serial: str, mri_on: dt.date, note: str, author: str, today: dt.date, settings=None,
                     occurred_on: dt.date | None = None):
    """Rule 13: record the checklist as done (on ``occurred_on``, default today) for the
    MRI on ``mri_on``: a reintervention of kind ``pre_mri_checklist`` with ``mri_on``,
    its reason the note (or a default naming the MRI), in the caller's one transaction."""
    from devicelog import services
    from devicelog.clinic import mri
    from devicelog.clinic.records import EventIn, ReinterventionData
    from devicelog.problems import InputError, Problem
    from devicelog.store import queries

    history = queries.history_by_serial(session, serial)
    if history is not None and not history.device.model.is_pump:
        raise InputError([Problem("serial", serial, f"a {history.device.model.label} is not a pump: rule 13's checklist is for pumps, nothing to record")])
    reason = mri.pre_mri_reason(mri_on, note.strip())
    data = services.validate(ReinterventionData, {"reintervention": "pre_mri_checklist", "mri_on": mri_on.isoformat(),
                                                  "reason": reason}, "data")
    event = EventIn(device_serial=serial, occurred_on=occurred_on or today, author=author, data=data)
    return services.record_event(session=session, event=event, today=today, settings=settings)


def log_interrogation(session, *, serial: str, mri_on: dt.date, occurred_on: dt.date, values: dict, author: str,
                      today: dt.date, settings=None):
    """Rule 13: the post-MRI interrogation, an interrogation with reason ``post_mri`` and
    ``mri_on``.  Refused (field and value named) if dated before the MRI
    (``services.check_event``)."""
    from devicelog import services
    from devicelog.clinic.records import EventIn

    values = dict(values)
    values["reason"] = "post_mri"
    values["mri_on"] = mri_on.isoformat()
    data = services.parse_event_data("interrogation", values)
    event = services.validate(EventIn, {"device_serial": serial, "occurred_on": occurred_on.isoformat(), "author": author,
                                        "data": data.model_dump(mode="json")})
    return services.record_event(session=session, event=event, today=today, settings=settings)


def _interrogation_values(args) -> dict:
    from devicelog import forms

    values: dict = {"battery_state": args.battery_state, "notes": args.notes}
    volume = forms.parse_number("reservoir_ml", args.reservoir_ml, "mL")
    if volume is not None:
        values["reservoir_volume_ml"] = volume
    percent = forms.parse_number("battery_percent", args.battery_percent, "%")
    if percent is not None:
        values["battery_percent"] = percent
    values["alarms"] = [{"code": code} for code in args.alarm]
    return values


# ----------------------------------------------------------------------- the command


def run(args: argparse.Namespace, ctx) -> int:
    from devicelog.clinic import mri
    from devicelog.store import queries
    from devicelog.store.db import read_session, write_session

    as_of = args.as_of or ctx.today
    if (args.record_checklist or args.log_interrogation) and args.mri_on is None:
        print("devicelog mri: --record-checklist and --log-interrogation need --mri-on DATE", file=sys.stderr)
        return 2
    if args.record_checklist or args.log_interrogation:
        with write_session(ctx.engine) as session:
            if args.record_checklist:
                row = record_checklist(session, serial=args.serial, mri_on=args.mri_on, note=args.note, author=ctx.user,
                                       today=ctx.today, settings=ctx.settings, occurred_on=args.on)
                done = f"checklist recorded as done for the MRI on {args.mri_on} (entry {row.id})"
            else:
                row = log_interrogation(session, serial=args.serial, mri_on=args.mri_on, occurred_on=args.on or ctx.today,
                                        values=_interrogation_values(args), author=ctx.user, today=ctx.today,
                                        settings=ctx.settings)
                done = f"post-MRI interrogation logged for the MRI on {args.mri_on} (entry {row.id})"
        print(f"devicelog mri: {args.serial}: {done}", file=sys.stderr)
    with read_session(ctx.engine) as session:
        history = queries.history_by_serial(session, args.serial)
        if history is None:
            print(f"devicelog mri: serial = {args.serial!r}: no device has this serial", file=sys.stderr)
            return 1
        drugs = queries.drugs_by_code(session)
    checklist = mri.checklist(history, drugs, as_of, args.mri_on)
    text = render_json(checklist, as_of) if args.format == "json" else render_text(checklist, as_of)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
