"""Alembic migrations of the devicelog schema, run by ``devicelog.store.schema.prepare``."""
