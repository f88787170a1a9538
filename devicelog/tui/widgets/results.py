"""The main screen's search results: a table that is refilled on every keystroke.

Why not a ``DataTable``: at 100,000 patients a keystroke's search takes 10-20 ms, but a
``DataTable`` refilled with its ~70 rows took 15 ms to clear, add and measure the rows
(every cell measured through the console) and then ~40 ms to paint them (every visible
cell rendered through ``console.render_lines`` of a ``Padding`` in a ``Styled``), and a
second layout when it was next idle: typing showed its results 110-170 ms after the key.

``ResultsTable`` keeps what the screen uses of a ``DataTable`` (a header row, a row
cursor, zebra stripes, the same component classes and colours, Enter/click to select,
Up/Down/PageUp/PageDown/Home/End, horizontal scrolling when the columns are wider than
the screen) and draws with the Line API: ``render_line`` builds only the lines on
screen, each from the cells' own segments (``Text.render``, no measuring or wrapping:
a cell is one line), and column widths are the cells' ``cell_len``.  Refilling it is a
list assignment and one ``virtual_size``; a refill paints in a few milliseconds.

Cells are ``rich.text.Text`` (a ``str`` is taken as plain text, never markup).
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar, Iterable, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

_CELL_PADDING = 1  # spaces each side of a cell, as a DataTable's default cell_padding


def _as_text(cell: object) -> Text:
    if isinstance(cell, Text):
        return cell
    return Text(str(cell))


@lru_cache(maxsize=4096)
def _meta(row: int, column: int, out_of_bounds: bool = False) -> Style:
    meta = {"row": row, "column": column}
    if out_of_bounds:
        meta["out_of_bounds"] = True
    return Style.from_meta(meta)


class ResultsTable(ScrollView, can_focus=True):
    """Rows of one-line ``Text`` cells under a header, with a row cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("right", "scroll_right", "Scroll right", show=False),
        Binding("left", "scroll_left", "Scroll left", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("ctrl+home", "first_row", "Top", show=False),
        Binding("ctrl+end", "last_row", "Bottom", show=False),
        Binding("home", "leftmost", "Home", show=False),
        Binding("end", "rightmost", "End", show=False),
    ]

    # The DataTable's component classes and default colours, so the screen looks the same.
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "datatable--header",
        "datatable--cursor",
        "datatable--even-row",
        "datatable--odd-row",
    }

    DEFAULT_CSS = """
    ResultsTable {
        background: $surface;
        color: $foreground;
        height: 1fr;

        &:focus {
            background-tint: $foreground 5%;
            & > .datatable--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .datatable--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark {
            & > .datatable--even-row {
                background: $surface-darken-1 40%;
            }
        }
        & > .datatable--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .datatable--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .datatable--odd-row {
        }
        & > .datatable--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .datatable--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    cursor_row: reactive[int] = reactive(0, always_update=True, repaint=False)

    class _RowMessage(Message):
        def __init__(self, table: ResultsTable, cursor_row: int, row_key: str | None) -> None:
            super().__init__()
            self.table = table
            self.cursor_row = cursor_row
            self.row_key = row_key

        @property
        def control(self) -> ResultsTable:
            return self.table

    class RowSelected(_RowMessage):
        """Enter on a row, or a click on the row under the cursor."""

    class RowHighlighted(_RowMessage):
        """The cursor moved to a row."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._labels: list[Text] = []
        self._rows: list[tuple[Text, ...]] = []
        self._keys: list[str | None] = []
        self._index: dict[str, int] = {}
        self._widths: list[int] = []  # each column's content width (cells)
        self._strips: dict[tuple, Strip] = {}  # full-width lines built since the last change
        self._palette: dict[str, Style] | None = None  # the component styles, read once per change

    # ------------------------------------------------------------------ content

    def add_columns(self, *labels: str) -> list[int]:
        """Add columns; their keys are their positions."""
        start = len(self._labels)
        self._labels += [Text(label) for label in labels]
        self._widths += [Text(label).cell_len for label in labels]
        self._changed()
        return list(range(start, len(self._labels)))

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def get_row_at(self, index: int) -> list[Text]:
        return list(self._rows[index])

    def row_key_at(self, index: int) -> str | None:
        """The key of the row at ``index`` (None when there is no such row)."""
        return self._keys[index] if 0 <= index < len(self._keys) else None

    def row_index(self, row_key: str) -> int | None:
        """Where the row of this key is (None when it is not shown)."""
        return self._index.get(row_key)

    def get_cell(self, row_key: str, column: int) -> Text:
        return self._rows[self._index[row_key]][column]

    def replace_rows(self, rows: Iterable[tuple[Sequence[object], str | None]]) -> None:
        """Show these ``(cells, key)`` rows instead, the cursor on the first."""
        self._rows, self._keys = [], []
        for cells, key in rows:
            self._rows.append(tuple(_as_text(c) for c in cells))
            self._keys.append(key)
        self._index = {k: i for i, k in enumerate(self._keys) if k is not None}
        # Columns only widen (as a DataTable's do across refills): while typing narrows
        # the list, the columns stay where the eye found them.
        widths = list(self._widths)
        for cells in self._rows:
            for n, cell in enumerate(cells):
                if cell.cell_len > widths[n]:
                    widths[n] = cell.cell_len
        self._widths = widths
        self.scroll_to(y=0, animate=False, immediate=True)
        self._changed()
        self.set_reactive(ResultsTable.cursor_row, 0)  # no RowHighlighted: nobody moved it

    def clear(self) -> None:
        self.replace_rows(())

    def update_cell(self, row_key: str, column: int, value: object, *, update_width: bool = False) -> None:
        index = self._index[row_key]
        cells = list(self._rows[index])
        cells[column] = _as_text(value)
        self._rows[index] = tuple(cells)
        if update_width:
            self._widths[column] = max(self._widths[column], cells[column].cell_len)
        self._changed()

    def _changed(self) -> None:
        self._strips.clear()
        width = sum(w + 2 * _CELL_PADDING for w in self._widths)
        size = Size(width, len(self._rows) + 1)  # + the header line
        if size != self.virtual_size:
            # The public reactive: it lays the screen out (~10 ms) on a keystroke whose row
            # count differs.  (Setting it quietly and updating the scrollbars by hand saved
            # that, through ScrollView's private ``_scroll_update``: issue 16.)
            self.virtual_size = size
        self.refresh()

    # ------------------------------------------------------------------ cursor

    def validate_cursor_row(self, row: int) -> int:
        return max(0, min(row, len(self._rows) - 1))

    def watch_cursor_row(self, old: int, new: int) -> None:
        self.refresh()  # two lines change; the whole (small) widget is as cheap to redraw
        self._scroll_to_cursor()
        if self._rows:
            self.post_message(self.RowHighlighted(self, new, self._keys[new]))

    def move_cursor(self, *, row: int) -> None:
        self.cursor_row = row

    def _scroll_to_cursor(self) -> None:
        lines = max(1, self.scrollable_content_region.height - 1)  # rows under the header
        row = self.cursor_row
        if row < self.scroll_y:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= self.scroll_y + lines:
            self.scroll_to(y=row - lines + 1, animate=False, immediate=True)

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def action_cursor_up(self) -> None:
        self.cursor_row -= 1

    def action_cursor_down(self) -> None:
        self.cursor_row += 1

    def action_page_up(self) -> None:
        self.cursor_row -= self._page()

    def action_page_down(self) -> None:
        self.cursor_row += self._page()

    def action_first_row(self) -> None:
        self.cursor_row = 0

    def action_last_row(self) -> None:
        self.cursor_row = len(self._rows) - 1

    def action_leftmost(self) -> None:
        self.scroll_to(x=0, animate=False)

    def action_rightmost(self) -> None:
        self.scroll_to(x=self.max_scroll_x, animate=False)

    def action_select_cursor(self) -> None:
        if self._rows:
            self.post_message(self.RowSelected(self, self.cursor_row, self._keys[self.cursor_row]))

    def _on_click(self, event: events.Click) -> None:
        """A click moves the cursor to the row; a click on the cursor's row selects it."""
        row = event.style.meta.get("row")
        if row is None or not 0 <= row < len(self._rows):
            return
        event.stop()
        if row == self.cursor_row:
            self.action_select_cursor()
        else:
            self.cursor_row = row

    # ------------------------------------------------------------------ drawing

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._restyle()  # theme, focus or dark/light changed the component styles

    def _on_focus(self, event: events.Focus) -> None:
        self._restyle()

    def _on_blur(self, event: events.Blur) -> None:
        self._restyle()

    def _restyle(self) -> None:
        self._palette = None
        self._strips.clear()
        self.refresh()

    def _styles(self) -> dict[str, Style]:
        if self._palette is None:
            cursor = self.get_component_rich_style("datatable--cursor")
            self._palette = {
                "base": self.rich_style,
                "header": self.get_component_styles("datatable--header").rich_style,
                "even": self.get_component_styles("datatable--even-row").rich_style,
                "odd": self.get_component_styles("datatable--odd-row").rich_style,
                "cursor": cursor,
                "cursor-post": Style.from_color(color=cursor.color),
            }
        return self._palette

    def render_line(self, y: int) -> Strip:
        """Line ``y`` of the widget: the header on line 0, then the rows from ``scroll_y``."""
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        index = -1 if y == 0 else y - 1 + scroll_y
        if index >= len(self._rows):
            return Strip.blank(width, self._styles()["base"])
        cursor = index == self.cursor_row and index >= 0
        key = (index, cursor, width)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._build_line(index, cursor, width)
        if scroll_x or strip.cell_length > width:
            strip = strip.crop(scroll_x, scroll_x + width).adjust_cell_length(width, self._styles()["base"])
        return strip

    def _build_line(self, index: int, cursor: bool, width: int) -> Strip:
        """One uncropped line, styled as a DataTable styles it: the row's style (header,
        even or odd row) under each cell's own style, the cursor's colour over it."""
        console = self.app.console
        styles = self._styles()
        if index < 0:
            row_style = styles["header"]
            cells: Sequence[Text] = self._labels
        else:
            row_style = styles["odd" if index % 2 else "even"]
            cells = self._rows[index]
        cursor_style, post = (styles["cursor"], styles["cursor-post"]) if cursor else (Style.null(), Style.null())
        segments: list[Segment] = []
        pad = " " * _CELL_PADDING
        used = 0
        for column, (cell, cell_width) in enumerate(zip(cells, self._widths)):
            # Each cell's own meta (row, column), as a DataTable's: a click reads the row from it.
            pre = row_style + _meta(index, column) + cursor_style
            outer = pre + post
            segments.append(Segment(pad, outer))
            if cell.spans:
                for segment in cell.render(console, end=""):  # the cell's style under each span's
                    segments.append(Segment(segment.text, pre + segment.style + post if segment.style else outer))
            else:  # Text.render leaves a span-less text's own style out: add it
                own = console.get_style(cell.style, default=Style.null())
                segments.append(Segment(cell.plain, pre + own + post))
            fill = cell_width - cell.cell_len + _CELL_PADDING
            segments.append(Segment(" " * fill, outer))
            used += cell_width + 2 * _CELL_PADDING
        if used < width:
            segments.append(Segment(" " * (width - used), row_style + cursor_style + _meta(index, 0, out_of_bounds=True)))
        return Strip(segments).adjust_cell_length(max(width, used), styles["base"]).simplify()
