"""Patient search folds accents as well as case, on SQLite and PostgreSQL alike.

"nunez" found no one while "Núñ" found O'Brien-Núñez (issue 13.14).  The fold
(``devicelog.store.folding``: NFKD, combining marks dropped, lower case) is applied to
the typed term in Python and to the stored values in the database, through indexes:

- SQLite: the search triggers build each ``patient_search`` haystack with
  ``devicelog_fold`` (the Python function, registered on every devicelog connection)
  instead of ``lower``; every haystack is rewritten here, and the trigram index
  (revision 0005) follows through its triggers.
- PostgreSQL: the SQL function ``devicelog_fold`` (IMMUTABLE), and GIN trigram indexes
  on ``devicelog_fold(mrn)``, ``devicelog_fold(name)`` and ``devicelog_fold(serial)``
  in place of revision 0005's on the plain columns.

Derived data only; nothing clinical changes.  Downgrade restores revision 0006's.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

"""
from typing import Sequence, Union

from alembic import op

from devicelog.store.schema import fold_search, unfold_search

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    fold_search(op.get_bind())


def downgrade() -> None:
    unfold_search(op.get_bind())
