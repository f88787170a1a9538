"""What a program change changes: the one diff of pump and stimulation programs.

The visit preview, the history screen, the history PDF and the FHIR export all read
program changes from here (issue 13.4), so a setting reads the same everywhere: each
drug amount in the unit the drug is read in (ziconotide "2.4 mcg/day", never
"0.0024 mg/day"), each value with its unit, each label and choice in words
("waveform: high frequency → tonic").  A setting that is not set (None) reads
"not set", never as a number.  Pure: no database, no screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from devicelog.clinic.catalogue import Drug
from devicelog.clinic.pump import daily_volume_ml, drug_doses_mg_per_day
from devicelog.clinic.records import PumpMode, PumpProgram, StimProgram

NONE = "—"
NOT_SET = "not set"

MODE_WORDS = {
    PumpMode.simple_continuous: "simple continuous",
    PumpMode.flex: "flex",
    PumpMode.constant_flow: "constant flow",
}
WAVEFORM_WORDS = {
    "tonic": "tonic",
    "burst": "burst",
    "high_frequency": "high frequency",
    "dtm": "DTM",
    "closed_loop": "closed loop",
    "other": "other",
}


@dataclass
class FieldChange:
    """One setting that differs: its label and the value before and after, in words."""

    field: str
    before: str
    after: str

    @property
    def line(self) -> str:
        return f"{self.field}: {self.before} → {self.after}"


def fmt_amount(value: float | None, unit: str = "", places: int = 2) -> str:
    """A number rounded to ``places`` with its unit; "—" for None."""
    if value is None:
        return NONE
    text = f"{round(value, places):g}"
    return f"{text} {unit}".strip()


def _setting(value: float | int | None, unit: str = "") -> str:
    return NOT_SET if value is None else f"{value:g} {unit}".strip()


def drug_amount(drugs: Mapping[str, Drug], code: str, mg: float, per: str) -> str:
    """An amount of a drug in its display unit (``2.4 mcg/day``); mg for a drug not in the catalogue."""
    drug = drugs.get(code)
    return drug.show(mg, per) if drug else f"{mg:g} mg{per}"


def memoized(compute: Callable, program: PumpProgram, drugs: Mapping[str, Drug], memo: dict | None):
    """``compute(program, drugs)``, looked up in ``memo`` by the program's value when a
    memo is given.  A pump keeps one program over many refills (an 800-event history
    has 20-30 different programs), so a report formats each program once.  The key is
    the program's JSON, which tells apart any two values that could print
    differently; one memo serves one ``drugs``."""
    if memo is None:
        return compute(program, drugs)
    key = program.model_dump_json()
    found = memo.get(key)
    if found is None:
        found = memo[key] = compute(program, drugs)
    return found


def contacts_text(contacts: Mapping[str, Any]) -> str:
    """Contacts in electrode order with their polarity: ``E1− E2+ E3 off``."""

    def order(key: str):
        digits = "".join(c for c in key if c.isdigit())
        return (key.rstrip("0123456789"), int(digits) if digits else -1, key)

    shown = []
    for name in sorted(contacts, key=order):
        polarity = contacts[name].value if hasattr(contacts[name], "value") else str(contacts[name])
        shown.append(f"{name}{'−' if polarity == '-' else polarity}" if polarity != "off" else f"{name} off")
    return " ".join(shown)


def pump_fields(program: PumpProgram, drugs: Mapping[str, Drug], memo: dict | None = None) -> dict[str, str]:
    """The settings of a pump program, each in words with its unit (``memo``: see
    ``memoized``; the dict given back is then shared, not to be changed)."""
    if memo is not None:
        return memoized(pump_fields, program, drugs, memo)
    values = {"mode": MODE_WORDS[program.mode]}
    doses = drug_doses_mg_per_day(program)
    for entry in program.drugs:
        values[f"{entry.drug} concentration"] = drug_amount(drugs, entry.drug, entry.concentration_mg_per_ml, "/mL")
        values[f"{entry.drug} dose"] = drug_amount(drugs, entry.drug, doses[entry.drug], "/day")
    values["daily volume"] = f"{daily_volume_ml(program):.3f} mL/day"
    if program.mode is PumpMode.flex:
        values["flex steps"] = ", ".join(f"{s.rate_ml_per_h:g} mL/h × {s.hours:g} h" for s in program.flex_steps or ()) or NOT_SET
    if program.mode is PumpMode.constant_flow:
        values["flow rate"] = _setting(program.flow_rate_ml_per_day, "mL/day")
    values["bolus volume"] = _setting(program.bolus_ml, "mL")
    values["boluses per day (max)"] = _setting(program.bolus_max_per_day)
    values["bolus lockout"] = _setting(program.bolus_lockout_min, "min")
    return values


def stim_fields(p: StimProgram) -> dict[str, str]:
    """The settings of a stimulation program (rule 17), each in words with its unit."""
    unit = p.amplitude_unit
    if p.cycling_on_s is not None or p.cycling_off_s is not None:
        cycling = f"on {fmt_amount(p.cycling_on_s, 's')} / off {fmt_amount(p.cycling_off_s, 's')}"
    else:
        cycling = "off"
    lo, hi = p.patient_min_amplitude, p.patient_max_amplitude
    if lo is not None and hi is not None:
        limits = f"{fmt_amount(lo, unit)} to {fmt_amount(hi, unit)}"
    elif lo is not None or hi is not None:
        limits = f"min {fmt_amount(lo, unit)}" if hi is None else f"max {fmt_amount(hi, unit)}"
    else:
        limits = "none"
    return {
        "group": p.group or NONE,
        "contacts": contacts_text(p.contacts),
        "amplitude": fmt_amount(p.amplitude, unit, 3),
        "pulse width": fmt_amount(p.pulse_width_us, "µs"),
        "frequency": fmt_amount(p.frequency_hz, "Hz"),
        "waveform": WAVEFORM_WORDS.get(p.waveform.value, p.waveform.value.replace("_", " ")),
        "cycling": cycling,
        "patient amplitude limits": limits,
    }


def diff_fields(before: Mapping[str, str] | None, after: Mapping[str, str]) -> list[FieldChange]:
    """The fields that differ, in the order of ``after`` then anything only in ``before``."""
    before = before or {}
    changes = [FieldChange(k, before.get(k, NONE), v) for k, v in after.items() if before.get(k, NONE) != v]
    changes += [FieldChange(k, v, NONE) for k, v in before.items() if k not in after]
    return changes


def pump_program_changes(old: PumpProgram | None, new: PumpProgram, drugs: Mapping[str, Drug]) -> list[FieldChange]:
    """Every setting ``new`` changes from ``old`` (every setting when ``old`` is None)."""
    return diff_fields(pump_fields(old, drugs) if old is not None else None, pump_fields(new, drugs))


def stim_program_changes(old: StimProgram | None, new: StimProgram) -> list[FieldChange]:
    """Every setting ``new`` changes from ``old`` (every setting when ``old`` is None)."""
    return diff_fields(stim_fields(old) if old is not None else None, stim_fields(new))


__all__ = [
    "FieldChange",
    "MODE_WORDS",
    "WAVEFORM_WORDS",
    "contacts_text",
    "diff_fields",
    "drug_amount",
    "fmt_amount",
    "memoized",
    "pump_fields",
    "pump_program_changes",
    "stim_fields",
    "stim_program_changes",
]
