"""Words and colours for the screens: due items, events and device summaries.

Text from the database reaches a screen through :func:`plain` (one value) or
:func:`shown` (a ``Text`` put together from several): a control character in a name,
serial or note is shown as a mark (``reports.safe.visible``: ESC as ``␛``), never
written to the terminal, where it could clear the screen, retitle the window or write
the clipboard (issue 19, section 2); and a ``Text`` is never parsed as markup, so
``[red]x[/red]`` shows as typed.  A ``str`` given to ``Static``, ``notify`` or a
``DataTable`` cell *is* parsed as markup: give them one of these instead.
"""

from __future__ import annotations

import datetime as dt
from typing import Mapping

from rich.text import Text

from devicelog.clinic.catalogue import Drug
from devicelog.clinic.due import DueItem, shown_red
from devicelog.clinic.history import DeviceHistory
from devicelog.clinic.records import (
    Event,
    InterrogationData,
    OutcomeData,
    ProgrammingData,
    RefillData,
    RefillReviewData,
    ReinterventionData,
    TrialEndData,
    TrialStartData,
    WoundCheckData,
)

from devicelog.reports.safe import visible

# devicelog.forms (which imports the services and the ORM) is imported by the functions
# that need it: the main screen's warnings and search rows use this module before any
# form is opened, at start-up.
STATUS_STYLE = {"overdue": "bold white on dark_red", "due": "bold black on yellow", "upcoming": "green"}
STATUS_WORD = {"overdue": "OVERDUE", "due": "DUE SOON", "upcoming": "upcoming"}


def one_line(value: object) -> str:
    """One value from the database as one line of plain text for a ``Text``: every
    control character a visible mark (``Text`` itself would drop BEL, CR and a few
    others silently, and keep ESC)."""
    return visible(str(value), one_line=True)


def plain(value: object, style: str = "") -> Text:
    """One value from the database (a name, serial, author, note) as one line of ``Text``:
    shown as typed, never markup, every control character a visible mark."""
    return Text(one_line(value), style=style)


def shown(text: Text | str) -> Text:
    """``text`` (a ``Text`` built with database values in it, or a ``str`` taken as plain
    text, never markup) with every control character shown as a mark; its styles and
    its own line breaks are kept.  A text with nothing to show differently is returned
    as it is.  (``Text`` has already dropped BEL, backspace, CR, VT and FF from what was
    appended to it: put values in with :func:`one_line` to show those too.)"""
    if isinstance(text, str):
        return Text(visible(text))
    if visible(text.plain) is text.plain:
        return text
    # Cut at every span edge, so each piece has one set of styles; mark each piece's
    # controls (a mark may be longer than its character) and style it again.
    edges = sorted({edge for span in text.spans for edge in (span.start, span.end)})
    out = text.blank_copy()
    for piece in text.divide(edges):
        start = len(out)
        out.append(visible(piece.plain))
        for span in piece.spans:
            out.stylize(span.style, start, len(out))
    return out


def value_label(path: str, value) -> str:
    """A coded value in the words its form uses (``forms.value_label``), imported when first needed."""
    from devicelog.forms import value_label as label

    return label(path, value)


def when(due_on: dt.date, today: dt.date) -> str:
    """"in 3 days", "today", "2 days ago"."""
    days = (due_on - today).days
    if days == 0:
        return "today"
    if days == 1:
        return "tomorrow"
    if days == -1:
        return "1 day ago"
    return f"in {days} days" if days > 0 else f"{-days} days ago"


def status_badge(item_status: str) -> Text:
    return Text(f" {STATUS_WORD[item_status]} ", style=STATUS_STYLE[item_status])


def item_line(item: DueItem, item_status: str, today: dt.date, *, with_patient: bool = False) -> Text:
    """``[OVERDUE] Refill 2026-11-20 (3 days ago) !critical`` with colours."""
    text = Text()
    text.append_text(status_badge(item_status))
    text.append(" ")
    if with_patient:
        text.append(one_line(f"{item.patient_mrn} {item.patient_name} {item.device_serial} "), style="bold")
    style = "bold" if item_status != "upcoming" else ""
    if shown_red(item):
        style = "bold red"
    text.append(one_line(item.what), style=style)
    text.append(f"  {item.due_on} ({when(item.due_on, today)})")
    if item.severity == "critical":
        text.append("  CRITICAL", style="bold red")
    return text


def short_item(item: DueItem, item_status: str, today: dt.date) -> Text:
    text = Text(f"{one_line(item.what)} {item.due_on}", style=STATUS_STYLE[item_status] if item_status != "upcoming" else "green")
    if shown_red(item):
        text.append(" !", style="bold red")
    return text


def _n(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value:g} {unit}"


def event_summary(event: Event, drugs: Mapping[str, Drug] | None = None) -> str:
    """One line saying what an entry recorded, with units (drug amounts in the unit each
    drug is read in, from ``drugs``, the catalogue's by code)."""
    from devicelog.clinic.programs import WAVEFORM_WORDS, drug_amount

    drugs = drugs or {}
    d = event.data
    if isinstance(d, RefillData):
        p = d.program
        drug = p.drugs[0]
        dose = f", {drug_amount(drugs, drug.drug, p.dose_mg_per_day, '/day')}" if p.dose_mg_per_day is not None else ""
        override = f"; soft limit overridden: {d.limit_override.reason}" if d.limit_override is not None else ""
        return (
            f"withdrew {_n(d.volume_withdrawn_ml, 'mL')}, added {_n(d.volume_added_ml, 'mL')}, "
            f"reservoir {_n(d.reservoir_volume_after_ml, 'mL')}; {drug.drug} {drug_amount(drugs, drug.drug, drug.concentration_mg_per_ml, '/mL')}{dose}"
            f"{override}"
        )
    if isinstance(d, InterrogationData):
        parts = [f"battery {d.battery_state.value.upper()}"]
        if d.battery_percent is not None:
            parts.append(_n(d.battery_percent, "%"))
        if d.reservoir_volume_ml is not None:
            parts.append(f"reservoir {_n(d.reservoir_volume_ml, 'mL')}")
        if d.alarms:
            parts.append("alarms " + ", ".join(a.code.label for a in d.alarms))
        if d.impedances:
            parts.append(f"{len(d.impedances)} impedances")
        return "; ".join(parts)
    if isinstance(d, ProgrammingData):
        if d.pump_program is not None:
            p = d.pump_program
            first = p.drugs[0]
            dose = drug_amount(drugs, first.drug, p.dose_mg_per_day, "/day") if p.dose_mg_per_day is not None else p.mode.value.replace("_", " ")
            override = f"; soft limit overridden: {d.limit_override.reason}" if d.limit_override is not None else ""
            return f"pump program {first.drug} {drug_amount(drugs, first.drug, first.concentration_mg_per_ml, '/mL')}, {dose}{override}"
        s = next((p for p in d.stim_programs if p.name == d.active_program), d.stim_programs[0])
        return (f"program {s.name}: {s.amplitude:g} {s.amplitude_unit}, {s.pulse_width_us:g} µs, {s.frequency_hz:g} Hz, "
                f"{WAVEFORM_WORDS[s.waveform.value]}")
    if isinstance(d, WoundCheckData):
        parts = [d.site or "wound", f"erythema {_n(d.erythema_cm, 'cm')}", f"drainage {d.drainage.value}"]
        if d.dehiscence.value != "none":
            parts.append(f"dehiscence {d.dehiscence.value.replace('_', ' ')}")
        if d.fever_c is not None:
            parts.append(_n(d.fever_c, "°C"))
        return ", ".join(parts)
    if isinstance(d, ReinterventionData):
        return f"{d.reintervention.value.replace('_', ' ')}: {d.reason}"
    if isinstance(d, TrialStartData):
        return f"baseline NRS {d.baseline_nrs}/10, planned {d.planned_days} days"
    if isinstance(d, TrialEndData):
        return f"end NRS {d.end_nrs}/10, analgesics {d.analgesics.value}, satisfied {'yes' if d.patient_satisfied else 'no'}"
    if isinstance(d, OutcomeData):
        mme = f", oral MME {_n(d.oral_mme_mg_per_day, 'mg/day')}" if d.oral_mme_mg_per_day is not None else ""
        return f"pain NRS {d.pain_nrs}/10{mme}"
    if isinstance(d, RefillReviewData):
        note = f" — {d.note}" if d.note else ""
        return f"review of refill entry {d.refill_event_id}: {d.finding.label}{note}"
    return event.kind.label  # pragma: no cover


def therapy_summary(history: DeviceHistory, drugs: Mapping[str, Drug] | None = None) -> str:
    """Reservoir drug and rate, or the current stimulation program; each drug amount in
    the unit the drug is read in (``drugs``: the catalogue's, by code)."""
    from devicelog.clinic.programs import WAVEFORM_WORDS, drug_amount
    from devicelog.forms import current_pump_program, current_stim_programs

    drugs = drugs or {}

    model = history.device.model
    if model.is_pump:
        program = current_pump_program(history)
        if program is None:
            return "no refill or program logged yet"
        from devicelog.clinic.pump import daily_volume_ml

        first = program.drugs[0].drug
        admixture = ", ".join(f"{d.drug} {drug_amount(drugs, d.drug, d.concentration_mg_per_ml, '/mL')}" for d in program.drugs)
        if program.dose_mg_per_day is not None:
            rate = drug_amount(drugs, first, program.dose_mg_per_day, "/day")
        else:
            rate = program.mode.value.replace("_", " ")
        return f"{admixture}; {rate} = {daily_volume_ml(program):.3f} mL/day"
    programs, active = current_stim_programs(history)
    if not programs:
        return "no program logged yet"
    s = next((p for p in programs if p.name == active), programs[0])
    contacts = " ".join(f"{c}{p.value}" for c, p in s.contacts.items())
    return (
        f"program {s.name}: {s.amplitude:g} {s.amplitude_unit}, {s.pulse_width_us:g} µs, "
        f"{s.frequency_hz:g} Hz, {WAVEFORM_WORDS[s.waveform.value]}; contacts {contacts}"
    )


def battery_summary(history: DeviceHistory) -> str:
    model = history.device.model
    if model.power.value == "none":
        return "no battery"
    for event in reversed(history.events):
        if isinstance(event.data, InterrogationData):
            d = event.data
            parts = [d.battery_state.value.upper()]
            if d.battery_percent is not None:
                parts.append(f"{d.battery_percent:g} %")
            if d.battery_v is not None:
                parts.append(f"{d.battery_v:g} V")
            return " ".join(parts) + f" (interrogated {event.occurred_on})"
    cell = {"battery": "primary cell", "rechargeable": "rechargeable"}.get(model.power.value, model.power.value)
    return f"not interrogated yet ({cell})"
