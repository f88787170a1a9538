"""Safety notices: advisories and recalls, the devices they match, what was done (issue 18).

Three append-only tables (UPDATE and DELETE refused by triggers, like ``event``;
``schema.PROTECTIONS`` / ``REPLACE_GUARDS``):

* ``advisory``: a notice as imported (title, date, source, reference, recommended
  action, class, the matching rules as JSON, the text that could not be read);
* ``advisory_match``: a device the notice concerns, its tier (1 serial/UDI, 2 lot,
  3 model and manufacture date, 4 possible) and the evidence, one per notice and device;
* ``advisory_action``: the acknowledgement that closes a device's due item: what was done,
  by whom, when.

A match without an acknowledgement gives the device a due item (``clinic.advisory``), so
these tables feed the stored due table (``store.forecasts``): every write to them
refreshes the devices concerned in the same transaction.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
from devicelog.store.schema import create_protections, drop_protections

# revision identifiers, used by Alembic.
revision: str = "0009"
down_revision: Union[str, Sequence[str], None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLES = ("advisory", "advisory_match", "advisory_action")


def upgrade() -> None:
    op.create_table(
        "advisory",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=60), nullable=False),
        sa.Column("recommended_action", sa.Text(), nullable=False),
        sa.Column("notice_class", sa.String(length=3), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("unparsed", sa.JSON(), nullable=False),
        sa.Column("form", sa.String(length=20), nullable=False),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "advisory_match",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("advisory_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("matched_on", sa.Date(), nullable=False),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["advisory_id"], ["advisory.id"]),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_advisory_match_pair", "advisory_match", ["advisory_id", "device_id"], unique=True)
    op.create_index("ix_advisory_match_device_id", "advisory_match", ["device_id"], unique=False)
    op.create_table(
        "advisory_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("advisory_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("done_on", sa.Date(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["advisory_id"], ["advisory.id"]),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_advisory_action_device_id", "advisory_action", ["device_id"], unique=False)
    create_protections(op.get_bind(), tables=TABLES)


def downgrade() -> None:
    drop_protections(op.get_bind(), tables=TABLES)
    for table in reversed(TABLES):
        op.drop_table(table)
