"""The other devicelog commands on a large clinic (issue 8): wall time and peak memory.

    .venv/bin/python bench/commands.py --db /tmp/dl/clinic-10k-copy.db --reps 1
    # from bench/run.py:  bench_commands(db, args, report)

Runs, each in a fresh process and each the whole command as a person types it:
``verify``, ``fhir -o``, ``due --within 30 --format pdf|text|ics|csv|html -o``,
``history --format pdf -o`` of the device with the most events, ``backup``.  Every
output goes to a scratch directory that is removed at the end (a whole-clinic FHIR
export is ~3 GB at 100,000 patients).  Peak memory comes from ``wait4``
(``run.run_proc``) and goes to ``report.rss``; each command gets a row with the
issue's target, peak RSS ≤ 300 MB, and its wall time.

The baseline beside ``verify`` is SQLite's own ``PRAGMA integrity_check`` (part of
``verify``, the floor of any check of the file); beside ``backup`` a plain
``sqlite3`` online backup of the same file.  The other commands have no plain
equivalent: their row says so.

``verify`` and the commands open the file as devicelog does, so a file at an older
schema is migrated: point it at a copy, never at bench/clinic-*.db you want kept.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import run as _run  # noqa: E402  (bench/run.py: run_proc, Repeater, Report, spread, secs)

RSS_TARGET_MB = 300
FORMATS = ("pdf", "text", "ics", "csv", "html")


def _integrity_baseline(db: Path, timeout: float):
    code = (
        "import sqlite3, sys; c = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True); "
        "print(c.execute('PRAGMA integrity_check').fetchone()[0])"
    )
    return _run.run_proc([_run.PYTHON, "-c", code, str(db)], timeout=timeout)


def _backup_baseline(db: Path, dest: Path, timeout: float):
    code = (
        "import sqlite3, sys; s = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True); "
        "d = sqlite3.connect(sys.argv[2]); s.backup(d); d.close()"
    )
    return _run.run_proc([_run.PYTHON, "-c", code, str(db), str(dest)], timeout=timeout)


def _measure(name: str, argv: list[str], args, report, *, outputs: list[Path] = (), baseline=None, note: str = "") -> None:
    """Run ``argv`` up to ``args.reps`` times (within ``args.budget``); one report row and
    its peak memory.  ``outputs`` are removed after each run; ``baseline`` (a callable
    returning a Proc) runs before each."""
    walls, base_walls, procs, failure = [], [], [], None
    for _ in _run.Repeater(args.reps, args.budget):
        if baseline is not None:
            b = baseline()
            if b.ok:
                base_walls.append(b.wall_s)
        p = _run.run_proc(argv, timeout=args.timeout, stdout_to=os.devnull)
        procs.append(p)
        sizes = [o.stat().st_size for o in outputs if o.exists()]
        for o in outputs:
            if o.exists():
                o.unlink()
        if not p.ok:
            failure = p.failure()
            break
        walls.append(p.wall_s)
        if sizes:
            note = note or f"output {sum(sizes) / _run.MB:,.0f} MB"
    report.rss(name, procs)
    peak = max((p.peak_rss_mb for p in procs), default=None)
    measured = (
        f"{_run.spread(walls, _run.secs)}; peak RSS {peak:,.0f} MB" + (f"; {note}" if note else "")
        if walls
        else f"failed: {failure}" + (f" (peak RSS {peak:,.0f} MB)" if peak else "")
    )
    report.add(
        f"`{name}` (wall, peak RSS)",
        f"peak RSS ≤ {RSS_TARGET_MB} MB",
        _run.spread(base_walls, _run.secs) + " " + (baseline.__doc__ or "") if base_walls else "— (no plain equivalent)",
        measured,
        _run.verdict(peak <= RSS_TARGET_MB if walls else None),
    )


def bench_commands(db: Path, args, report) -> None:
    """verify, fhir, due (pdf, text, ics, csv, html), history pdf and backup on ``db``:
    wall time and peak RSS of each whole command (``args``: reps, budget, timeout)."""
    db = Path(db)
    devicelog = [_run.DEVICELOG, "--db", str(db)]
    with tempfile.TemporaryDirectory(prefix="devicelog-bench-commands-") as scratch:
        out = Path(scratch)
        print("verify…", flush=True)

        def integrity():
            """(PRAGMA integrity_check, plain sqlite3)"""
            return _integrity_baseline(db, args.timeout)

        _measure("devicelog verify", [*devicelog, "verify"], args, report, baseline=integrity)

        print("fhir…", flush=True)
        target = out / "clinic.fhir.json"
        _measure("devicelog fhir -o FILE", [*devicelog, "fhir", "-o", str(target)], args, report, outputs=[target])

        for fmt in FORMATS:
            print(f"due --format {fmt}…", flush=True)
            target = out / f"due.{fmt}"
            _measure(
                f"devicelog due --within 30 --format {fmt} -o FILE",
                [*devicelog, "due", "--within", "30", "--format", fmt, "-o", str(target), "--as-of", _run.AS_OF],
                args,
                report,
                outputs=[target],
            )

        print("history --format pdf…", flush=True)
        (serial, events), = _run.top_devices(db, 1)
        target = out / "history.pdf"
        _measure(
            f"devicelog history SERIAL --format pdf -o FILE",
            [*devicelog, "history", serial, "--format", "pdf", "-o", str(target), "--as-of", _run.AS_OF],
            args,
            report,
            outputs=[target],
            note=f"{serial}, {events:,} events",
        )

        print("backup…", flush=True)
        target = out / "backup.db"
        plain = out / "plain-backup.db"

        def copy():
            """(sqlite3 online backup, plain)"""
            if plain.exists():
                plain.unlink()
            try:
                return _backup_baseline(db, plain, args.timeout)
            finally:
                if plain.exists():
                    plain.unlink()

        _measure("devicelog backup DEST", [*devicelog, "backup", str(target)], args, report, outputs=[target], baseline=copy)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="bench/commands.py", description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="the clinic file (a copy: an older schema is migrated)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--budget", type=float, default=240)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--results", help="also write the rows (markdown) here")
    args = parser.parse_args(argv)
    report = _run.Report()
    started = time.perf_counter()
    bench_commands(Path(args.db).resolve(), args, report)
    lines = ["| Command | Target | Baseline | Measured | Verdict |", "|---|---|---|---|---|"]
    lines += [f"| {r.name} | {r.target} | {r.baseline} | {r.measured} | {r.verdict} |" for r in report.rows]
    lines += ["", f"{args.db}; {time.perf_counter() - started:,.0f} s in all."]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.results:
        Path(args.results).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
