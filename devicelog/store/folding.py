"""How patient search folds text, so that "nunez" finds O'Brien-Núñez (issue 13.14).

One fold, in three places that must agree: Python folds the typed term
(:func:`fold`); SQLite computes the search haystack through the same Python function,
registered on every devicelog connection as ``devicelog_fold`` (``store.db``) and
called by the search triggers (``store.schema``); PostgreSQL has the SQL function
``devicelog_fold`` below, IMMUTABLE so that trigram indexes can be built on it.

The fold: compatibility decomposition (NFKD: ``é`` → ``e`` + U+0301, ``ﬁ`` → ``fi``),
the combining marks of :data:`MARK_RANGES` dropped, then lower case.  Letters with no
decomposition stay themselves (``ø``, ``ł``, ``ß``).  Python's ``str.lower`` and
PostgreSQL's ``lower()`` (under a UTF-8 locale) agree on the letters names use;
``casefold`` is not used because PostgreSQL has none (``ß`` would fold to ``ss`` on
one side only).
"""

from __future__ import annotations

import re
import unicodedata

#: The combining-mark blocks removed after decomposition (diacritical marks, their
#: extended and supplement blocks, marks for symbols, half marks).
MARK_RANGES = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F))

_MARKS = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in MARK_RANGES) + "]")


def fold(text: str | None) -> str | None:
    """``text`` as search compares it: accents dropped, lower case (None stays None)."""
    if text is None:
        return None
    return _MARKS.sub("", unicodedata.normalize("NFKD", text)).lower()


_PG_CLASS = "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in MARK_RANGES)

#: PostgreSQL's ``devicelog_fold``: the same steps (``normalize`` needs a UTF-8 database).
PG_FOLD_FUNCTION = (
    "CREATE OR REPLACE FUNCTION devicelog_fold(value text) RETURNS text "
    "LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS "
    f"$$ SELECT lower(regexp_replace(normalize(value, NFKD), '[{_PG_CLASS}]', '', 'g')) $$"
)
