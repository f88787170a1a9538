"""Alembic environment: runs on the connection ``devicelog.store.schema`` hands in.

devicelog runs its migrations programmatically (no alembic.ini); a developer making a
new revision uses ``python -m devicelog.store.schema revision -m "..." --autogenerate``
against a scratch database given with ``--db``.
"""

from alembic import context
from sqlmodel import SQLModel

from devicelog.store import tables  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata


def include_name(name, type_, parent_names) -> bool:
    """Autogenerate leaves the search index of revision 0005 alone (FTS5 and its shadow
    tables, PostgreSQL trigram indexes): the table models do not describe it."""
    from devicelog.store.schema import is_search_index_object

    return not is_search_index_object(name, type_)


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        from devicelog.store.db import make_engine

        engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
        with engine.begin() as connection:
            _run(connection)
        return
    _run(connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
