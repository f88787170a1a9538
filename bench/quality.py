"""Time ``devicelog quality`` on a demo clinic (issue 17, section 3: "the report of a
100,000-patient clinic over one year takes at most a few seconds, within 300 MB").

    .venv/bin/python bench/quality.py bench/clinic-10k.db
    .venv/bin/python bench/quality.py bench/clinic-100k.db --formats json,pdf --reps 3

Build the clinic first (``bench/run.py --quick`` builds bench/clinic-10k.db, or
``devicelog --db FILE demo --patients N --seed 1 --as-of 2026-11-23``).  Each run is a
fresh process (import, open, load, compute, write), timed by wall clock with its peak
resident memory (``resource.getrusage`` of the child).  Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-23"


def run_once(db: str, fmt: str, out: str) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [sys.executable, "-m", "devicelog", "--db", db, "quality", "--to", AS_OF, "--format", fmt, "-o", out],
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"devicelog quality --format {fmt} failed: {proc.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far (kB on Linux): a run can only be told apart
    # when it is the largest; the figure reported is the peak over all runs.
    return wall, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("db")
    parser.add_argument("--formats", default="text,json,csv,html,pdf")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats.split(","):
            walls, peak = [], 0.0
            for _ in range(args.reps):
                wall, peak = run_once(args.db, fmt, str(Path(tmp) / f"quality.{fmt}"))
                walls.append(wall)
            size = (Path(tmp) / f"quality.{fmt}").stat().st_size
            print(f"quality --format {fmt}: median {sorted(walls)[len(walls) // 2]:.2f} s (min {min(walls):.2f}, max {max(walls):.2f}) over {len(walls)} runs; peak RSS so far {peak:,.0f} MB; output {size:,} bytes")


if __name__ == "__main__":
    main()
