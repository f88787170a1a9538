"""A Footer that shows its keys in the screen's first frame and rebuilds them only
when they change.

Textual's ``Footer`` composes empty, then recomposes (unmounts and mounts a widget per
key, each styled again, and lays the screen out again) every time its screen publishes
"bindings updated": on its first focus (so the keys of a new screen appear only in its
second frame), on each focus change, tab switch and ``refresh_bindings()``, though the
keys shown rarely change.  Opening the device screen rebuilt its footer seven times
(about 30 ms each, of 230-520 ms); the main screen's first rebuild was most of the
~60 ms of CPU between ``devicelog tui``'s first frame and a quiet screen.  Here:

- the first compose shows the screen's keys (as they are before any focus; the
  widgets' own bindings that a footer shows come with focus and trigger a rebuild);
- a rebuild is scheduled once per burst of changes (the changes before the next
  refresh share it), and does nothing when the keys to show (key, label, action,
  enabled, tooltip, group) are those already shown;
- the footer of a screen under another one waits until that screen resumes (it
  publishes again then).
"""

from __future__ import annotations

from textual.widgets import Footer


class ClinicFooter(Footer):
    _rebuild_pending = False
    _shown: tuple | None = None  # what the last compose showed

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.set_reactive(Footer._bindings_ready, True)  # keys in the first compose

    def _keys_shown(self) -> tuple:
        """What ``Footer.compose`` would show now, as plain values."""
        app = self.app
        active = self.screen.active_bindings
        shown = tuple(
            (b.key, app.get_key_display(b), b.description, b.action, enabled, tooltip,
             None if b.group is None else (b.group.description, b.group.compact))
            for (_, b, enabled, tooltip) in active.values()
            if b.show
        )
        palette = None
        if self.show_command_palette and app.ENABLE_COMMAND_PALETTE and app.COMMAND_PALETTE_BINDING in active:
            _, b, enabled, tooltip = active[app.COMMAND_PALETTE_BINDING]
            palette = (b.key, app.get_key_display(b), b.description, b.action, enabled, tooltip or b.tooltip)
        return shown, palette, self.compact, self.combine_groups

    def compose(self):
        self._shown = self._keys_shown()
        yield from super().compose()

    def bindings_changed(self, screen) -> None:
        # Footer.bindings_changed, with the recompose scheduled once until it runs.
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if not screen.is_current:
            return  # a screen under another one: it publishes again when it resumes
        if self.is_attached and screen is self.screen and not self._rebuild_pending:
            self._rebuild_pending = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_pending = False  # a change from here on schedules the next rebuild
        if not self.screen.is_current:
            return  # covered meanwhile: it publishes again when it resumes
        if self._keys_shown() == self._shown:
            return  # the same keys: nothing to rebuild
        await self.recompose()
