"""Review a flagged refill (rule 26): opened from the device screen (``f``).

A flagged refill discrepancy (rule 8) or possible pocket fill (rule 9) stays on the
due list until a person records a review: which flagged refill, what was found or
done, a note, and when.  The preview below the fields says exactly what will be
saved; ``ctrl+s`` asks for a confirmation and saves it through
``services.record_review`` (one transaction, audited, due table refreshed).
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from devicelog.clinic.history import DeviceHistory
from devicelog.clinic.ledger import LedgerRow
from devicelog.clinic.records import ReviewFinding
from devicelog.tui.widgets.footer import ClinicFooter

#: The fields as labelled on this screen, for refusals (``services`` names record fields).
LABELS = {"data.refill_event_id": "Flagged refill", "data.finding": "Finding", "data.note": "Note",
          "occurred_on": "Reviewed on", "device_serial": "Device"}


def open_flags(history: DeviceHistory, settings) -> list[LedgerRow]:
    """The refills of the pump whose flag is still open (on the due list), oldest first."""
    from devicelog.clinic.ledger import refill_ledger

    return [row for row in refill_ledger(history, settings) if row.review_open]


def flag_text(row: LedgerRow) -> str:
    parts = []
    if row.flagged:
        parts.append(f"discrepancy {row.discrepancy_ml:+.2f} mL, {row.direction} (limit {row.limit_ml:g} mL)")
    if row.pocket_fill_flagged:
        parts.append("possible pocket fill")
    return f"refill {row.refilled_on} (entry {row.event_id}): " + "; ".join(parts)


class ReviewScreen(Screen):
    DEFAULT_CSS = """
    ReviewScreen #review-body { height: 1fr; padding: 0 1; }
    ReviewScreen OptionList { height: auto; max-height: 8; }
    ReviewScreen Label { padding: 1 0 0 0; }
    ReviewScreen #review-preview { padding: 1 0; }
    """
    BINDINGS = [
        Binding("ctrl+s", "save", "Save review", priority=True),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, history: DeviceHistory, flags: list[LedgerRow]) -> None:
        super().__init__()
        self.history = history
        self.flags = flags
        self.saving = False

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="review-body"):
            yield Static(
                f"Review a flagged refill of {self.history.device.model.label} {self.history.device.serial} "
                f"({self.history.patient.mrn} {self.history.patient.name}): the flag stays on the due list until reviewed (rule 26).",
                id="review-head",
            )
            yield Label("Flagged refill")
            yield OptionList(*[Option(flag_text(r), id=str(r.event_id)) for r in self.flags], id="review-refill")
            yield Label("Finding")
            yield OptionList(*[Option(f.label, id=f.value) for f in ReviewFinding], id="review-finding")
            yield Label("Note")
            yield Input(placeholder="what was found or done (optional)", id="review-note")
            yield Label("Reviewed on (YYYY-MM-DD)")
            yield Input(value=self.app.today.isoformat(), id="review-on")
            yield Static("", id="review-preview")
        yield ClinicFooter()

    def on_mount(self) -> None:
        for list_id in ("#review-refill", "#review-finding"):
            self.query_one(list_id, OptionList).highlighted = 0
        self.query_one("#review-refill", OptionList).focus()
        self.render_preview()

    # ------------------------------------------------------------------ values

    def chosen_flag(self) -> LedgerRow | None:
        index = self.query_one("#review-refill", OptionList).highlighted
        return self.flags[index] if index is not None and 0 <= index < len(self.flags) else None

    def chosen_finding(self) -> ReviewFinding | None:
        index = self.query_one("#review-finding", OptionList).highlighted
        findings = list(ReviewFinding)
        return findings[index] if index is not None and 0 <= index < len(findings) else None

    def values(self) -> tuple[LedgerRow | None, ReviewFinding | None, str, str]:
        return (self.chosen_flag(), self.chosen_finding(), self.query_one("#review-note", Input).value.strip(),
                self.query_one("#review-on", Input).value.strip())

    def preview_text(self) -> str:
        flag, finding, note, on = self.values()
        lines = [
            "Will be saved:",
            f"  Flagged refill: {flag_text(flag) if flag else '(none chosen)'}",
            f"  Finding: {finding.label if finding else '(none chosen)'}",
            f"  Note: {note or '(none)'}",
            f"  Reviewed on {on or '(no date)'} by {self.app.user}",
            "  The flag then leaves the due list; the review shows beside it in the refill ledger.",
        ]
        return "\n".join(lines)

    def render_preview(self) -> None:
        self.query_one("#review-preview", Static).update(Text(self.preview_text() + "\n\nctrl+s: save (asks to confirm) · Esc: back"))

    @on(OptionList.OptionHighlighted)
    @on(Input.Changed)
    def _changed(self, event) -> None:
        self.render_preview()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.focus_next()

    # ------------------------------------------------------------------ saving

    def action_save(self) -> None:
        from devicelog.tui.screens.dialogs import ConfirmScreen

        if self.saving:
            return
        flag, finding, note, on = self.values()

        def answered(yes: bool | None) -> None:
            if yes:
                self._save(flag.event_id if flag else None, finding.value if finding else None, note, on)

        self.app.push_screen(ConfirmScreen(self.preview_text() + "\n\nSave this review?", "Save review", "Not yet"), answered)

    @work(thread=True, exclusive=True, group="save")
    def _save(self, refill_event_id, finding, note: str, on: str) -> None:
        from devicelog import forms, services
        from devicelog.problems import InputError, Problem
        from devicelog.store.db import write_session

        app = self.app
        self.saving = True
        try:
            occurred_on = forms.parse_date("occurred_on", on, today=app.today, required=True)
            with write_session(app.engine) as session:
                services.record_review(session=session, serial=self.history.device.serial, refill_event_id=refill_event_id,
                                       finding=finding, note=note, author=app.user, today=app.today,
                                       occurred_on=occurred_on, settings=app.settings)
        except InputError as exc:
            shown = [Problem(LABELS.get(p.field, p.field), p.value, p.message) for p in exc.problems]
            app.call_from_thread(self.notify, "Not saved: " + "; ".join(str(p) for p in shown), severity="error")
            return
        finally:
            self.saving = False
        app.call_from_thread(self.notify, "Review saved: the flag leaves the due list.")
        app.call_from_thread(app.changed, [self.history.device.id])
        app.call_from_thread(app.pop_screen)
