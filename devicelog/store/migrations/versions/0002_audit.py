"""The audit trail, and append-only protection of clinical records.

Adds the hash-chained ``audit`` table (``devicelog.store.audit``), records every row
already in the database in one baseline entry (so ``devicelog verify`` accounts for
data written before the trail existed), and adds triggers refusing:

* UPDATE and DELETE on ``event`` and ``audit`` (amendments and voids are new rows);
* DELETE on ``patient`` and ``device`` (a device's status changes; its row stays).

A later migration that rebuilds one of these tables (SQLite batch mode copies the
table) must create its triggers again: ``devicelog.store.schema.PROTECTIONS`` lists
them, and ``devicelog verify`` reports any that is missing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel

from devicelog.store import audit
from devicelog.store.schema import create_protections, drop_protections

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hash"),
        sa.UniqueConstraint("prev_hash"),
    )
    conn = op.get_bind()
    audit.baseline(conn, action="start of the audit trail: rows already recorded", author="devicelog migration 0002",
                   table_names=audit.BASELINE_TABLES)
    create_protections(conn)


def downgrade() -> None:
    drop_protections(op.get_bind())
    op.drop_table("audit")
