"""Measurements that run inside a fresh process, started by ``bench/run.py``.

    python bench/probe.py due      --db FILE --as-of DATE [--within 30]
    python bench/probe.py history  --db FILE --as-of DATE --serials A,B,C [--reps 5]
    python bench/probe.py search   --db FILE --terms-file FILE [--budget 120]
    python bench/probe.py tui      --db FILE --as-of DATE [--type-terms-file FILE]
    python bench/probe.py tui-bare
    python bench/probe.py due-baseline     --db FILE --as-of DATE [--within 30]
    python bench/probe.py import-baseline  --db NEW_FILE --doc FILE

Each prints one JSON object on its last line of standard output.  Times are seconds
from ``time.perf_counter`` unless named ``*_epoch`` (``time.time()``, so that the
parent can measure from the moment it started the process).  Everything is imported
and the database prepared (migrated if needed) *before* a timer starts, except in
``tui``/``tui-bare`` whose point is the whole start.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def emit(result: dict) -> None:
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


def open_engine(db: str):
    from devicelog.settings import load_settings
    from devicelog.store.db import make_engine
    from devicelog.store.schema import prepare

    settings = load_settings(None)
    engine = make_engine(db)
    prepare_like_cli(prepare, engine, settings)
    return engine, settings


def prepare_like_cli(prepare, engine, settings) -> None:
    """Migrate an older file and refresh what depends on the settings, as ``cli.Context``
    does on opening (older ``prepare`` took no settings)."""
    import inspect

    if "settings" in inspect.signature(prepare).parameters:
        prepare(engine, settings=settings)
    else:
        prepare(engine)


def ro_connect(db: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)


# --------------------------------------------------------------------------- due


def table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def due_inputs_baseline(db: str, until: str) -> dict:
    """The fastest plain sqlite3 read of what the due rows are made from.

    With a maintained ``due_item`` table: its rows due on or before ``until`` (overdue
    included).  Without one: every device's events, devices, patients and the catalogue,
    which is what a forecast computed from the record needs.
    """
    conn = ro_connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        t0 = time.perf_counter()
        if "due_item" in tables:
            cols = table_columns(conn, "due_item")
            if "due_on" in cols:
                rows = conn.execute("SELECT * FROM due_item WHERE due_on <= ?", (until,)).fetchall()
                schema = "due_item table: its rows with due_on <= as_of + within"
            else:
                rows = conn.execute("SELECT * FROM due_item").fetchall()
                schema = "due_item table (no due_on column): all its rows"
            n = len(rows)
        else:
            events = conn.execute(
                "SELECT id, device_id, kind, occurred_on, author, recorded_at, data, amends_id, "
                "amendment_reason, voided FROM event"
            ).fetchall()
            n = len(events)
            for table in ("device", "patient", "device_model", "drug"):
                n += len(conn.execute(f"SELECT * FROM {table}").fetchall())
            schema = "no due_item table: every event, device, patient and catalogue row"
        seconds = time.perf_counter() - t0
    finally:
        conn.close()
    return {"seconds": seconds, "rows": n, "schema": schema}


def probe_due(args) -> dict:
    import datetime as dt
    import io

    from devicelog.reports import due as report
    from devicelog.store import due as store_due

    engine, settings = open_engine(args.db)
    as_of = dt.date.fromisoformat(args.as_of)
    until = (as_of + dt.timedelta(days=args.within)).isoformat()
    baseline = due_inputs_baseline(args.db, until)

    # What `devicelog due --format json` runs: the list (from the due table when it is
    # fresh), then render_json.
    t0 = time.perf_counter()
    with engine.connect() as conn:
        dl = store_due.due_list(conn, as_of=as_of, settings=settings, within_days=args.within)
    t1 = time.perf_counter()
    out = io.StringIO()
    report.render_json(dl, out)
    path, items = "due_list + render_json", len(dl.entries)
    t2 = time.perf_counter()
    return {
        "baseline": baseline,
        "path": path,
        "list_seconds": t1 - t0,
        "render_seconds": t2 - t1,
        "seconds": t2 - t0,
        "items": items,
        "json_chars": len(out.getvalue()),
    }


def probe_due_baseline(args) -> dict:
    """The baseline command: a Python that only imports sqlite3 and reads the inputs."""
    import datetime as dt

    until = (dt.date.fromisoformat(args.as_of) + dt.timedelta(days=args.within)).isoformat()
    return due_inputs_baseline(args.db, until)


def probe_import_baseline(args) -> dict:
    """The storage limit of an import: parse the document, insert its events with one
    ``executemany`` into a new file (no checks, no audit, no indexes)."""
    with open(args.doc, encoding="utf-8") as fh:
        doc = json.load(fh)
    conn = sqlite3.connect(args.db)
    conn.execute(
        "CREATE TABLE event (id INTEGER PRIMARY KEY, device_serial TEXT, occurred_on TEXT, author TEXT, "
        "recorded_at TEXT, data TEXT)"
    )
    rows = (
        (e.get("device_serial"), e.get("occurred_on"), e.get("author"), e.get("recorded_at"), json.dumps(e.get("data")))
        for e in doc.get("events", [])
    )
    with conn:
        conn.executemany(
            "INSERT INTO event (device_serial, occurred_on, author, recorded_at, data) VALUES (?, ?, ?, ?, ?)", rows
        )
    n = conn.execute("SELECT count(*) FROM event").fetchone()[0]
    conn.close()
    return {"events": n}


# ----------------------------------------------------------------------- history


def probe_history(args) -> dict:
    import datetime as dt

    from devicelog.clinic.forecast import forecast_device
    from devicelog.reports import history as report
    from devicelog.store import queries
    from devicelog.store.db import read_session

    engine, settings = open_engine(args.db)
    as_of = dt.date.fromisoformat(args.as_of)
    serials = args.serials.split(",")

    def open_device(serial: str) -> tuple[int, int]:
        """What opening a device's history reads and builds: history, forecast, report."""
        with read_session(engine) as session:
            history = queries.history_by_serial(session, serial)
            drugs = queries.drugs_by_code(session)
            forecast = forecast_device(history, settings, drugs)
            corrections = report.load_corrections(session, [history.device.id])
            built = report.build_report([history], corrections, settings, drugs, as_of)
        return len(history.events), len(built.timeline), len(forecast.items)

    conn = ro_connect(args.db)

    def baseline(serial: str) -> int:
        return len(
            conn.execute(
                "SELECT * FROM event WHERE device_id = (SELECT id FROM device WHERE serial = ?)", (serial,)
            ).fetchall()
        )

    open_device(serials[-1])  # warm: the TUI is a running process when a history opens
    baseline(serials[-1])
    runs = []
    for serial in serials:
        for _ in range(args.reps):
            t0 = time.perf_counter()
            rows = baseline(serial)
            t1 = time.perf_counter()
            events, timeline, due_items = open_device(serial)
            t2 = time.perf_counter()
            runs.append({"serial": serial, "rows": rows, "events": events, "timeline": timeline, "due_items": due_items,
                         "baseline": t1 - t0, "seconds": t2 - t1})
    conn.close()
    return {"runs": runs}


# ------------------------------------------------------------------------ search

SEARCH_LIKE_SQL = (
    "SELECT * FROM patient WHERE mrn LIKE :p ESCAPE '\\' OR name LIKE :p ESCAPE '\\' OR id IN "
    "(SELECT patient_id FROM device WHERE serial LIKE :p ESCAPE '\\') ORDER BY name, id LIMIT :n"
)
#: With the narrow ``patient_search`` table (lower-cased MRN, name and serials per patient).
SEARCH_TABLE_SQL = (
    "SELECT p.* FROM (SELECT patient_id, name FROM patient_search WHERE instr(haystack, lower(:t)) > 0 "
    "ORDER BY +name, patient_id LIMIT :n) s JOIN patient p ON p.id = s.patient_id ORDER BY s.name, s.patient_id"
)
# ``+name``: scan the table and sort what matched; walking the name index instead reads
# every row at random when few match (about 100 ms at 100,000 patients against 13 ms).


#: With the trigram index of revision 0005: a 3+ character term with at most 5,000 matches
#: is sorted from patient_search_fts; otherwise the covering name index is walked until :n
#: match (one plain statement; the LIMIT expressions switch off the branch not needed).
SEARCH_FTS_SQL = (
    "WITH m(fts) AS (SELECT length(:t) >= 3 AND (SELECT count(*) FROM (SELECT 1 FROM patient_search_fts "
    "WHERE patient_search_fts MATCH '\"' || replace(:t, '\"', '\"\"') || '\"' LIMIT 5001)) <= 5000), "
    "hit(patient_id, name) AS ("
    "SELECT * FROM (SELECT s.patient_id, s.name FROM patient_search_fts "
    "JOIN patient_search s ON s.patient_id = patient_search_fts.rowid "
    "WHERE patient_search_fts MATCH '\"' || replace(:t, '\"', '\"\"') || '\"' "
    "ORDER BY s.name, s.patient_id LIMIT (SELECT CASE WHEN fts THEN :n ELSE 0 END FROM m)) "
    "UNION ALL "
    "SELECT * FROM (SELECT patient_id, name FROM patient_search WHERE instr(haystack, lower(:t)) > 0 "
    "ORDER BY name, patient_id LIMIT (SELECT CASE WHEN fts THEN 0 ELSE :n END FROM m))) "
    "SELECT p.* FROM hit JOIN patient p ON p.id = hit.patient_id ORDER BY hit.name, hit.patient_id"
)


def search_baseline_sql(conn: sqlite3.Connection) -> tuple[str, str]:
    """The fastest plain query for the same patients over whatever the file has."""
    if "haystack" in table_columns(conn, "patient_search_fts"):
        return SEARCH_FTS_SQL, (
            "trigram index (patient_search_fts) for 3+ characters with ≤ 5,000 matches, sorted; "
            "else the covering name index walked; then the patient rows"
        )
    if {"patient_id", "haystack", "name"} <= set(table_columns(conn, "patient_search")):
        return SEARCH_TABLE_SQL, "one instr() scan of the patient_search table, matches sorted, then the patient rows"
    return SEARCH_LIKE_SQL, "LIKE over patient and device"


def probe_search(args) -> dict:
    """Type each term one character at a time; time each prefix's search."""
    from devicelog.store import queries
    from devicelog.store.db import read_session

    try:
        from devicelog.tui.state import search as tui_search
    except ImportError:  # the TUI may call something else now
        tui_search = None

    engine, settings = open_engine(args.db)
    terms = json.loads(Path(args.terms_file).read_text())
    conn = ro_connect(args.db)
    base_sql, base_note = search_baseline_sql(conn)
    with read_session(engine) as session:  # warm
        queries.search_patients(session, "a", limit=50)
        catalogue = queries.catalogue(session)
    tui_kwargs, tui_note = None, "devicelog.tui.state.search not found"
    if tui_search is not None:
        tui_kwargs, tui_note = _call_kwargs(
            tui_search, engine=engine, as_of=_date(args.as_of), settings=settings, catalogue=catalogue, limit=50
        )
    keys = []
    started = time.perf_counter()
    for kind, term in terms:
        if time.perf_counter() - started > args.budget:
            break
        for i in range(1, len(term) + 1):
            prefix = term[:i]
            t0 = time.perf_counter()
            text = prefix.strip()
            escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            base = conn.execute(base_sql, {"t": text, "p": f"%{escaped}%", "n": 50}).fetchall() if text else []
            t1 = time.perf_counter()
            with read_session(engine) as session:
                hits = queries.search_patients(session, prefix, limit=50)
            t2 = time.perf_counter()
            row = {"kind": kind, "prefix": prefix, "baseline": t1 - t0, "seconds": t2 - t1, "hits": len(hits), "base_hits": len(base)}
            if tui_kwargs is not None:
                tui_search(text=prefix, **tui_kwargs)
                row["tui_seconds"] = time.perf_counter() - t2
            keys.append(row)
    conn.close()
    return {"keys": keys, "tui_function": tui_note, "baseline": base_note}


def _date(text: str | None):
    import datetime as dt

    return dt.date.fromisoformat(text) if text else dt.date.today()


def _call_kwargs(fn, **available) -> tuple[dict | None, str]:
    """Keyword arguments for ``fn`` (all but ``text``) from what is available, or None
    and why when it asks for something else: the TUI's function may change."""
    import inspect

    name = f"{fn.__module__}.{fn.__qualname__}"
    kwargs = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name == "text":
            continue
        if p.name in available:
            kwargs[p.name] = available[p.name]
        elif p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            return None, f"{name} not measured: it asks for {p.name!r}"
    return kwargs, name


# --------------------------------------------------------------------------- tui


def _quiet_screen(app) -> bool:
    """No message waiting anywhere on screen and no worker pending or running."""
    from textual.worker import WorkerState

    if any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
        return False
    if app.message_queue_size:
        return False
    screen = app.screen
    if screen.message_queue_size:
        return False
    return not any(w.message_queue_size for w in screen.walk_children(with_self=False))


async def _settled(app, *, since_worker: int | None = None, timeout: float = 900.0) -> bool:
    """Wait until the app is quiet on three polls in a row (2 ms apart), then for the
    next screen refresh.  ``since_worker``: also wait until a worker newer than that
    count has been started (typing starts a search worker).  False on timeout."""
    import asyncio

    deadline = time.perf_counter() + timeout
    quiet = 0
    waited_worker = 0.0
    while quiet < 3:
        await asyncio.sleep(0.002)
        if time.perf_counter() > deadline:
            return False
        if since_worker is not None and _WORKERS_STARTED[0] <= since_worker and waited_worker < 0.25:
            waited_worker += 0.002  # give the keystroke's worker a moment to appear
            quiet = 0
            continue
        quiet = quiet + 1 if _quiet_screen(app) else 0
    done = asyncio.get_running_loop().create_future()
    app.call_after_refresh(lambda: done.done() or done.set_result(None))
    await asyncio.wait_for(done, timeout=5)
    return True


_WORKERS_STARTED = [0]
#: When the app last handed a frame to its driver (perf_counter): what a keystroke waits for.
_LAST_FRAME = [0.0]


def _note_frames() -> None:
    """Record the moment each frame is composed and handed to the driver (``App._display``),
    so a keystroke is timed to the frame that showed its result, not to the end of the
    polls that find the app idle afterwards (3 polls 2 ms apart and a refresh round trip,
    6-10 ms more, up to 25 ms on a loaded machine).  A later unrelated frame (the caret's
    blink) can only make the figure larger, never smaller."""
    from textual.app import App

    original = App._display

    def _display(self, screen, renderable):
        original(self, screen, renderable)
        _LAST_FRAME[0] = time.perf_counter()

    App._display = _display


def _count_workers() -> None:
    from textual.worker_manager import WorkerManager

    original = WorkerManager.add_worker

    def add_worker(self, *args, **kwargs):
        _WORKERS_STARTED[0] += 1
        return original(self, *args, **kwargs)

    WorkerManager.add_worker = add_worker


def _describe(app) -> dict:
    from textual.widgets import DataTable, Input

    screen = app.screen
    # DataTable and the main screen's ResultsTable (devicelog.tui.widgets.results) both have row_count.
    tables = [t.row_count for t in screen.query("*") if isinstance(t, DataTable) or type(t).__name__ == "ResultsTable"]
    return {"screen": type(screen).__name__, "table_rows": tables, "inputs": len(screen.query(Input))}


def _run_headless(autopilot) -> None:
    """Make every ``App.run()`` in this process run headless under ``autopilot``."""
    import asyncio

    from textual.app import App

    def run(self, *a, **k):
        return asyncio.run(self.run_async(headless=True, size=(100, 30), auto_pilot=autopilot))

    App.run = run


def _send_key(app, ch: str) -> None:
    """What a terminal keystroke becomes, without the pilot's idle waits (≥ 40 ms each)."""
    from textual import events

    key = ch if ch.isalnum() else {" ": "space", "-": "minus", ".": "full_stop", "'": "apostrophe"}.get(ch, ch)
    event = events.Key(key, ch)
    event.set_sender(app)
    app._driver.send_message(event)


def probe_tui(args) -> dict:
    """Start the real ``devicelog tui`` (through cli.main) headless; note when its first
    screen is usable; optionally type search terms into the focused input."""
    result: dict = {}
    terms = json.loads(Path(args.type_terms_file).read_text()) if args.type_terms_file else []

    async def autopilot(pilot) -> None:
        from textual.widgets import Input

        app = pilot.app
        result["ready_epoch"] = time.time()  # the first screen is painted
        ok = await _settled(app, timeout=args.timeout)
        result["usable_epoch"] = time.time()
        result["usable"] = ok
        result.update(_describe(app))
        keys = []
        if ok and terms:
            box = app.focused if isinstance(app.focused, Input) else app.screen.query(Input).first()
            box.focus()
            started = time.perf_counter()
            for kind, term in terms:
                if time.perf_counter() - started > args.budget:
                    break
                box.value = ""
                await _settled(app)
                for i, ch in enumerate(term, 1):
                    before = _WORKERS_STARTED[0]
                    t0 = time.perf_counter()
                    _send_key(app, ch)
                    settled = await _settled(app, since_worker=before, timeout=60)
                    idle = time.perf_counter() - t0
                    # The last frame before the app went idle showed the keystroke's result.
                    seconds = _LAST_FRAME[0] - t0 if _LAST_FRAME[0] > t0 else idle
                    keys.append({"kind": kind, "prefix": term[:i], "seconds": seconds, "idle_seconds": idle,
                                 "value_ok": box.value == term[:i], "settled": settled})
            result["keys"] = keys
            result.update({"after_typing": _describe(app)})
        app.exit()

    _count_workers()
    _note_frames()
    _run_headless(autopilot)
    argv = ["--db", args.db, "tui"]
    from devicelog import cli

    if args.as_of:
        import datetime as dt

        day = dt.date.fromisoformat(args.as_of)
        cli.Context.today = property(lambda self: day)  # the demo's today, as `demo --open` does
    code = cli.main(argv)
    result["exit_code"] = code
    return result


def probe_tui_bare(args) -> dict:
    """The baseline: a bare Textual app with the same libraries and the main screen's
    widgets, no data, exiting when its first screen is usable."""
    result: dict = {}

    import pendulum  # noqa: F401  the libraries devicelog's TUI imports
    import sqlmodel  # noqa: F401
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable, Footer, Header, Input, Static

    class Bare(App):
        def compose(self) -> ComposeResult:
            yield Header()
            yield Static("Loading…")
            yield Input(placeholder="Search", compact=True)
            yield DataTable(cursor_type="row", zebra_stripes=True)
            yield Static("")
            yield Footer()

        def on_mount(self) -> None:
            self.query_one(DataTable).add_columns("MRN", "Patient", "Most urgent", "Serial", "Device")
            self.query_one(Input).focus()

    async def autopilot(pilot) -> None:
        result["ready_epoch"] = time.time()
        ok = await _settled(pilot.app, timeout=args.timeout)
        result["usable_epoch"] = time.time()
        result["usable"] = ok
        result.update(_describe(pilot.app))
        pilot.app.exit()

    _run_headless(autopilot)
    Bare().run()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/probe.py")
    parser.add_argument("what", choices=["due", "due-baseline", "import-baseline", "history", "search", "tui", "tui-bare"])
    parser.add_argument("--doc")
    parser.add_argument("--db")
    parser.add_argument("--as-of")
    parser.add_argument("--within", type=int, default=30)
    parser.add_argument("--serials", default="")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--terms-file")
    parser.add_argument("--type-terms-file")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of typing at most")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    probes = {
        "due": probe_due,
        "due-baseline": probe_due_baseline,
        "import-baseline": probe_import_baseline,
        "history": probe_history,
        "search": probe_search,
        "tui": probe_tui,
        "tui-bare": probe_tui_bare,
    }
    emit(probes[args.what](args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
