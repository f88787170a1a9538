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

from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, select

from devicelog.clinic.catalogue import Catalogue, shipped_catalogue
from devicelog.store import tables

#: The newest revision this devicelog knows (a test checks it is the migrations' head).
HEAD = "0002"
MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x6465_7673  # "devs"

#: Triggers guarding append-only rows: (name, table, operation). Created by revision 0002.
PROTECTIONS = [
    ("event_no_update", "event", "UPDATE"),
    ("event_no_delete", "event", "DELETE"),
    ("audit_no_update", "audit", "UPDATE"),
    ("audit_no_delete", "audit", "DELETE"),
    ("patient_no_delete", "patient", "DELETE"),
    ("device_no_delete", "device", "DELETE"),
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


@lru_cache(maxsize=1)
def known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    return frozenset(s.revision for s in scripts.walk_revisions())


def current_revision(conn) -> str | None:
    """The database's revision; ``"0001"`` for a database made before versioning; None when empty."""
    names = set(inspect(conn).get_table_names())
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


def prepare(engine: Engine, catalogue: Catalogue | None = None) -> None:
    """Bring the database up to date: migrations, then missing catalogue entries; one transaction.

    Raises ``SchemaError`` (the database left as it was) when its revision is unknown.
    """
    catalogue = catalogue or shipped_catalogue()
    with engine.connect() as conn:  # a read first: most opens have nothing to do
        revision = current_revision(conn)
        check_known(revision)
        if revision == HEAD:
            with Session(bind=conn) as session:
                if not _missing_catalogue(session, catalogue):
                    return
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


def _upgrade(conn, revision: str | None) -> None:
    from alembic import command

    cfg = alembic_config(conn)
    names = set(inspect(conn).get_table_names())
    if revision == "0001" and "alembic_version" not in names:
        command.stamp(cfg, "0001")  # made by create_all before versioning: that is revision 0001
    command.upgrade(cfg, "head")


def _missing_catalogue(session, catalogue: Catalogue) -> tuple[list, list]:
    have_models = set(session.exec(select(tables.DeviceModelRow.code)).all())
    have_drugs = set(session.exec(select(tables.DrugRow.code)).all())
    models = [m for m in catalogue.device_models if m.code not in have_models]
    drugs = [d for d in catalogue.drugs if d.code not in have_drugs]
    return (models, drugs) if models or drugs else ()


def seed_catalogue(session, catalogue: Catalogue) -> None:
    """Add the catalogue entries the database does not have yet (audited)."""
    from devicelog import __version__
    from devicelog.store import audit

    missing = _missing_catalogue(session, catalogue)
    if not missing:
        return
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


# --------------------------------------------------------------------- append-only protection


def create_protections(conn) -> None:
    """Triggers refusing UPDATE/DELETE of append-only rows (SQLite and PostgreSQL)."""
    if conn.dialect.name == "sqlite":
        for name, table, op in PROTECTIONS:
            conn.execute(
                text(
                    f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {op} ON {table} BEGIN "
                    f"SELECT RAISE(ABORT, 'devicelog: {table} rows are never {op.lower()}d "
                    f"(record an amendment instead)'); END"
                )
            )
    elif conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION devicelog_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'devicelog: % rows are never changed by %', TG_TABLE_NAME, TG_OP; END $$"
            )
        )
        for name, table, op in PROTECTIONS:
            conn.execute(text(f"CREATE TRIGGER {name} BEFORE {op} ON {table} FOR EACH ROW EXECUTE FUNCTION devicelog_refuse()"))
        for table in sorted({t for _, t, _ in PROTECTIONS}):
            conn.execute(
                text(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION devicelog_refuse()")
            )


def drop_protections(conn) -> None:
    for name, table, _ in PROTECTIONS:
        if conn.dialect.name == "sqlite":
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        else:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
    if conn.dialect.name == "postgresql":
        for table in sorted({t for _, t, _ in PROTECTIONS}):
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}"))
        conn.execute(text("DROP FUNCTION IF EXISTS devicelog_refuse()"))


def missing_protections(conn) -> list[str]:
    """Names of the append-only triggers the database lacks (dropped outside devicelog)."""
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
    elif conn.dialect.name == "postgresql":
        rows = conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
    else:
        return []
    have = {r[0] for r in rows}
    return [name for name, _, _ in PROTECTIONS if name not in have]


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
