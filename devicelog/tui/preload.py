"""The first screen's data, read in a thread while Textual is imported and paints.

``devicelog tui`` spends most of its start importing libraries: Textual for the
screen, pydantic (the settings and the clinical records), SQLAlchemy and sqlmodel
for the store.  Done in turn, the screen could not paint before the store was
imported, and the store could not be read before the screen had painted.
``Preload(ctx)`` starts one thread that opens the database (settings, schema check)
and reads what the main screen shows first (the catalogue, the opening warnings and
the first page of patients) while the main thread imports Textual and draws the
empty screen; the SQLite reads (which release the GIL) overlap that work.

The reads use SQLAlchemy Core (``tui.state``), so the first frame comes without the
ORM (sqlalchemy.orm, sqlmodel, ``store.tables``: ~110 ms of CPU).  The screens that
write or show a device need it: once the app says the first screen is painted
(``painted``), this thread imports it, so opening a device or registering a patient
does not wait for it.  (It starts after the paint, not before: on one core, or under
the GIL, it would delay the first frame by as much.)

Nothing here imports Textual.  The app takes each result once (``take``): a reload
or any later search reads the database again.  An error (bad settings, a database
from a newer devicelog) is raised again where the result is taken, so the command
reports it exactly as before.
"""

from __future__ import annotations

import threading
from typing import Any

_MISSING = object()


class Preload:
    """The first screen's reads, in a daemon thread started at construction."""

    def __init__(self, ctx) -> None:
        self._ctx = ctx
        self._values: dict[str, Any] = {}
        self._errors: dict[str, BaseException] = {}
        self._events = {name: threading.Event() for name in ("engine", "catalogue", "warnings", "search")}
        self._lock = threading.Lock()
        self._taken: set[str] = set()
        self._painted = threading.Event()
        self.thread = threading.Thread(target=self._run, name="devicelog-preload", daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        ctx = self._ctx
        opened = self._step("engine", lambda: (ctx.engine, ctx.settings))
        if opened is _MISSING:
            for name in ("catalogue", "warnings", "search"):
                self._fail(name, self._errors["engine"])
            return
        engine, settings = opened
        from devicelog.tui import state

        today = ctx.today
        catalogue = self._step("catalogue", lambda: state.load_catalogue(engine))
        self._step("warnings", lambda: state.opening_warnings(engine, as_of=today, settings=settings))
        if catalogue is _MISSING:
            self._fail("search", self._errors["catalogue"])
            return
        self._step("search", lambda: state.search(engine, "", as_of=today, settings=settings, catalogue=catalogue))
        self._painted.wait()
        warm_up()

    def _step(self, name: str, read) -> Any:
        """Read one result and publish it; ``_MISSING`` when the read raised."""
        try:
            value = read()
        except BaseException as exc:  # raised again where it is taken
            self._fail(name, exc)
            return _MISSING
        self._values[name] = value
        self._events[name].set()
        return value

    def _fail(self, name: str, exc: BaseException) -> None:
        self._errors[name] = exc
        self._events[name].set()

    # ------------------------------------------------------------------ the app's side

    def painted(self) -> None:
        """The first screen is painted: the thread imports what later screens need."""
        self._painted.set()

    def engine_and_settings(self):
        """(engine, settings), waiting for them; raises what opening the database raised.

        Opening may migrate the file (``schema.prepare``).  Ctrl-C while waiting lets that
        finish first: the thread is a daemon, so leaving at once would stop a migration
        part way instead of letting its transaction end."""
        try:
            self._events["engine"].wait()
        except KeyboardInterrupt:
            self._events["engine"].wait()
            raise
        if "engine" in self._errors:
            raise self._errors["engine"]
        return self._values["engine"]

    def wait(self, *names: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until these results are read (or failed)."""
        import time

        deadline = time.monotonic() + timeout
        return all(self._events[n].wait(max(0.0, deadline - time.monotonic())) for n in names)

    def ready(self, *names: str) -> bool:
        """These results are read (or failed) and not taken yet: ``take`` will not wait."""
        return all(self._events[n].is_set() and n not in self._taken for n in names)

    def take(self, name: str, default: Any = _MISSING) -> Any:
        """``catalogue``, ``warnings`` or ``search`` (the empty search), waiting for it,
        once: ``default`` (or KeyError) when it was taken already.  Call it from a worker
        thread, never from the UI thread."""
        with self._lock:
            if name in self._taken:
                if default is _MISSING:
                    raise KeyError(name)
                return default
            self._taken.add(name)
        self._events[name].wait()
        if name in self._errors:
            raise self._errors[name]
        return self._values.pop(name)


def warm_up() -> None:
    """Import the ORM and the table models, which the first screen does without and
    the screens that open a device or write need."""
    try:
        import devicelog.store.tables  # noqa: F401  (sqlmodel, sqlalchemy.orm)
    except Exception:  # noqa: BLE001 - imported again, and reported, where it is used
        pass
