"""Opening a database: bring its schema up to date (Alembic) and its catalogue in step.

The schema is versioned by the Alembic revisions in ``devicelog/store/migrations``
(shipped inside the package; no alembic.ini).  :func:`prepare`, which every command
and test calls on opening, upgrades an older database in one transaction, takes a
database made before versioning as revision 0001, and refuses, untouched, a database
whose revision this devicelog does not know (made by a newer devicelog).

Making a new revision (developers): ``python -m devicelog.store.schema revision
-m "what changes" --autogenerate --db /tmp/scratch.db`` on a scratch database at
head, then read and correct what it wrote; bump :data:`HEAD`.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from sqlalchemy import Engine, text

#: The newest revision this devicelog knows (a test checks it is the migrations' head).
HEAD = "0011"
MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x6465_7673  # "devs"

#: Triggers guarding append-only rows: (name, table, operation). Created by revision 0002
#: for its tables, and by each later revision for the tables it adds
#: (``create_protections(conn, tables=...)``).
PROTECTIONS = [
    ("event_no_update", "event", "UPDATE"),
    ("event_no_delete", "event", "DELETE"),
    ("audit_no_update", "audit", "UPDATE"),
    ("audit_no_delete", "audit", "DELETE"),
    ("patient_no_delete", "patient", "DELETE"),
    ("device_no_delete", "device", "DELETE"),
    # Revision 0010: acknowledgements and snoozes of due items (``store.acks``).
    ("due_ack_no_update", "due_ack", "UPDATE"),
    ("due_ack_no_delete", "due_ack", "DELETE"),
    # Revision 0009: safety notices, their matches and what was done.
    *((f"{t}_no_{op.lower()}", t, op) for t in ("advisory", "advisory_match", "advisory_action") for op in ("UPDATE", "DELETE")),
]


class SchemaError(RuntimeError):
    """The database cannot be opened by this devicelog (e.g. it was made by a newer one)."""


def alembic_config(connection=None, url: str | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["connection"] = connection
    return cfg


_REVISION_LINE = re.compile(r"""^revision(?:\s*:\s*str)?\s*=\s*["']([^"']+)["']""", re.MULTILINE)


@functools.lru_cache(maxsize=1)
def known_revisions() -> frozenset[str]:
    """The revision ids of the shipped migrations, read from their files (alembic is not imported)."""
    found = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        match = _REVISION_LINE.search(path.read_text(encoding="utf-8"))
        if match:
            found.add(match.group(1))
    return frozenset(found)


def _tables_present(conn, names: tuple[str, ...]) -> set[str]:
    """Which of ``names`` exist, in one query (no reflection)."""
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        return {r[0] for r in rows} & set(names)
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = ANY (current_schemas(false))")
        )
        return {r[0] for r in rows} & set(names)
    from sqlalchemy import inspect

    return set(inspect(conn).get_table_names()) & set(names)


def current_revision(conn) -> str | None:
    """The database's revision; ``"0001"`` for a database made before versioning; None when empty."""
    names = _tables_present(conn, ("alembic_version", "patient"))
    if "alembic_version" in names:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return "0001" if "patient" in names else None


def check_known(revision: str | None) -> None:
    if revision is not None and revision != HEAD and revision not in known_revisions():
        raise SchemaError(
            f"this database is at schema revision {revision!r}, which this devicelog does not know "
            f"(it knows up to {HEAD!r}): it was made by a newer devicelog. Open it with that version; "
            "nothing was changed."
        )


def open_database(db, *, settings=None, create: bool = False, migrate: bool = True) -> Engine:
    """The engine of the devicelog database ``db`` (a path or URL, see ``db.resolve_url``):
    what every command opens.

    ``create``: a missing file or an empty database becomes a new devicelog database
    (``devicelog init``, ``demo``, the TUI after a yes); otherwise it is refused and
    nothing is made.  ``migrate``: bring it up to date (:func:`prepare`); without it the
    database is only checked to be a devicelog one (backup, restore and verify copy or
    check it as it is).  Raises ``db.DatabaseError`` with one line naming the database
    and what is wrong: missing, not a SQLite file, another program's SQLite file, a
    server that cannot be reached or refuses the login, a newer devicelog's database."""
    from sqlalchemy.exc import DBAPIError

    from devicelog.store.db import (
        DatabaseError, NoDatabase, NotDevicelog, explain, make_engine, resolve_url, shown, sqlite_path, tighten_modes,
    )

    where = shown(db)
    try:
        engine = make_engine(db, create=create)
    except NoDatabase:
        raise NoDatabase(_no_database(where)) from None
    try:
        if migrate:
            prepare(engine, settings=settings, create=create)
        else:
            with engine.connect() as conn:
                check_devicelog(conn, current_revision(conn), create=create)
    except BaseException as exc:
        engine.dispose()
        if isinstance(exc, NoDatabase):
            raise NoDatabase(_no_database(where)) from None
        if isinstance(exc, NotDevicelog):
            raise NotDevicelog(f"{where} is not a devicelog database: {exc}") from None
        if isinstance(exc, SchemaError):
            raise DatabaseError(f"{where}: {exc}") from None
        if isinstance(exc, DBAPIError):
            raise DatabaseError(explain(db, exc)) from None
        raise
    path = sqlite_path(resolve_url(db))
    if path is not None:
        tighten_modes(path)  # only once it is known to be devicelog's: another program's file is left alone
    return engine


def _no_database(where: str) -> str:
    import shlex

    return f"no devicelog database at {where} (to make a new one: devicelog init {shlex.quote(where)})"


def check_devicelog(conn, revision: str | None, *, create: bool) -> None:
    """A database without devicelog's tables is refused: another program's (it has tables
    of its own; never written into), or an empty one unless ``create``."""
    if revision is not None:
        return
    from devicelog.store.db import NoDatabase, NotDevicelog

    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"))
    elif conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = ANY (current_schemas(false))")
        )
    else:
        from sqlalchemy import inspect

        rows = [(n,) for n in inspect(conn).get_table_names()]
    others = sorted(r[0] for r in rows)
    if others:
        listed = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise NotDevicelog(f"it holds another program's tables ({listed}); nothing was written")
    if not create:
        raise NoDatabase("no devicelog database")


def prepare(engine: Engine, catalogue=None, *, settings=None, create: bool = True) -> None:
    """Bring the database up to date: migrations and missing catalogue entries in one
    transaction, then the due table (``store.forecasts``) for ``settings``.

    ``settings`` (the clinic's): the due table is rebuilt when it was computed with
    other settings; None keeps the settings it was computed with (and fills a new one
    with the defaults).  ``create``: an empty database gets devicelog's tables (else
    ``db.NoDatabase``); a database holding other tables is always refused
    (``db.DatabaseError``, :func:`check_devicelog`).  An open with nothing to do costs a few small queries: alembic,
    the ORM and the catalogue models are not imported.

    Raises ``SchemaError`` (the database left as it was) when its revision is unknown.
    """
    from devicelog.store import forecasts

    with engine.connect() as conn:  # a read first: most opens have nothing to do
        revision = current_revision(conn)
        check_devicelog(conn, revision, create=create)
        check_known(revision)
        if revision == HEAD and not _missing_codes(conn, catalogue):
            if forecasts.staleness(conn, settings) is None:
                return
            schema_current = True
        else:
            schema_current = False
    if not schema_current:
        _prepare_schema(engine, catalogue)
    forecasts.ensure_fresh(engine, settings)


def _prepare_schema(engine: Engine, catalogue) -> None:
    from sqlmodel import Session

    from devicelog.clinic.catalogue import shipped_catalogue

    catalogue = catalogue or shipped_catalogue()
    with engine.execution_options(devicelog_write=True).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        revision = current_revision(conn)  # again, under the write lock
        check_known(revision)
        if revision != HEAD:
            _upgrade(conn, revision)
        with Session(bind=conn) as session:  # joins this transaction; committed when it ends
            seed_catalogue(session, catalogue)
            session.flush()


@functools.lru_cache(maxsize=1)
def _shipped_codes() -> tuple[frozenset[str], frozenset[str]]:
    """The codes of the shipped catalogue, read as plain JSON (no models)."""
    from importlib import resources

    raw = json.loads(resources.files("devicelog.data").joinpath("catalogue.json").read_text(encoding="utf-8"))
    return frozenset(m["code"] for m in raw["device_models"]), frozenset(d["code"] for d in raw["drugs"])


def _missing_codes(conn, catalogue) -> bool:
    """Whether the database lacks a device model or drug of the catalogue (shipped by default)."""
    if catalogue is None:
        models, drugs = _shipped_codes()
    else:
        models = {m.code for m in catalogue.device_models}
        drugs = {d.code for d in catalogue.drugs}
    have_models = {r[0] for r in conn.execute(text("SELECT code FROM device_model"))}
    have_drugs = {r[0] for r in conn.execute(text("SELECT code FROM drug"))}
    return bool(models - have_models or drugs - have_drugs)


def _upgrade(conn, revision: str | None) -> None:
    from alembic import command

    cfg = alembic_config(conn)
    names = _tables_present(conn, ("alembic_version",))
    if revision == "0001" and "alembic_version" not in names:
        command.stamp(cfg, "0001")  # made by create_all before versioning: that is revision 0001
    command.upgrade(cfg, "head")


def _missing_catalogue(session, catalogue) -> tuple[list, list]:
    from sqlmodel import select

    from devicelog.store import tables

    have_models = set(session.exec(select(tables.DeviceModelRow.code)).all())
    have_drugs = set(session.exec(select(tables.DrugRow.code)).all())
    models = [m for m in catalogue.device_models if m.code not in have_models]
    drugs = [d for d in catalogue.drugs if d.code not in have_drugs]
    return (models, drugs) if models or drugs else ()


def seed_catalogue(session, catalogue) -> None:
    """Add the catalogue entries the database does not have yet (audited)."""
    from devicelog import __version__
    from devicelog.store import audit, forecasts, tables

    missing = _missing_catalogue(session, catalogue)
    if not missing:
        return
    hash_before = forecasts.catalogue_hash(session) if "forecast_cache" in _tables_present(session.connection(), ("forecast_cache",)) else None
    rows = [tables.DeviceModelRow(**m.model_dump(mode="json")) for m in missing[0]]
    rows += [tables.DrugRow(**d.model_dump(mode="json")) for d in missing[1]]
    session.add_all(rows)
    session.flush()
    audit.append(
        session,
        action="catalogue: add the shipped device models and drugs the database lacks",
        author=f"devicelog {__version__}",
        changes=[audit.Change(r.__tablename__, r.code, None, audit.row_values(r)) for r in rows],
    )
    if hash_before is not None:
        session.flush()
        forecasts.catalogue_added(session, hash_before)


# --------------------------------------------------------------------- append-only protection


#: SQLite only.  ``INSERT OR REPLACE`` deletes the row it replaces without firing a
#: DELETE trigger (SQLite fires none for REPLACE unless ``recursive_triggers`` is on,
#: and whoever tampers with ``sqlite3`` leaves it off), so an insert that would replace
#: an append-only row, by its id or any unique column, is refused before it happens.
#: PostgreSQL has no REPLACE: ``ON CONFLICT DO UPDATE`` fires the UPDATE trigger.
REPLACE_GUARDS = [
    ("event_no_replace", "event", "id = NEW.id"),
    ("audit_no_replace", "audit", "id = NEW.id OR hash = NEW.hash OR prev_hash = NEW.prev_hash"),
    ("patient_no_replace", "patient", "id = NEW.id OR mrn = NEW.mrn"),
    ("device_no_replace", "device", "id = NEW.id OR serial = NEW.serial"),
    ("advisory_no_replace", "advisory", "id = NEW.id"),
    ("advisory_match_no_replace", "advisory_match", "id = NEW.id OR (advisory_id = NEW.advisory_id AND device_id = NEW.device_id)"),
    ("advisory_action_no_replace", "advisory_action", "id = NEW.id"),
    ("due_ack_no_replace", "due_ack", "id = NEW.id"),
]

#: PostgreSQL: the one function every append-only trigger calls.
_PG_REFUSE_BODY = " BEGIN RAISE EXCEPTION 'devicelog: % rows are never changed by %', TG_TABLE_NAME, TG_OP; END "


def sqlite_protection_sql(protections=None, guards=None) -> dict[str, str]:
    """Each append-only trigger's SQL exactly as SQLite keeps it in ``sqlite_master``
    (every one devicelog makes, or those of ``protections`` and ``guards``)."""
    protections = PROTECTIONS if protections is None else protections
    guards = REPLACE_GUARDS if guards is None else guards
    sql = {
        name: (
            f"CREATE TRIGGER {name} BEFORE {op} ON {table} BEGIN "
            f"SELECT RAISE(ABORT, 'devicelog: {table} rows are never {op.lower()}d "
            f"(record an amendment instead)'); END"
        )
        for name, table, op in protections
    }
    for name, table, condition in guards:
        sql[name] = (
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
            f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {condition}) BEGIN "
            f"SELECT RAISE(ABORT, 'devicelog: {table} rows are never replaced "
            f"(record an amendment instead)'); END"
        )
    return sql


def pg_protection_sql(protections=None) -> dict[str, str]:
    """Each append-only trigger's definition as ``pg_get_triggerdef`` gives it (table unqualified)."""
    protections = PROTECTIONS if protections is None else protections
    sql = {
        name: f"CREATE TRIGGER {name} BEFORE {op} ON {table} FOR EACH ROW EXECUTE FUNCTION devicelog_refuse()"
        for name, table, op in protections
    }
    for table in sorted({t for _, t, _ in protections}):
        sql[f"{table}_no_truncate"] = (
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION devicelog_refuse()"
        )
    return sql


def _on_table(sql: str) -> str:
    """The table a trigger's SQL is ON."""
    return sql.split(" ON ", 1)[1].split(" ", 1)[0]


def create_protections(conn, tables: tuple[str, ...] | None = None) -> None:
    """Triggers refusing UPDATE, DELETE (and on SQLite REPLACE) of append-only rows, on
    ``tables`` (every protected table when None) that exist: a migration run before a
    later table was added skips its triggers, and the revision adding the table creates
    them with ``tables=`` naming it."""
    wanted = {t for _, t, _ in PROTECTIONS} | {t for _, t, _ in REPLACE_GUARDS}
    present = _tables_present(conn, tuple(wanted if tables is None else wanted & set(tables)))
    if conn.dialect.name == "sqlite":
        have = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))}
        for name, sql in sqlite_protection_sql().items():
            if name not in have and _on_table(sql) in present:
                conn.execute(text(sql))
    elif conn.dialect.name == "postgresql":
        conn.execute(
            text(f"CREATE OR REPLACE FUNCTION devicelog_refuse() RETURNS trigger LANGUAGE plpgsql AS $${_PG_REFUSE_BODY}$$")
        )
        for sql in pg_protection_sql().values():
            if _on_table(sql) in present:
                conn.execute(text(sql))


def drop_protections(conn, tables: tuple[str, ...] | None = None) -> None:
    """Drop the triggers :func:`create_protections` made on ``tables`` (all when None;
    the shared PostgreSQL function only then)."""
    def mine(sql: str) -> bool:
        return tables is None or _on_table(sql) in tables

    if conn.dialect.name == "sqlite":
        for name, sql in sqlite_protection_sql().items():
            if mine(sql):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
    elif conn.dialect.name == "postgresql":
        for name, sql in pg_protection_sql().items():
            if mine(sql):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {_on_table(sql)}"))
        if tables is None:
            conn.execute(text("DROP FUNCTION IF EXISTS devicelog_refuse()"))


def create_replace_guards(conn) -> None:
    """Revision 0006: the REPLACE guards on a database made before them (SQLite only)."""
    if conn.dialect.name == "sqlite":
        sql = sqlite_protection_sql()
        present = _tables_present(conn, tuple(t for _, t, _ in REPLACE_GUARDS))
        for name, table, _ in REPLACE_GUARDS:
            if table not in present:
                continue  # a later revision adds the table and its guard
            conn.execute(text(sql[name].replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS", 1)))


def drop_replace_guards(conn) -> None:
    if conn.dialect.name == "sqlite":
        for name, _, _ in REPLACE_GUARDS:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))


def protection_problems(conn) -> list[tuple[str, str]]:
    """The append-only triggers that are missing, disabled or not what devicelog made.

    Compares each trigger's whole SQL, not its name alone: a trigger whose body was
    replaced by ``SELECT 1`` under the same name is as good as dropped.  On
    PostgreSQL the shared function's body is compared too.  Returns (name, what)."""
    found: list[tuple[str, str]] = []
    if conn.dialect.name == "sqlite":
        have = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all())
        expected = sqlite_protection_sql()
        enabled = {name: True for name in have}
    elif conn.dialect.name == "postgresql":
        rows = conn.execute(
            text(
                "SELECT t.tgname, pg_get_triggerdef(t.oid), t.tgenabled FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
            )
        ).all()
        have = {name: re.sub(r" ON \S+\.", " ON ", sql) for name, sql, _ in rows}
        enabled = {name: state != "D" for name, _, state in rows}
        expected = pg_protection_sql()
        body = conn.execute(text("SELECT prosrc FROM pg_proc WHERE proname = 'devicelog_refuse'")).scalar()
        if body != _PG_REFUSE_BODY:
            found.append(("devicelog_refuse", "missing" if body is None else "changed: the function no longer refuses"))
    else:
        return []
    for name, sql in expected.items():
        if name not in have:
            found.append((name, "missing"))
        elif have[name] != sql:
            found.append((name, f"changed: {have[name]!r}"))
        elif not enabled[name]:
            found.append((name, "disabled"))
    return found


# --------------------------------------------------------------------- patient search (revision 0004)

def _search_row(f: str) -> str:
    """One patient's search row: MRN, name and device serials through ``f``, one per line."""
    return (
        f"SELECT p.id, p.name, {f}(p.mrn) || char(10) || {f}(p.name) || coalesce("
        f"(SELECT char(10) || {f}(group_concat(d.serial, char(10))) FROM device d WHERE d.patient_id = p.id), '') "
        "FROM patient p WHERE p.id = {pid}"
    )


def _search_triggers(f: str) -> dict[str, str]:
    """The triggers keeping ``patient_search`` in step, its haystack made with ``f``:
    ``devicelog_fold`` since revision 0008 (accents and case folded, store.folding),
    ``lower`` (ASCII only) before."""
    row = _search_row(f)
    return {
        "patient_search_patient_insert": "AFTER INSERT ON patient BEGIN "
        "INSERT OR REPLACE INTO patient_search (patient_id, name, haystack) "
        f"VALUES (new.id, new.name, {f}(new.mrn) || char(10) || {f}(new.name)); END",
        "patient_search_patient_update": "AFTER UPDATE OF mrn, name ON patient BEGIN "
        "INSERT OR REPLACE INTO patient_search (patient_id, name, haystack) " + row.format(pid="new.id") + "; END",
        "patient_search_device_insert": "AFTER INSERT ON device BEGIN "
        f"UPDATE patient_search SET haystack = haystack || char(10) || {f}(new.serial) WHERE patient_id = new.patient_id; END",
        "patient_search_device_update": "AFTER UPDATE OF serial, patient_id ON device BEGIN "
        "INSERT OR REPLACE INTO patient_search (patient_id, name, haystack) " + row.format(pid="old.patient_id") + "; "
        "INSERT OR REPLACE INTO patient_search (patient_id, name, haystack) " + row.format(pid="new.patient_id") + "; END",
    }


_SEARCH_TRIGGERS = _search_triggers("devicelog_fold")


def create_search_triggers(conn, f: str = "devicelog_fold") -> None:
    """SQLite: keep ``patient_search`` in step with every patient and device write."""
    if conn.dialect.name != "sqlite":
        return
    for name, body in _search_triggers(f).items():
        conn.execute(text(f"CREATE TRIGGER IF NOT EXISTS {name} {body}"))


def drop_search_triggers(conn) -> None:
    if conn.dialect.name != "sqlite":
        return
    for name in _SEARCH_TRIGGERS:
        conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))


def fill_search(conn, f: str = "devicelog_fold") -> None:
    """SQLite: (re)write every patient's search row."""
    if conn.dialect.name != "sqlite":
        return
    conn.execute(text("DELETE FROM patient_search"))
    conn.execute(
        text(
            "INSERT INTO patient_search (patient_id, name, haystack) "
            + _search_row(f).replace("WHERE p.id = {pid}", "").format()
        )
    )


# --------------------------------------------------------------------- search index (revision 0005)
#
# SQLite: ``patient_search_fts``, an FTS5 table with the trigram tokenizer over each
# patient's haystack (rowid = patient id), so a term of 3 characters or more is looked
# up instead of scanned.  It keeps its own copy of the haystack (a few MB at 100,000
# patients) rather than being an external-content table: the 0004 triggers rewrite
# ``patient_search`` rows with INSERT OR REPLACE, whose implicit delete fires no trigger,
# and an external-content index must be told the old text to forget.  With its own
# content the triggers below only ever say "forget row N" and "index row N".
# ``case_sensitive 0`` folds upper to lower case for every script FTS5 knows (Ö/ö,
# É/é, Σ/σ), not only ASCII as SQLite's lower() and LIKE do.
#
# PostgreSQL: GIN trigram indexes (extension ``pg_trgm``) on the three searched columns,
# which serve ``ILIKE '%term%'`` directly; without the extension (not installed, or not
# allowed to this user) search keeps its plain ILIKE scans.

SEARCH_FTS = "patient_search_fts"
#: FTS5's own tables behind ``patient_search_fts`` (``columnsize=0``: no ``_docsize``).
SEARCH_FTS_SHADOWS = tuple(f"{SEARCH_FTS}_{suffix}" for suffix in ("data", "idx", "content", "config"))
_SEARCH_FTS_TRIGGERS = {
    "patient_search_fts_insert": "AFTER INSERT ON patient_search BEGIN "
    f"DELETE FROM {SEARCH_FTS} WHERE rowid = new.patient_id; "
    f"INSERT INTO {SEARCH_FTS} (rowid, haystack) VALUES (new.patient_id, new.haystack); END",
    "patient_search_fts_update": "AFTER UPDATE OF patient_id, haystack ON patient_search BEGIN "
    f"DELETE FROM {SEARCH_FTS} WHERE rowid IN (old.patient_id, new.patient_id); "
    f"INSERT INTO {SEARCH_FTS} (rowid, haystack) VALUES (new.patient_id, new.haystack); END",
    "patient_search_fts_delete": "AFTER DELETE ON patient_search BEGIN "
    f"DELETE FROM {SEARCH_FTS} WHERE rowid = old.patient_id; END",
}
#: PostgreSQL trigram indexes of revision 0005 (ILIKE on the plain columns): name -> (table, column).
PG_SEARCH_INDEXES_0005 = {
    "ix_patient_mrn_trgm": ("patient", "mrn"),
    "ix_patient_name_trgm": ("patient", "name"),
    "ix_device_serial_trgm": ("device", "serial"),
}
#: Since revision 0008, on the folded columns (``devicelog_fold(column) LIKE``): name -> (table, column).
PG_SEARCH_INDEXES = {
    "ix_patient_mrn_fold_trgm": ("patient", "mrn"),
    "ix_patient_name_fold_trgm": ("patient", "name"),
    "ix_device_serial_fold_trgm": ("device", "serial"),
}


def is_search_index_object(name: str | None, type_: str) -> bool:
    """Whether a reflected table or index is the search index of revision 0005, which
    the table models do not describe (an FTS5 table and its shadow tables on SQLite,
    the optional trigram indexes on PostgreSQL).  For schema comparisons."""
    if type_ == "table":
        return name == SEARCH_FTS or name in SEARCH_FTS_SHADOWS
    if type_ == "index":
        return name in PG_SEARCH_INDEXES or name in PG_SEARCH_INDEXES_0005
    return False


def create_search_index(conn) -> None:
    """Build the search index of revision 0005 from the rows already there."""
    if conn.dialect.name == "sqlite":
        _ensure_covering_name_index(conn)
        conn.execute(
            text(f"CREATE VIRTUAL TABLE {SEARCH_FTS} USING fts5(haystack, tokenize = 'trigram case_sensitive 0', columnsize = 0)")
        )
        conn.execute(text(f"INSERT INTO {SEARCH_FTS} (rowid, haystack) SELECT patient_id, haystack FROM patient_search"))
        for name, body in _SEARCH_FTS_TRIGGERS.items():
            conn.execute(text(f"CREATE TRIGGER {name} {body}"))
    elif conn.dialect.name == "postgresql":
        schema_name = _pg_trgm_schema(conn)
        if schema_name is None:
            return
        ops = f'"{schema_name}".gin_trgm_ops'
        for name, (table, column) in PG_SEARCH_INDEXES_0005.items():
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({column} {ops})"))


def drop_search_index(conn) -> None:
    if conn.dialect.name == "sqlite":
        for name in _SEARCH_FTS_TRIGGERS:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        conn.execute(text(f"DROP TABLE IF EXISTS {SEARCH_FTS}"))
    elif conn.dialect.name == "postgresql":
        for name in PG_SEARCH_INDEXES_0005:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        # pg_trgm itself stays: it may have been there before, or serve something else.


def fold_search(conn) -> None:
    """Revision 0008: search folds accents and case (store.folding) on both databases.

    SQLite: the triggers make each haystack with ``devicelog_fold`` and every row is
    rewritten (the FTS triggers follow).  PostgreSQL: the ``devicelog_fold`` function,
    and the trigram indexes of revision 0005 replaced by the same on the folded columns
    (when pg_trgm can be had; else search scans, as before)."""
    from devicelog.store.folding import PG_FOLD_FUNCTION

    if conn.dialect.name == "sqlite":
        drop_search_triggers(conn)
        create_search_triggers(conn)
        fill_search(conn)
    elif conn.dialect.name == "postgresql":
        conn.execute(text(PG_FOLD_FUNCTION))
        schema_name = _pg_trgm_schema(conn)
        for name in PG_SEARCH_INDEXES_0005:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        if schema_name is None:
            return
        ops = f'"{schema_name}".gin_trgm_ops'
        for name, (table, column) in PG_SEARCH_INDEXES.items():
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin (devicelog_fold({column}) {ops})"))


def unfold_search(conn) -> None:
    """Back to revision 0007: ASCII-lowered haystacks, trigram indexes on the plain columns."""
    if conn.dialect.name == "sqlite":
        drop_search_triggers(conn)
        create_search_triggers(conn, "lower")
        fill_search(conn, "lower")
    elif conn.dialect.name == "postgresql":
        for name in PG_SEARCH_INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        conn.execute(text("DROP FUNCTION IF EXISTS devicelog_fold(text)"))
        schema_name = _pg_trgm_schema(conn)
        if schema_name is not None:
            ops = f'"{schema_name}".gin_trgm_ops'
            for name, (table, column) in PG_SEARCH_INDEXES_0005.items():
                conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({column} {ops})"))


def _ensure_covering_name_index(conn) -> None:
    """``ix_patient_search_name`` as revision 0004 declares it, (name, patient_id, haystack).

    Short terms walk it in name order; a database made by a pre-release 0004 has it on
    (name, patient_id) only, and then every row walked costs a table look-up (a walk of
    100,000 rows: ~220 ms against ~25 ms)."""
    columns = [r[2] for r in conn.execute(text("PRAGMA index_info(ix_patient_search_name)"))]
    if columns != ["name", "patient_id", "haystack"]:
        conn.execute(text("DROP INDEX IF EXISTS ix_patient_search_name"))
        conn.execute(text("CREATE INDEX ix_patient_search_name ON patient_search (name, patient_id, haystack)"))


def _pg_trgm_schema(conn) -> str | None:
    """The schema holding pg_trgm, installing it when it can be (in a savepoint: a refusal
    leaves the migration's transaction usable); None when it cannot be had."""
    found = conn.execute(text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'")).scalar()
    if found is not None:
        return found.strip('"')
    if conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar() is None:
        return None
    from sqlalchemy.exc import DBAPIError

    try:
        with conn.begin_nested():
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except DBAPIError:  # not allowed to this user (untrusted before PostgreSQL 13, or no CREATE)
        return None
    found = conn.execute(text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'")).scalar()
    return found.strip('"') if found is not None else None


def main(argv: list[str] | None = None) -> int:
    """``python -m devicelog.store.schema revision|upgrade|current ... --db PATH`` for developers."""
    import argparse

    from alembic import command

    parser = argparse.ArgumentParser(prog="python -m devicelog.store.schema")
    parser.add_argument("action", choices=["revision", "upgrade", "current", "history"])
    parser.add_argument("--db", required=True)
    parser.add_argument("-m", "--message", default="")
    parser.add_argument("--autogenerate", action="store_true")
    args = parser.parse_args(argv)
    cfg = alembic_config(url=str(args.db))
    if args.action == "revision":
        command.revision(cfg, message=args.message, autogenerate=args.autogenerate)
    elif args.action == "upgrade":
        command.upgrade(cfg, "head")
    elif args.action == "current":
        command.current(cfg)
    else:
        command.history(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
