"""The maintained next-due table (``due_item``), forecast notes (``device_note``) and
the fingerprint of what they were computed with (``forecast_cache``).

A derived cache, not a clinical record (``devicelog.store.forecasts``): no audit, no
append-only triggers.  The tables are created empty; the first open
(``devicelog.store.schema.prepare``) fills them with the opener's settings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "due_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("patient_mrn", sa.Text(), nullable=False),
        sa.Column("patient_name", sa.Text(), nullable=False),
        sa.Column("device_serial", sa.Text(), nullable=False),
        sa.Column("device_model", sa.Text(), nullable=False),
        sa.Column("device_kind", sa.String(length=40), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("latest_safe_on", sa.Date(), nullable=True),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("source_event_id", sa.Integer(), nullable=True),
        sa.Column("elective", sa.Boolean(), nullable=False),
        sa.Column("suppressed_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_due_item_listed", "due_item", ["suppressed_reason", "due_on"])
    op.create_index("ix_due_item_severity", "due_item", ["severity", "due_on"])
    op.create_index("ix_due_item_device", "due_item", ["device_id"])
    op.create_table(
        "device_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("patient_mrn", sa.Text(), nullable=False),
        sa.Column("patient_name", sa.Text(), nullable=False),
        sa.Column("device_serial", sa.Text(), nullable=False),
        sa.Column("device_model", sa.Text(), nullable=False),
        sa.Column("device_kind", sa.String(length=40), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_device_note_device", "device_note", ["device_id"])
    op.create_table(
        "forecast_cache",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("settings_json", sa.Text(), nullable=False),
        sa.Column("settings_hash", sa.String(length=64), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("catalogue_hash", sa.String(length=64), nullable=False),
        sa.Column("built_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("forecast_cache")
    op.drop_index("ix_device_note_device", table_name="device_note")
    op.drop_table("device_note")
    op.drop_index("ix_due_item_device", table_name="due_item")
    op.drop_index("ix_due_item_severity", table_name="due_item")
    op.drop_index("ix_due_item_listed", table_name="due_item")
    op.drop_table("due_item")
