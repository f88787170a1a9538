"""A progress bar for long work: Rich on a terminal, silence when piped.

``with progress(total, "Importing") as tick: ... tick(n)`` draws a Rich progress bar
on standard error when standard error is a terminal, and does nothing otherwise
(piped, redirected, in tests), so logs and scripts stay clean.  Rich is imported
only when a bar is drawn.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator, TextIO


def _noop(_n: float = 1) -> None:
    return None


def wanted(stream: TextIO | None = None) -> bool:
    """A bar is drawn only on a terminal."""
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def progress(total: float, description: str, stream: TextIO | None = None) -> Iterator[Callable[[float], None]]:
    """Yield ``tick(n)`` that advances the bar by ``n`` of ``total``."""
    stream = stream or sys.stderr
    if not wanted(stream) or total <= 0:
        yield _noop
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=stream), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
