"""Issue 13, items 2, 7 and 14 in the TUI, with the pilot, checked in the database.

The clinic is ``tests.test_tui.seed_clinic`` (TODAY 2026-11-23).
"""

from __future__ import annotations

from textual.events import Key

from tests.test_tui import SIZE, clinic, events, make, open_device, settle  # noqa: F401 - clinic: a fixture


def type_at_once(app, text: str) -> None:
    """Queue every key of ``text`` at once, as a terminal delivers keys typed quickly: no
    key waits for the screen to handle the one before (``pilot.press`` waits for idle
    after each key)."""
    for ch in text:
        key = {".": "full_stop", " ": "space"}.get(ch, ch)
        app.post_message(Key(key, ch))


# ----------------------------------------------------------------------------- item 2


async def test_keys_typed_as_the_refill_form_opens_reach_its_first_field_in_order(clinic):
    """``r`` and the residual typed at once, no pause: every key lands in the field the
    form opens on (volume withdrawn), in order; before, the keys that came before the
    form moved its cursor went into the date field ("34.5" became ".5")."""
    from devicelog.tui.screens.visit import VisitScreen

    app = make(clinic)
    async with app.run_test(size=SIZE) as pilot:
        await open_device(pilot, "NGP200")
        type_at_once(app, "r34.5")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, VisitScreen)
        assert form.rows["volume_withdrawn_ml"].raw == "34.5"
        assert form.rows["occurred_on"].raw == "2026-11-23"  # untouched
        assert form.focused is form.rows["volume_withdrawn_ml"].control
        # Typed, so leaving would ask first, and the preview reads it: 40 mL on 2026-08-01
        # at 3 mg/day ÷ 10 mg/mL = 0.3 mL/day; 114 days to 2026-11-23: 40 − 34.2 = 5.8 mL.
        assert form.dirty and form.rows["volume_withdrawn_ml"].touched
        assert "Expected residual 5.8 mL" in str(form.query_one("#preview").render())
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, VisitScreen)
    refills = [r for r in events(clinic, "NGP200") if r.kind == "refill"]
    assert len(refills) == 2
    assert refills[-1].data["volume_withdrawn_ml"] == 34.5
