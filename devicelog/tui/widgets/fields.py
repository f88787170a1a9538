"""One form field on screen: label, the right input for its type, unit, and its problem.

A ``FieldRow`` draws a ``devicelog.forms.FormField``: an ``Input`` (with a validator
that runs the field's parser as it is typed), a ``Select``, a ``Switch`` or a
``SelectionList``; the unit stands to the right and the problem, when there is one,
on the line below, named by the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import Input, Label, Select, SelectionList, Static, Switch

from devicelog.forms import FormField, parse_field
from devicelog.services import InputError
from devicelog.tui.format import plain

_NOT_YET = object()
GS_SHOWN = "\u241d"  # ␝ stands for the group separator a scanner types


class FieldValidator(Validator):
    """Runs the field's own parser: the message names the problem as it is typed."""

    def __init__(self, field: FormField, today: dt.date | None, known_drugs: tuple[str, ...] = ()):
        super().__init__()
        self.field = field
        self.today = today
        self.known_drugs = known_drugs

    def validate(self, value: str) -> ValidationResult:
        try:
            parse_field(self.field, value, today=self.today, known_drugs=self.known_drugs)
        except InputError as exc:
            return self.failure("; ".join(p.message for p in exc.problems), value)
        return self.success()


class ScanInput(Input):
    """An Input that keeps the group separator (GS, ctrl+]) a barcode scanner types.

    Textual calls ``_on_key``/``_on_paste`` of every class in the MRO; these only take
    the GS cases and ``prevent_default`` so Input's own handlers skip them.
    """

    def _on_key(self, event) -> None:
        if event.character == "\x1d" or event.key in ("ctrl+right_square_bracket", "ctrl+]"):
            event.stop()
            event.prevent_default()
            self.insert_text_at_cursor(GS_SHOWN)

    def _on_paste(self, event) -> None:
        if "\x1d" in event.text:
            event.stop()
            event.prevent_default()
            self.insert_text_at_cursor(event.text.replace("\x1d", GS_SHOWN).replace("\n", ""))


class FieldRow(Widget):
    """A labelled input for one form field."""

    DEFAULT_CSS = """
    FieldRow { height: auto; }
    FieldRow > Horizontal { height: auto; }
    FieldRow .label { width: 30; padding: 0 1 0 0; }
    FieldRow .unit { width: 10; padding: 0 0 0 1; color: $text-muted; }
    FieldRow .control { width: 1fr; }
    FieldRow .problem { color: $error; padding: 0 0 0 30; display: none; }
    FieldRow .problem.shown { display: block; }
    FieldRow .help { color: $text-muted; padding: 0 0 0 30; }
    FieldRow SelectionList { height: auto; max-height: 6; }
    """

    class Changed(Message):
        def __init__(self, row: "FieldRow") -> None:
            super().__init__()
            self.row = row

    def __init__(self, field: FormField, value: Any = None, *, today: dt.date | None = None,
                 known_drugs: tuple[str, ...] = (), scan: bool = False) -> None:
        super().__init__(id=f"row-{field.key.replace('.', '-')}")
        self.field = field
        self.initial = value
        self.today = today
        self.known_drugs = known_drugs
        self.scan = scan
        self.touched = False
        self._opened_with: Any = _NOT_YET  # the control's value as composed (``raw``)

    @staticmethod
    def control_id_for(key: str) -> str:
        return f"f-{key.replace('.', '-')}"

    @property
    def control_id(self) -> str:
        return self.control_id_for(self.field.key)

    def compose(self) -> ComposeResult:
        f = self.field
        star = " *" if f.required else ""
        with Horizontal():
            yield Label(f"{f.label}{star}", classes="label")
            yield self._control()
            yield Label(f.unit, classes="unit")
        yield Static("", classes="problem")

    def _control(self) -> Widget:
        f, value = self.field, self.initial
        if f.type == "choice":
            options = [(plain(label), code) for code, label in f.choices if code != ""]
            allow_blank = not f.required or any(code == "" for code, _ in f.choices)
            chosen = value if value not in (None, "") and any(v == value for _, v in options) else Select.NULL
            if chosen is Select.NULL and not allow_blank and options:
                chosen = options[0][1]
            return Select(options, value=chosen, allow_blank=allow_blank, prompt="(none)", id=self.control_id,
                          classes="control", compact=True)
        if f.type == "flag":
            return Switch(value=bool(value), id=self.control_id, classes="control")
        if f.type == "multi":
            chosen = set(value or [])
            return SelectionList(*[(plain(label), code, code in chosen) for code, label in f.choices],
                                 id=self.control_id, classes="control", compact=True)
        cls = ScanInput if self.scan else Input
        text = "" if value is None else str(value)
        if self.scan:
            text = text.replace("\x1d", GS_SHOWN)
        return cls(
            value=text,
            placeholder=f"e.g. {f.placeholder}" if f.placeholder and not f.placeholder.startswith("(") else f.placeholder,
            tooltip=f.help or None,
            validators=[] if self.scan else [FieldValidator(f, self.today, self.known_drugs)],
            validate_on=["changed", "submitted"],
            id=self.control_id,
            classes="control",
            compact=True,
        )

    def on_mount(self) -> None:
        self._opened_with = self.raw

    @property
    def control(self) -> Widget:
        return self.query_one(f"#{self.control_id}")

    @property
    def raw(self) -> Any:
        """What the person entered, as the form parsers take it."""
        control = self.control
        if isinstance(control, Select):
            return "" if control.value is Select.NULL or control.value is None else control.value
        if isinstance(control, Switch):
            return control.value
        if isinstance(control, SelectionList):
            return list(control.selected)
        value = control.value
        return value.replace(GS_SHOWN, "\x1d") if self.scan else value

    def set_raw(self, value: Any) -> None:
        control = self.control
        if isinstance(control, Select):
            control.value = value if value not in (None, "") else Select.NULL
        elif isinstance(control, Switch):
            control.value = bool(value)
        elif isinstance(control, Input):
            control.value = "" if value is None else str(value)

    def show_problem(self, message: str | None) -> None:
        problem = self.query_one(".problem", Static)
        if message:
            problem.update(plain(f"↑ {self.field.label}: {message}"))
            problem.add_class("shown")
        else:
            problem.update("")
            problem.remove_class("shown")

    def _changed(self) -> None:
        # A control reports its first value as a change when it mounts: that is not the
        # person's.  Anything else is, however soon after the form opened it was typed
        # (keys typed as the form opens are kept: issue 13.2).
        if not self.touched and self.raw == self._opened_with:
            return
        if self._opened_with is _NOT_YET:
            return
        self.touched = True
        self.post_message(self.Changed(self))

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    @on(SelectionList.SelectedChanged)
    def _on_control_changed(self, event: Message) -> None:
        event.stop()
        self._changed()

    @on(Input.Submitted)
    def _on_submitted(self, event: Input.Submitted) -> None:
        # Enter moves to the next field, as on a paper form.
        event.stop()
        self.screen.focus_next()
