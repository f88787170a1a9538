"""Words a person reads: counts with the right plural, values quoted short.

Pure (no database, no screen), so the clinical rules, the reports, the forms and the
screens all count and quote the same way.  Field and value *labels* live with the forms
that show them (``devicelog.forms.field_label`` / ``value_label`` / ``problem_text``).
"""

from __future__ import annotations

from typing import Any

#: A refused value longer than this is quoted shortened (issue 19: never echo 1 MB back).
QUOTE_CHARS = 40


def plural(count: int, word: str, many: str | None = None) -> str:
    """``"1 problem"``, ``"2 problems"``, ``"0 problems"``; ``many`` for an irregular
    plural (``plural(n, "entry", "entries")``).  Thousands are grouped: ``"2,295 events"``."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


def quoted(value: Any, limit: int = QUOTE_CHARS) -> str:
    """A value as a person reads it in a message: in quotes, control characters shown
    as escapes, and shortened (with its length) when longer than ``limit``."""
    if not isinstance(value, str):
        if isinstance(value, int) and value.bit_length() > 128:  # repr of a 5,000-digit number raises
            return f"a number of about {int(value.bit_length() * 0.30103) + 1:,} digits"
        text = repr(value)
        return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"
    if len(value) > limit:
        return f"{value[:limit]!r}… ({len(value):,} characters)"
    return repr(value)
