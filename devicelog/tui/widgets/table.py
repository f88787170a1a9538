"""A DataTable that is refilled as a whole, fast enough to follow typing.

The main screen replaces its rows on every keystroke.  A plain ``DataTable`` sizes
its columns when it is next idle, after the frame that showed the new rows was drawn,
so every refill drew the table twice (once in the old widths, once in the new):
``replace_rows`` sizes the columns as it fills them, so the next frame is the only one.

Cells should be ``rich.text.Text``: a ``str`` cell is parsed as console markup on its
way to the screen (slower, and a name with ``[`` in it would lose it).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from textual.widgets import DataTable


class ClinicTable(DataTable):
    def replace_rows(self, rows: Iterable[tuple[Sequence[object], str | None]]) -> None:
        """Clear the table and add ``(cells, key)`` rows, sized at once."""
        self.clear()
        for cells, key in rows:
            self.add_row(*cells, key=key)
        self.size_columns_now()

    def size_columns_now(self) -> None:
        """Measure the rows added since the last sizing now rather than when idle.

        This is what ``DataTable`` does in its idle handler (Textual 8.2); on a Textual
        without those internals the table simply sizes itself when idle, as before."""
        new_rows = getattr(self, "_new_rows", None)
        update = getattr(self, "_update_dimensions", None)
        if new_rows is None or update is None or not getattr(self, "_require_update_dimensions", False):
            return
        if getattr(self, "_updated_cells", None):
            return  # cells updated in place: leave both to the idle handler, which does them in order
        rows = new_rows.copy()
        new_rows.clear()
        self._require_update_dimensions = False
        update(rows)
