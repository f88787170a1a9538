"""The main screen's search box: an ``Input`` that does not lay the screen out per key.

``Input`` sets its ``virtual_size`` to the text's width on every change, and that
reactive asks for a layout of the whole screen (every widget arranged and repainted,
4-10 ms, holding the GIL while the keystroke's search runs in its thread).  The box's
size never depends on its text here (one line, its width from the CSS), so the new
``virtual_size`` is set without a layout; ``Input`` still lays out when its size is
``auto`` (``styles.auto_dimensions``), as before.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import Input


class SearchInput(Input):
    def _watch_value(self, value: str) -> None:
        if not self.styles.auto_dimensions:
            # The same value Input's watcher assigns next, so that assignment changes nothing.
            self.set_reactive(Widget.virtual_size, Size(self.content_width, 1))
        super()._watch_value(value)
