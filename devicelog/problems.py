"""Refused input: ``Problem(field, value, message)`` and ``InputError`` (a list of them).

Kept apart from ``devicelog.services`` (which re-exports both) so that the command
line can catch a refusal without importing the ORM at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable


@dataclass(frozen=True)
class Problem:
    field: str
    value: Any
    message: str

    def __str__(self) -> str:
        """One line a person reads: the refused value quoted shortened
        (``clinic.words.quoted``); stored text shows its control characters as marks
        (``reports.safe.visible``), never runs them."""
        from devicelog.clinic.words import quoted
        from devicelog.reports.safe import visible

        shown = "" if self.value is None or isinstance(self.value, (dict, list)) else f" = {quoted(self.value)}"
        return visible(f"{self.field}{shown}: {self.message}", one_line=True)


class InputError(ValueError):
    """Input refused; ``problems`` names every field and value at fault."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))
