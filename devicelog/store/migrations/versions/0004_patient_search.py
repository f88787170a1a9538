"""Patient search at 100,000 patients: ``patient_search``, one narrow row per patient.

``queries.search_patients`` finds patients whose MRN, name or a device serial contains
the typed text.  Scanning ``patient`` and ``device`` with ``LIKE '%text%'`` took
0.1-0.6 s per keystroke at 100,000 patients; this table holds, per patient, the name
(to sort by) and one lower-case ``haystack`` (MRN, name and every device serial, one
per line), so a keystroke is one scan of a narrow table with ``instr``.

On SQLite, triggers keep it in step with ``patient`` and ``device`` (every writer,
including bulk inserts, goes through them); the rows already there are filled here.
On PostgreSQL the table exists (the schema is the same everywhere) but search uses
ILIKE on the clinical tables and the table stays empty.

A derived index, not a clinical record: not audited, not append-only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from devicelog.store.schema import create_search_triggers, drop_search_triggers, fill_search

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "patient_search",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("haystack", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id"),
    )
    # Covering: a keystroke walks it in name order and stops at the limit, never touching the table.
    op.create_index("ix_patient_search_name", "patient_search", ["name", "patient_id", "haystack"])
    conn = op.get_bind()
    create_search_triggers(conn, "lower")  # as it was made; revision 0008 folds accents too
    fill_search(conn, "lower")


def downgrade() -> None:
    drop_search_triggers(op.get_bind())
    op.drop_index("ix_patient_search_name", table_name="patient_search")
    op.drop_table("patient_search")
