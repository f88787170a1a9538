"""Acknowledgements and snoozes of due items (issue 14.2): the ``due_ack`` table.

Append-only and audited like ``event`` (``devicelog.store.acks``): triggers refuse
UPDATE and DELETE (and on SQLite an ``INSERT OR REPLACE``); a withdrawal is a new row.
The table starts empty, so there is nothing to add to the audit trail's baseline.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from devicelog.store.schema import create_protections, drop_protections

# revision identifiers, used by Alembic.
revision: str = "0010"
down_revision: Union[str, Sequence[str], None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "due_ack",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("item_key", sa.String(length=80), nullable=False),
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("withdraws_id", sa.Integer(), nullable=True),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["withdraws_id"], ["due_ack.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_due_ack_key", "due_ack", ["item_key", "id"])
    op.create_index("ix_due_ack_device", "due_ack", ["device_id"])
    create_protections(op.get_bind(), tables=("due_ack",))


def downgrade() -> None:
    drop_protections(op.get_bind(), tables=("due_ack",))
    op.drop_index("ix_due_ack_device", table_name="due_ack")
    op.drop_index("ix_due_ack_key", table_name="due_ack")
    op.drop_table("due_ack")
