"""Acknowledge or snooze a due item (issue 14.2): a small keyboard form with a preview.

The form shows the item and its why, asks for a reason (and, to snooze, the date it
comes back), and previews what will be saved as it is typed.  ctrl+s (or Enter in the
last field) saves through ``services.acknowledge_item`` / ``snooze_item``: one
transaction, audited.  A refusal (a snooze past the latest safe date, a critical item,
a refill up to its alarm date, no reason) is shown in the form, naming the field as
labelled and the value; nothing is saved and the form stays open.
"""

from __future__ import annotations

import datetime as dt

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from devicelog.clinic.due import DueItem
from devicelog.tui.format import plain

#: The fields as labelled on screen (refusals name them so).
LABELS = {"reason": "Reason", "until": "Snooze until", "item": "Item"}


class AckScreen(ModalScreen["str | None"]):
    """``kind`` "acknowledge" or "snooze"; dismisses with the saved message, None if cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]
    # Compact, so the snooze form (two fields, preview, refusal) fits a 80x24 terminal.
    DEFAULT_CSS = """
    AckScreen #ack-form { padding: 0 1; }
    AckScreen #ack-form .question { margin-bottom: 0; }
    AckScreen #ack-why { max-height: 3; color: $text-muted; }
    AckScreen Input { margin-bottom: 1; }
    AckScreen #ack-preview { margin-bottom: 1; }
    """

    def __init__(self, item: DueItem, kind: str) -> None:
        super().__init__()
        self.item, self.kind = item, kind

    def compose(self) -> ComposeResult:
        i = self.item
        title = "Acknowledge" if self.kind == "acknowledge" else "Snooze"
        with Vertical(classes="dialog", id="ack-form"):
            yield Static(plain(f"{title}: {i.what} · {i.patient_mrn} {i.patient_name} · {i.device_serial}", style="bold"),
                         classes="question")
            yield Static(plain(f"due {i.due_on}" + (f", latest safe {i.latest_safe_on}" if i.latest_safe_on else "")
                               + f" · {i.why}", style="dim"), id="ack-why")
            yield Label(LABELS["reason"])
            yield Input(placeholder="what was done or decided (required)", id="ack-reason", compact=True)
            if self.kind == "snooze":
                yield Label(f"{LABELS['until']} (YYYY-MM-DD: the item is back on that day)")
                yield Input(placeholder="YYYY-MM-DD", id="ack-until", compact=True)
            yield Static("", id="ack-preview")
            yield Static("", id="ack-problem", classes="problem")
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="ack-save", compact=True)
                yield Button("Cancel (Esc)", id="ack-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#ack-reason", Input).focus()
        self._preview()

    def _values(self) -> tuple[str, str]:
        reason = self.query_one("#ack-reason", Input).value
        until = self.query_one("#ack-until", Input).value if self.kind == "snooze" else ""
        return reason, until

    @on(Input.Changed)
    def _preview(self) -> None:
        """What will be saved, exactly as typed."""
        reason, until = self._values()
        who = f"by {self.app.user} on {self.app.today}"
        if self.kind == "acknowledge":
            text = plain(f"Preview: acknowledged {who}: {reason.strip() or '…'}", style="bold")
            text.append("\nIt leaves the active list, stays in the history, and comes back if its inputs change.")
        else:
            text = plain(f"Preview: snoozed until {until.strip() or '…'} {who}: {reason.strip() or '…'}", style="bold")
            text.append("\nBack on the list that day, or sooner if its inputs change.")
        self.query_one("#ack-preview", Static).update(text)
        self.query_one("#ack-problem", Static).update("")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if self.kind == "snooze" and event.input.id == "ack-reason":
            self.query_one("#ack-until", Input).focus()
            return
        self.action_save()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ack-save":
            self.action_save()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        from devicelog import services
        from devicelog.problems import Problem
        from devicelog.store.db import write_session

        reason, until_text = self._values()
        app = self.app
        try:
            until = None
            if self.kind == "snooze":
                try:
                    until = dt.date.fromisoformat(until_text.strip())
                except ValueError:
                    raise services.InputError([Problem("until", until_text, "is not a date (use YYYY-MM-DD)")]) from None
            with write_session(app.engine) as session:
                if self.kind == "acknowledge":
                    services.acknowledge_item(session=session, item_key=self.item.key, reason=reason, author=app.user,
                                              settings=app.settings)
                else:
                    services.snooze_item(session=session, item_key=self.item.key, until=until, reason=reason,
                                         author=app.user, today=app.today, settings=app.settings)
        except services.InputError as exc:
            self.query_one("#ack-problem", Static).update(plain(
                "Not saved: " + "; ".join(_problem(p) for p in exc.problems)))
            return
        word = "Acknowledged" if self.kind == "acknowledge" else f"Snoozed until {until}"
        app.changed([self.item.device_id])
        self.dismiss(f"{word}: {self.item.what} for {self.item.patient_mrn}. It leaves the active list (h shows it).")


def _problem(p) -> str:
    from devicelog.clinic.words import quoted

    shown = "" if p.value is None else f" {quoted(p.value)}"
    return f"{LABELS.get(p.field, p.field)}{shown}: {p.message}"
