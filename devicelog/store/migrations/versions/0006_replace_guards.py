"""Append-only rows can no longer be rewritten with ``INSERT OR REPLACE`` (SQLite).

SQLite carries out ``INSERT OR REPLACE`` by deleting the row in the way and inserting
the new one, and fires no DELETE trigger for that delete (``recursive_triggers`` is
off), so the 0002 triggers let an event, audit entry, patient or device be replaced
from the ``sqlite3`` shell.  This revision adds a BEFORE INSERT trigger per table that
refuses an insert which would replace a row (same id or same unique column):
``schema.REPLACE_GUARDS``.  PostgreSQL has no REPLACE (``ON CONFLICT DO UPDATE`` fires
the UPDATE trigger), so nothing changes there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

"""
from typing import Sequence, Union

from alembic import op

from devicelog.store.schema import create_replace_guards, drop_replace_guards

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    create_replace_guards(op.get_bind())


def downgrade() -> None:
    drop_replace_guards(op.get_bind())
