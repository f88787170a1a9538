"""Patient search looked up, not scanned: a trigram index over the search haystack.

Revision 0004 made a keystroke one walk of ``patient_search`` in name order testing
each row, which stops at the 50th match: quick when many patients match, but a term
that matches few (a full MRN or serial, ``DEMO-09120``) reads all 100,000 rows, about
0.2 s per keystroke.  This revision adds an index that finds the few directly:

- SQLite: ``patient_search_fts``, an FTS5 table with the ``trigram`` tokenizer
  (``case_sensitive 0``) holding each patient's haystack under the patient's id,
  filled here from ``patient_search`` and kept in step by three triggers on
  ``patient_search`` (which the 0004 triggers keep in step with ``patient`` and
  ``device``), so every writer, bulk loads included, updates it.  It also makes
  ``ix_patient_search_name`` the covering (name, patient_id, haystack) index that
  0004 declares when a pre-release 0004 made it on (name, patient_id) only.
- PostgreSQL: ``pg_trgm`` (created when available and allowed; a "trusted"
  extension since PostgreSQL 13) and GIN trigram indexes on ``patient.mrn``,
  ``patient.name`` and ``device.serial``, which serve ``ILIKE '%term%'``.  Without
  the extension nothing is created and search keeps its ILIKE scans.

How a query uses them: ``devicelog.store.queries.search_patients``.  Derived data,
not clinical records: not audited; downgrade drops them (``pg_trgm`` stays).  The
table models do not describe them (``schema.is_search_index_object`` says which
reflected objects they are).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

"""
from typing import Sequence, Union

from alembic import op

from devicelog.store.schema import create_search_index, drop_search_index

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    create_search_index(op.get_bind())


def downgrade() -> None:
    drop_search_index(op.get_bind())
