"""The public UDI device identifiers of each catalogue device model (issue 13.7).

``device_model.device_identifiers``: a JSON list of GTIN-14 strings (AI 01), empty for
every model already there.  A scanned UDI whose device identifier one model lists
selects that model on the device form, and is refused on another model
(``devicelog.clinic.catalogue.identifier_contradiction``).  Not read by the forecast,
so the due table's catalogue fingerprint is unchanged.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from devicelog.store import audit

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # add_column, not a batch rebuild: device_model has no append-only triggers to lose,
    # and SQLite adds a column with a constant default in place.
    op.add_column("device_model", sa.Column("device_identifiers", sa.JSON(), nullable=False, server_default="[]"))
    # The audit trail records the new column's value of every model, so ``verify`` does
    # not take it for a change made outside devicelog.
    conn = op.get_bind()
    t = sa.Table("device_model", sa.MetaData(), autoload_with=conn)
    changes = []
    for row in conn.execute(sa.select(t).order_by(t.c.code)):
        after = audit.row_values(row)
        before = {k: v for k, v in after.items() if k != "device_identifiers"}
        changes.append(audit.Change("device_model", after["code"], before, after))
    audit.append(conn, action="catalogue: device models get their UDI device identifiers (none yet)",
                 author="devicelog migration 0006", changes=changes)


def downgrade() -> None:
    # Not a batch rebuild: the devices' foreign key to device_model forbids dropping the
    # table; SQLite (3.35+) and PostgreSQL both drop a column in place.
    op.execute("ALTER TABLE device_model DROP COLUMN device_identifiers")
