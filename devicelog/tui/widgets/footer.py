"""A Footer that rebuilds its keys once per burst of binding changes.

Textual's ``Footer`` recomposes (unmounts and mounts a widget per key, each styled
again) every time its screen publishes "bindings updated", and a screen publishes it
for each focus change, tab switch and ``refresh_bindings()``: opening the device
screen rebuilt its footer seven times (about 30 ms each, of 230-520 ms).  Here the
changes that come before the next refresh share one rebuild, which sees them all,
and the footer of a screen under another one waits until that screen resumes (it
publishes again then).
"""

from __future__ import annotations

from textual.widgets import Footer


class ClinicFooter(Footer):
    _rebuild_pending = False

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
        if self.screen.is_current:  # covered meanwhile: it publishes again when it resumes
            await self.recompose()
