"""Visit and registration forms as data: their fields, units, defaults, and the
parsers that turn what a person typed into the values the records validate.

No textual here: the TUI draws these fields and the tests (and hypothesis) call the
parsers directly.  Every parser takes the field name and the text, and either returns
a typed value or raises ``InputError`` naming the field and the text; nothing else
escapes.  Clinical rules stay in the records (``services.parse_event_data``) and the
forecast; this module only reads text and lays out fields.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from devicelog.clinic.catalogue import DeviceModel, Drug
from devicelog.clinic.history import DeviceHistory
from devicelog.clinic.records import (
    VISIT_FORM_KINDS,
    AlarmCode,
    AnalgesicChange,
    BatteryState,
    Dehiscence,
    DeviceKind,
    Drainage,
    EventKind,
    FunctionalInstrument,
    GoalsOfCare,
    ImplantType,
    InterrogationReason,
    Kit,
    PowerSource,
    ProgrammingData,
    PumpProgram,
    RefillData,
    ReinterventionKind,
    StimProgram,
    Waveform,
)
from devicelog.services import InputError, Problem

MAX_TEXT = 2000

# ====================================================================== value parsers


def _fail(field: str, text: Any, message: str) -> InputError:
    return InputError([Problem(field, text, message)])


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    return value.strip()


_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


def parse_number(field: str, text: Any, unit: str = "", *, required: bool = False) -> float | None:
    """A decimal number; a comma is read as the decimal point and a trailing unit
    matching ``unit`` is allowed (``"12,5 mL"``).  Blank gives None unless required."""
    raw = _text(text)
    if unit and raw.lower().endswith(unit.lower()):
        raw = raw[: -len(unit)].strip()
    if not raw:
        if required:
            raise _fail(field, text, "is required" + (f" ({unit})" if unit else ""))
        return None
    if len(raw) > 40 or not _NUMBER.match(raw):
        raise _fail(field, text, "is not a number" + (f" in {unit}" if unit else ""))
    value = float(raw.replace(",", "."))
    if not math.isfinite(value):
        raise _fail(field, text, "is not a finite number")
    return value


def parse_int(field: str, text: Any, unit: str = "", *, required: bool = False) -> int | None:
    """A whole number (``"7"``, ``"7 days"``)."""
    value = parse_number(field, text, unit, required=required)
    if value is None:
        return None
    if value != int(value) or abs(value) > 10**9:
        raise _fail(field, text, "must be a whole number" + (f" of {unit}" if unit else ""))
    return int(value)


def parse_date(field: str, text: Any, *, today: dt.date | None = None, required: bool = False) -> dt.date | None:
    """A date as YYYY-MM-DD; with ``today`` given, also "today", "yesterday" and
    "-N" (N days ago)."""
    raw = _text(text).lower()
    if not raw:
        if required:
            raise _fail(field, text, "is required (YYYY-MM-DD)")
        return None
    if today is not None:
        if raw in ("today", "t"):
            return today
        if raw == "yesterday":
            return today - dt.timedelta(days=1)
        if re.fullmatch(r"-\d{1,4}", raw):
            return today - dt.timedelta(days=int(raw[1:]))
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise _fail(field, text, "is not a date: use YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise _fail(field, text, "is not a calendar date") from None


def parse_choice(field: str, value: Any, choices: Sequence[tuple[str, str]], *, required: bool = False) -> str | None:
    """One of the ``(value, label)`` choices, by value or label (case-insensitive)."""
    raw = _text(value)
    if not raw:
        if required:
            raise _fail(field, value, "choose one: " + ", ".join(label for _, label in choices))
        return None
    for code, label in choices:
        if raw.lower() in (code.lower(), label.lower()):
            return code
    raise _fail(field, value, "is not one of: " + ", ".join(label for _, label in choices))


def parse_flag(field: str, value: Any) -> bool:
    """A yes/no value (a switch gives a bool; text may say yes/no/true/false/y/n/1/0)."""
    if isinstance(value, bool):
        return value
    raw = _text(value).lower()
    if raw in ("", "no", "n", "false", "0", "off"):
        return False
    if raw in ("yes", "y", "true", "1", "on"):
        return True
    raise _fail(field, value, "answer yes or no")


def parse_free_text(field: str, value: Any, *, required: bool = False, max_length: int = MAX_TEXT) -> str:
    raw = _text(value)
    if required and not raw:
        raise _fail(field, value, "is required")
    if len(raw) > max_length:
        raise _fail(field, f"{raw[:20]}…", f"is {len(raw)} characters long; at most {max_length}")
    return raw


def _items(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,;\n]", text) if p.strip()]


# A contact is named as on the device: E1, 12, L4:2 (lead and contact, DRG), lead1, pad, case.
_CONTACT_TOKEN = r"((?:[A-Za-z][A-Za-z0-9]{0,9}|\d{1,3})(?::\d{1,3})?)\s*[:=]?\s*(\+|-|−|off)"


def parse_contacts(field: str, text: Any, *, required: bool = False) -> dict[str, str] | None:
    """Electrode contacts as ``contact polarity`` pairs: ``"E1- E2+ E3 off"`` or
    ``"1:-, 2:+"``.  Polarity is ``+`` (anode), ``-`` (cathode) or ``off``."""
    raw = _text(text)
    if not raw:
        if required:
            raise _fail(field, text, "is required, e.g. E1- E2+ E3 off")
        return None
    pairs = re.findall(_CONTACT_TOKEN, raw, re.I)
    leftover = re.sub(_CONTACT_TOKEN, "", raw, flags=re.I)
    if not pairs or leftover.strip(" ,;"):
        raise _fail(field, text, "write each contact with its polarity, e.g. E1- E2+ E3 off")
    contacts: dict[str, str] = {}
    for name, pol in pairs:
        pol = pol.lower().replace("−", "-")
        # The name is kept as written (the device's own names: "lead1", "L4:2"); a
        # contact given twice is refused whatever its case.
        if name.upper() in {c.upper() for c in contacts}:
            raise _fail(field, text, f"contact {name} is given twice")
        contacts[name] = pol
    if len(contacts) > 64:
        raise _fail(field, text, "more than 64 contacts")
    return contacts


def parse_impedances(field: str, text: Any) -> list[dict[str, Any]]:
    """Per-contact impedances in Ω: ``"E1 650, E2 4200"`` or ``"1:650 2:4200"``."""
    raw = _text(text)
    if not raw:
        return []
    pairs = re.findall(r"([A-Za-z]*\d{1,3})\s*[:=]?\s*(\d+(?:[.,]\d+)?)\s*(?:Ω|ohm|ohms)?", raw, re.I)
    leftover = re.sub(r"([A-Za-z]*\d{1,3})\s*[:=]?\s*(\d+(?:[.,]\d+)?)\s*(?:Ω|ohm|ohms)?", "", raw, flags=re.I)
    if not pairs or leftover.strip(" ,;"):
        raise _fail(field, text, "write contact and impedance in Ω, e.g. E1 650, E2 4200")
    if len(pairs) > 64:
        raise _fail(field, text, "more than 64 contacts")
    result = []
    seen = set()
    for name, value in pairs:
        name = name.upper()
        if name in seen:
            raise _fail(field, text, f"contact {name} is given twice")
        seen.add(name)
        result.append({"contact": name, "impedance_ohm": float(value.replace(",", "."))})
    return result


def parse_drug_list(field: str, text: Any, known: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Further drugs of an admixture with their concentrations in mg/mL:
    ``"bupivacaine 10, clonidine 0.075"``."""
    raw = _text(text)
    if not raw:
        return []
    known = set(known)
    result = []
    for part in _items(raw):
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9\-]*)\s*[:=]?\s*(\S+?)\s*(?:mg/ml)?", part, re.I)
        if m is None:
            raise _fail(field, text, f"cannot read {part!r}: write drug and mg/mL, e.g. bupivacaine 10")
        code = m.group(1).lower()
        if known and code not in known:
            raise _fail(field, text, f"{code!r} is not in the drug catalogue ({', '.join(sorted(known))})")
        conc = parse_number(field, m.group(2), "mg/mL", required=True)
        result.append({"drug": code, "concentration_mg_per_ml": conc})
    if len(result) > 5:
        raise _fail(field, text, "at most 5 further drugs")
    return result


def parse_flex_steps(field: str, text: Any) -> list[dict[str, float]]:
    """Flex program steps as ``rate mL/h × hours``: ``"0.05x8, 0.08x16"``."""
    raw = _text(text)
    if not raw:
        return []
    steps = []
    for part in _items(raw):
        m = re.fullmatch(r"(\S+?)\s*(?:ml/h)?\s*[x×*]\s*(\S+?)\s*h?", part, re.I)
        if m is None:
            raise _fail(field, text, f"cannot read {part!r}: write rate mL/h × hours, e.g. 0.05x8")
        rate = parse_number(field, m.group(1), "mL/h", required=True)
        hours = parse_number(field, m.group(2), "h", required=True)
        steps.append({"rate_ml_per_h": rate, "hours": hours})
    if len(steps) > 24:
        raise _fail(field, text, "at most 24 steps")
    return steps


def parse_opioids(field: str, text: Any) -> list[dict[str, Any]]:
    """Oral or transdermal opioids: ``"oxycodone 40 mg/day; fentanyl 25 mcg/h"``
    (a dose without a unit is mg/day)."""
    raw = _text(text)
    if not raw:
        return []
    result = []
    for part in _items(raw):
        m = re.fullmatch(r"([A-Za-z][A-Za-z \-]*?)\s+(\S+?)\s*(mg/day|mg/d|mg|mcg/h|µg/h|ug/h)?", part, re.I)
        if m is None:
            raise _fail(field, text, f"cannot read {part!r}: write opioid and dose, e.g. oxycodone 40 mg/day")
        unit = (m.group(3) or "mg/day").lower()
        value = parse_number(field, m.group(2), required=True)
        name = m.group(1).strip().lower()
        if len(name) > 30:
            raise _fail(field, text, f"opioid name {name[:20]!r}… is too long")
        if unit.endswith("/h"):
            result.append({"opioid": name, "patch_mcg_per_h": value})
        else:
            result.append({"opioid": name, "dose_mg_per_day": value})
    if len(result) > 10:
        raise _fail(field, text, "at most 10 opioids")
    return result


def parse_list(field: str, text: Any, *, max_items: int = 10, max_length: int = 40) -> list[str]:
    raw = _text(text)
    items = _items(raw)
    if len(items) > max_items:
        raise _fail(field, text, f"at most {max_items} entries")
    for item in items:
        if len(item) > max_length:
            raise _fail(field, text, f"{item[:20]!r} is longer than {max_length} characters")
    return items


# ====================================================================== form fields

Choices = tuple[tuple[str, str], ...]


def _enum_choices(enum_cls, labels: Mapping[str, str] | None = None) -> Choices:
    labels = labels or {}
    return tuple((m.value, labels.get(m.value, m.value.replace("_", " "))) for m in enum_cls)


@dataclass(frozen=True)
class FormField:
    """One field of a form.

    ``key`` names it in the form's raw values; ``targets`` are the record paths (under
    ``data.``) whose refusals are shown at this field.  ``type``: number, int, date,
    text, choice, flag, multi (several choices), or one of the structured text types
    contacts, impedances, drugs, flex, opioids, list.
    """

    key: str
    label: str
    type: str = "number"
    unit: str = ""
    required: bool = False
    choices: Choices = ()
    placeholder: str = ""
    help: str = ""
    targets: tuple[str, ...] = ()

    @property
    def paths(self) -> tuple[str, ...]:
        return self.targets or (self.key,)


OCCURRED = FormField("occurred_on", "Date of visit", "date", required=True, placeholder="YYYY-MM-DD or today")

MODE_LABELS = {"simple_continuous": "simple continuous", "flex": "flex (steps)", "constant_flow": "constant flow"}
AMPLITUDE_UNITS: Choices = (("mA", "mA"), ("V", "V"))


def _drug_choices(drugs: Sequence[Drug]) -> Choices:
    return tuple((d.code, d.name) for d in drugs)


def pump_program_fields(prefix: str, model: DeviceModel, drugs: Sequence[Drug]) -> list[FormField]:
    """The fields of a pump program; ``prefix`` is its record path ("program" or "pump_program")."""
    fields = []
    if model.constant_flow:
        modes = (("constant_flow", MODE_LABELS["constant_flow"]),)
    else:
        modes = tuple((m, MODE_LABELS[m]) for m in ("simple_continuous", "flex"))
    fields.append(FormField(f"{prefix}.mode", "Program mode", "choice", required=True, choices=modes))
    fields += [
        FormField(
            f"{prefix}.drug", "Drug (primary)", "choice", required=True, choices=_drug_choices(drugs),
            targets=(f"{prefix}.drugs.0.drug", f"{prefix}.drugs"),
        ),
        FormField(
            f"{prefix}.concentration_mg_per_ml", "Concentration", unit="mg/mL", required=True,
            targets=(f"{prefix}.drugs.0.concentration_mg_per_ml",),
        ),
    ]
    if model.constant_flow:
        fields.append(FormField(f"{prefix}.flow_rate_ml_per_day", "Flow rate (fixed)", unit="mL/day", required=True))
    else:
        fields.append(
            FormField(
                f"{prefix}.dose_mg_per_day", "Daily dose (primary drug)", unit="mg/day",
                help="simple continuous mode; ziconotide 2.4 mcg/day = 0.0024 mg/day",
            )
        )
        fields.append(
            FormField(
                f"{prefix}.flex_steps", "Flex steps", "flex", unit="mL/h × h", placeholder="0.05x8, 0.08x16",
                help="flex mode only",
            )
        )
    fields += [
        FormField(
            f"{prefix}.other_drugs", "Other drugs", "drugs", unit="mg/mL", placeholder="bupivacaine 10, clonidine 0.075",
            targets=(f"{prefix}.drugs.1", f"{prefix}.drugs.2", f"{prefix}.drugs.3", f"{prefix}.drugs.4", f"{prefix}.drugs.5"),
        ),
        FormField(f"{prefix}.bolus_ml", "Patient bolus", unit="mL"),
        FormField(f"{prefix}.bolus_max_per_day", "Boluses allowed", "int", unit="per day"),
    ]
    return fields


def stim_program_fields() -> list[FormField]:
    p = "stim_programs.0"
    return [
        FormField("stim.name", "Program", "text", required=True, targets=(f"{p}.name",)),
        FormField("stim.contacts", "Contacts", "contacts", required=True, placeholder="E1- E2+ E3 off", targets=(f"{p}.contacts",)),
        FormField("stim.amplitude", "Amplitude", unit="mA or V", required=True, targets=(f"{p}.amplitude_ma", f"{p}.amplitude_v")),
        FormField("stim.amplitude_unit", "Amplitude unit", "choice", required=True, choices=AMPLITUDE_UNITS),
        FormField("stim.pulse_width_us", "Pulse width", unit="µs", required=True, targets=(f"{p}.pulse_width_us",)),
        FormField("stim.frequency_hz", "Frequency", unit="Hz", required=True, targets=(f"{p}.frequency_hz",)),
        FormField("stim.waveform", "Waveform", "choice", required=True, choices=_enum_choices(Waveform), targets=(f"{p}.waveform",)),
        FormField("stim.cycling_on_s", "Cycling on", unit="s", targets=(f"{p}.cycling_on_s",)),
        FormField("stim.cycling_off_s", "Cycling off", unit="s", targets=(f"{p}.cycling_off_s",)),
        FormField("stim.patient_min_amplitude", "Patient minimum", unit="mA or V", targets=(f"{p}.patient_min_amplitude",)),
        FormField("stim.patient_max_amplitude", "Patient maximum", unit="mA or V", targets=(f"{p}.patient_max_amplitude",)),
        FormField("stim.group", "Group", "text", targets=(f"{p}.group",)),
    ]


NOTES = FormField("notes", "Notes", "text")
#: Issue 18.2: one reason overrides every soft drug limit the preview shows exceeded
#: (the record keeps the reason with the limits named: ``LimitOverride``).
LIMIT_OVERRIDE = FormField("limit_override_reason", "Soft-limit override reason", "text",
                           help="only when the preview shows a soft drug limit exceeded",
                           targets=("limit_override",))


def event_fields(kind: EventKind | str, model: DeviceModel, drugs: Sequence[Drug]) -> list[FormField]:
    """The fields of the visit form for ``kind`` on a device of ``model``, most used first."""
    kind = EventKind(kind)
    pump = model.kind is DeviceKind.intrathecal_pump
    has_battery = model.power is not PowerSource.none
    if kind is EventKind.refill:
        reservoir = f"reservoir {model.reservoir_ml:g} mL" if model.reservoir_ml else ""
        return [
            OCCURRED,
            FormField("volume_withdrawn_ml", "Residual withdrawn", unit="mL", required=True, help="measured at the start of the refill"),
            FormField("volume_added_ml", "Volume added", unit="mL", required=True, help=reservoir),
            FormField("reservoir_volume_after_ml", "Reservoir volume programmed", unit="mL", required=True),
            *pump_program_fields("program", model, drugs),
            LIMIT_OVERRIDE,
            FormField("measured_after_ml", "Measured after fill", unit="mL", help="if a check was made"),
            FormField("bolus_volume_since_last_fill_ml", "Boluses since last fill", unit="mL", help="from the pump log"),
            FormField("low_alarm_ml", "Low-reservoir alarm", unit="mL"),
            FormField("admixture_bud", "Pharmacy beyond-use date", "date", help="compounded admixtures"),
            FormField("kit", "Kit used", "choice", required=True, choices=_enum_choices(Kit, {"refill": "refill kit", "cap": "CAP kit"})),
            FormField("pocket_fill_reason", "Pocket-fill reason", "text", help="needed when a pocket fill is possible"),
            NOTES,
        ]
    if kind is EventKind.interrogation:
        fields = [OCCURRED]
        if has_battery:
            fields += [
                FormField("battery_state", "Battery", "choice", required=True, choices=_enum_choices(BatteryState, {"ok": "OK", "eri": "ERI", "eos": "EOS"})),
                FormField("battery_percent", "Battery", unit="%"),
                FormField("battery_v", "Battery voltage", unit="V"),
            ]
        if pump:
            fields.append(FormField("reservoir_volume_ml", "Reservoir volume", unit="mL"))
            fields += [
                FormField("reason", "Interrogation", "choice", required=True,
                          choices=_enum_choices(InterrogationReason, {"routine": "routine", "post_mri": "post-MRI (rule 13)"})),
                FormField("mri_on", "MRI date", "date", help="post-MRI: the date of the scan"),
            ]
        fields.append(
            FormField("alarms", "Alarms", "multi", choices=_enum_choices(AlarmCode, {"eri": "ERI", "eos": "EOS"}))
        )
        if not pump:
            fields.append(FormField("impedances", "Impedances", "impedances", unit="Ω", placeholder="E1 650, E2 4200"))
        if model.power is PowerSource.rechargeable:
            fields += [
                FormField("last_full_charge_on", "Last full charge", "date"),
                FormField("recharge_interval_days", "Recharge interval", unit="days"),
            ]
        return fields + [NOTES]
    if kind is EventKind.programming:
        if pump:
            return [
                OCCURRED,
                *pump_program_fields("pump_program", model, drugs),
                LIMIT_OVERRIDE,
                FormField("reservoir_volume_ml", "Reservoir volume now", unit="mL"),
                FormField("reason", "Reason for change", "text"),
            ]
        return [OCCURRED, *stim_program_fields(), FormField("reason", "Reason for change", "text")]
    if kind is EventKind.wound_check:
        fields = [
            OCCURRED,
            FormField("site", "Site", "text", placeholder="pocket, back incision"),
            FormField("erythema_cm", "Erythema", unit="cm"),
            FormField("drainage", "Drainage", "choice", required=True, choices=_enum_choices(Drainage)),
            FormField("dehiscence", "Dehiscence", "choice", required=True, choices=_enum_choices(Dehiscence)),
            FormField("fever_c", "Temperature", unit="°C"),
            FormField("pocket_swelling", "Pocket swelling", "flag"),
        ]
        if pump:
            fields += [
                FormField("pain_on_refill_injection", "Pain on refill injection", "flag"),
                FormField("meningism", "Meningism", "flag"),
            ]
        return fields + [
            FormField("culture_taken", "Culture taken", "flag"),
            FormField("organism", "Organism", "text"),
            NOTES,
        ]
    if kind is EventKind.reintervention:
        return [
            OCCURRED,
            FormField("reintervention", "Reintervention", "choice", required=True, choices=_enum_choices(ReinterventionKind)),
            FormField("reason", "Reason", "text", required=True),
            FormField("mri_on", "MRI date", "date", help="pre-MRI checklist: the date of the scan"),
            FormField("kit", "Kit used", "choice", choices=(("", "none"), *_enum_choices(Kit, {"refill": "refill kit", "cap": "CAP kit"}))),
            FormField("devices_involved", "Devices involved", "list", placeholder="serials, comma separated"),
            NOTES,
        ]
    if kind is EventKind.trial_start:
        return [
            OCCURRED,
            FormField("baseline_nrs", "Baseline pain (NRS)", "int", unit="/10", required=True),
            FormField("planned_days", "Planned length", "int", unit="days", required=True),
            NOTES,
        ]
    if kind is EventKind.trial_end:
        return [
            OCCURRED,
            FormField("end_nrs", "Pain at end (NRS)", "int", unit="/10", required=True),
            FormField("analgesics", "Analgesics", "choice", required=True, choices=_enum_choices(AnalgesicChange)),
            FormField("patient_satisfied", "Patient satisfied", "flag"),
            NOTES,
        ]
    if kind is EventKind.outcome:
        return [
            OCCURRED,
            FormField("pain_nrs", "Pain (NRS)", "int", unit="/10", required=True),
            FormField("oral_mme_mg_per_day", "Total oral MME", unit="mg/day"),
            FormField("opioids", "Opioids", "opioids", placeholder="oxycodone 40 mg/day; fentanyl 25 mcg/h"),
            FormField("functional_instrument", "Functional score", "choice", choices=(("", "none"), *_enum_choices(FunctionalInstrument, {m.value: m.value for m in FunctionalInstrument}))),
            FormField("functional_score", "Score", unit="points"),
            NOTES,
        ]
    raise ValueError(f"no form for {kind}")  # pragma: no cover - every EventKind is handled


# ====================================================================== raw values → record values


def parse_field(f: FormField, value: Any, *, today: dt.date | None = None, known_drugs: Iterable[str] = ()) -> Any:
    """One field's typed value (raises ``InputError`` naming ``f.key``)."""
    if f.type == "number":
        return parse_number(f.key, value, f.unit if "or" not in f.unit else "", required=f.required)
    if f.type == "int":
        return parse_int(f.key, value, f.unit if f.unit.isalpha() else "", required=f.required)
    if f.type == "date":
        return parse_date(f.key, value, today=today, required=f.required)
    if f.type == "text":
        return parse_free_text(f.key, value, required=f.required)
    if f.type == "choice":
        return parse_choice(f.key, value, f.choices, required=f.required)
    if f.type == "flag":
        return parse_flag(f.key, value)
    if f.type == "multi":
        items = value if isinstance(value, (list, tuple)) else _items(_text(value))
        return [parse_choice(f.key, v, f.choices, required=True) for v in items]
    if f.type == "contacts":
        return parse_contacts(f.key, value, required=f.required)
    if f.type == "impedances":
        return parse_impedances(f.key, value)
    if f.type == "drugs":
        return parse_drug_list(f.key, value, known_drugs)
    if f.type == "flex":
        return parse_flex_steps(f.key, value)
    if f.type == "opioids":
        return parse_opioids(f.key, value)
    if f.type == "list":
        return parse_list(f.key, value)
    raise _fail(f.key, value, f"unknown field type {f.type}")


def parse_fields(
    fields: Sequence[FormField], raw: Mapping[str, Any], *, today: dt.date | None = None, known_drugs: Iterable[str] = ()
) -> dict[str, Any]:
    """Every field's typed value; all problems together in one ``InputError``."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    known = list(known_drugs)
    for f in fields:
        try:
            values[f.key] = parse_field(f, raw.get(f.key), today=today, known_drugs=known)
        except InputError as exc:
            problems += exc.problems
    if problems:
        raise InputError(problems)
    return values


def _program_values(prefix: str, typed: Mapping[str, Any], base: PumpProgram | None) -> dict[str, Any]:
    """A pump program from the form: every setting the form shows as typed (blank: not
    set), every setting it does not show carried over unchanged from ``base``, the
    program in force (issue 13.1: a refill must never reprogram the lockout it does
    not show).  A value the chosen mode does not use (the dose in flex mode, flex steps
    in simple continuous mode) is left out, as the pump ignores it."""
    shown = {key.removeprefix(prefix + ".") for key in typed if key.startswith(prefix + ".")}
    program: dict[str, Any] = base.model_dump(mode="json", exclude={"mode", "drugs"}) if base is not None else {}
    mode = typed.get(f"{prefix}.mode")
    program["mode"] = mode
    drugs = [{"drug": typed.get(f"{prefix}.drug"), "concentration_mg_per_ml": typed.get(f"{prefix}.concentration_mg_per_ml")}]
    drugs += typed.get(f"{prefix}.other_drugs") or []
    program["drugs"] = drugs
    for name in ("dose_mg_per_day", "flow_rate_ml_per_day", "bolus_ml", "bolus_max_per_day", "bolus_lockout_min"):
        if name in shown:
            program[name] = typed.get(f"{prefix}.{name}")
    if "flex_steps" in shown:
        program["flex_steps"] = typed.get(f"{prefix}.flex_steps") or None
    if mode == "flex":
        program["dose_mg_per_day"] = None
    elif mode == "simple_continuous":
        program["flex_steps"] = None
    return program


def event_values(
    kind: EventKind | str,
    typed: Mapping[str, Any],
    keep_stim_programs: Sequence[Mapping] = (),
    base_program: PumpProgram | None = None,
) -> dict[str, Any]:
    """The record values (for ``services.parse_event_data``) from typed field values.

    Blank optional fields are left out: the record reads them as not given (None),
    never as a value.  For a stimulator programming change, ``keep_stim_programs`` are
    the device's other programs, carried over unchanged after the edited one.  For a
    pump, ``base_program`` is the program in force (``base_pump_program``): what the
    form does not show is carried over from it.
    """
    kind = EventKind(kind)
    values: dict[str, Any] = {}
    for key, value in typed.items():
        if key in ("occurred_on", LIMIT_OVERRIDE.key) or "." in key:  # the override: ``with_limit_override``
            continue
        if value is None or value == "":
            continue
        values[key] = value
    if kind is EventKind.refill:
        values["program"] = _program_values("program", typed, base_program)
    elif kind is EventKind.programming:
        if any(k.startswith("pump_program.") for k in typed):
            values["pump_program"] = _program_values("pump_program", typed, base_program)
        else:
            unit = typed.get("stim.amplitude_unit") or "mA"
            program: dict[str, Any] = {
                "name": typed.get("stim.name"),
                "contacts": typed.get("stim.contacts"),
                "pulse_width_us": typed.get("stim.pulse_width_us"),
                "frequency_hz": typed.get("stim.frequency_hz"),
                "waveform": typed.get("stim.waveform"),
                "amplitude_ma" if unit == "mA" else "amplitude_v": typed.get("stim.amplitude"),
            }
            for name in ("cycling_on_s", "cycling_off_s", "patient_min_amplitude", "patient_max_amplitude", "group"):
                if typed.get(f"stim.{name}") not in (None, ""):
                    program[name] = typed[f"stim.{name}"]
            others = [dict(p) for p in keep_stim_programs if p.get("name") != program["name"]]
            values["stim_programs"] = [program, *others]
            values["active_program"] = program["name"]
    elif kind is EventKind.interrogation and values.get("alarms"):
        values["alarms"] = [{"code": code} for code in values["alarms"]]
    elif kind is EventKind.reintervention and values.get("kit") == "":
        values.pop("kit")
    elif kind is EventKind.outcome and not values.get("functional_instrument"):
        values.pop("functional_instrument", None)
    return values


def with_limit_override(data: Any, reason: str | None, warnings: Sequence[Any]) -> Any:
    """Issue 18.2: the record with an override of every soft drug limit in ``warnings``
    (the preview's), for the reason typed; unchanged when no reason was typed or no soft
    limit is exceeded (the store then refuses the soft limits, or an override of none)."""
    from devicelog.clinic.pump import overridable

    soft = overridable(warnings)
    if not reason or not soft:
        return data
    override = {"reason": reason, "limits": [{"code": w.code, "limit": w.message} for w in soft]}
    return type(data).model_validate({**data.model_dump(mode="json"), "limit_override": override})


def field_for(problem_field: str, fields: Sequence[FormField]) -> str:
    """The key of the form field a refusal belongs to ("" when no field fits).

    ``problem_field`` is a record path such as ``data.program.drugs.0.concentration_mg_per_ml``;
    the field whose target is the longest prefix of it wins.
    """
    path = problem_field.removeprefix("data.")
    best, best_len = "", -1
    for f in fields:
        for target in f.paths:
            if (path == target or path.startswith(target + ".")) and len(target) > best_len:
                best, best_len = f.key, len(target)
    return best


# ====================================================================== defaults and prefill


def current_pump_program(history: DeviceHistory) -> PumpProgram | None:
    """The program of the latest refill or pump programming change."""
    for event in reversed(history.events):
        if isinstance(event.data, RefillData):
            return event.data.program
        if isinstance(event.data, ProgrammingData) and event.data.pump_program is not None:
            return event.data.pump_program
    return None


def base_pump_program(history: DeviceHistory, amending: Any = None) -> PumpProgram | None:
    """The program a pump form starts from and carries over what it does not show: the
    entry's own program when amending one, else the program in force."""
    if isinstance(amending, RefillData):
        return amending.program
    if isinstance(amending, ProgrammingData) and amending.pump_program is not None:
        return amending.pump_program
    return current_pump_program(history)


def current_stim_programs(history: DeviceHistory) -> tuple[list[StimProgram], str | None]:
    """The stimulation programs of the latest programming change, and the active one."""
    for event in reversed(history.events):
        if isinstance(event.data, ProgrammingData) and event.data.stim_programs:
            return list(event.data.stim_programs), event.data.active_program
    return [], None


def last_low_alarm_ml(history: DeviceHistory) -> float | None:
    for event in reversed(history.events):
        if isinstance(event.data, RefillData) and event.data.low_alarm_ml is not None:
            return event.data.low_alarm_ml
    return history.device.model.low_alarm_ml


def _num(value: float | int | None) -> str:
    """A stored number as the form shows it: the shortest text that reads back as the
    same number (``repr``), so saving a form unchanged saves the same value (``:g``
    kept six digits: 0.1234567 came back as 0.123457)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def program_raw(prefix: str, program: PumpProgram) -> dict[str, Any]:
    """A pump program as the form's raw values."""
    first = program.drugs[0]
    return {
        f"{prefix}.mode": program.mode.value,
        f"{prefix}.drug": first.drug,
        f"{prefix}.concentration_mg_per_ml": _num(first.concentration_mg_per_ml),
        f"{prefix}.dose_mg_per_day": _num(program.dose_mg_per_day),
        f"{prefix}.flow_rate_ml_per_day": _num(program.flow_rate_ml_per_day),
        f"{prefix}.flex_steps": ", ".join(f"{_num(s.rate_ml_per_h)}x{_num(s.hours)}" for s in program.flex_steps or ()),
        f"{prefix}.other_drugs": ", ".join(f"{d.drug} {_num(d.concentration_mg_per_ml)}" for d in program.drugs[1:]),
        f"{prefix}.bolus_ml": _num(program.bolus_ml),  # 0 shows as 0; blank only when not set
        f"{prefix}.bolus_max_per_day": _num(program.bolus_max_per_day),
    }


def stim_raw(program: StimProgram) -> dict[str, Any]:
    return {
        "stim.name": program.name,
        "stim.contacts": " ".join(f"{c}{'' if p.value != 'off' else ' '}{p.value}" for c, p in program.contacts.items()),
        "stim.amplitude": _num(program.amplitude),
        "stim.amplitude_unit": program.amplitude_unit,
        "stim.pulse_width_us": _num(program.pulse_width_us),
        "stim.frequency_hz": _num(program.frequency_hz),
        "stim.waveform": program.waveform.value,
        "stim.cycling_on_s": _num(program.cycling_on_s),
        "stim.cycling_off_s": _num(program.cycling_off_s),
        "stim.patient_min_amplitude": _num(program.patient_min_amplitude),
        "stim.patient_max_amplitude": _num(program.patient_max_amplitude),
        "stim.group": program.group,
    }


def defaults(kind: EventKind | str, history: DeviceHistory, today: dt.date) -> dict[str, Any]:
    """Sensible starting values for a new entry: today's date, the device's current
    drug, concentration and dose, its reservoir size and alarm volume."""
    kind = EventKind(kind)
    model = history.device.model
    raw: dict[str, Any] = {"occurred_on": today.isoformat()}
    program = current_pump_program(history)
    if kind is EventKind.refill:
        raw.update({"kit": "refill", "program.mode": "constant_flow" if model.constant_flow else "simple_continuous"})
        if model.reservoir_ml:
            raw["volume_added_ml"] = _num(model.reservoir_ml)
            raw["reservoir_volume_after_ml"] = _num(model.reservoir_ml)
        if program is not None:
            raw.update(program_raw("program", program))
        raw["low_alarm_ml"] = _num(last_low_alarm_ml(history))
    elif kind is EventKind.programming:
        if model.kind is DeviceKind.intrathecal_pump:
            raw["pump_program.mode"] = "constant_flow" if model.constant_flow else "simple_continuous"
            if program is not None:
                raw.update(program_raw("pump_program", program))
        else:
            programs, active = current_stim_programs(history)
            chosen = next((p for p in programs if p.name == active), programs[0] if programs else None)
            if chosen is not None:
                raw.update(stim_raw(chosen))
            else:
                raw.update({"stim.name": "A", "stim.amplitude_unit": "mA", "stim.waveform": "tonic"})
    elif kind is EventKind.interrogation:
        raw["battery_state"] = "ok"
        if model.kind is DeviceKind.intrathecal_pump:
            raw["reason"] = "routine"
    elif kind is EventKind.wound_check:
        raw.update({"drainage": "none", "dehiscence": "none"})
    elif kind is EventKind.trial_start:
        raw["planned_days"] = "7"
    elif kind is EventKind.reintervention:
        raw["kit"] = ""
    return raw


def raw_from_data(kind: EventKind | str, data: Any, occurred_on: dt.date) -> dict[str, Any]:
    """An existing entry as the form's raw values (to amend it)."""
    kind = EventKind(kind)
    dumped = data.model_dump(mode="json")
    raw: dict[str, Any] = {"occurred_on": occurred_on.isoformat()}
    for key, value in dumped.items():
        if key in ("kind", "program", "pump_program", "stim_programs", "active_program", "expected_residual_ml"):
            continue
        if key == "limit_override":
            raw[LIMIT_OVERRIDE.key] = value["reason"] if value else ""
            continue
        if isinstance(value, bool):
            raw[key] = value
        elif value is None:
            raw[key] = ""
        elif isinstance(value, float):
            raw[key] = _num(value)
        elif key == "alarms":
            raw[key] = [a["code"] for a in value]
        elif key == "impedances":
            raw[key] = ", ".join(f"{i['contact']} {_num(i['impedance_ohm'])}" for i in value)
        elif key == "opioids":
            raw[key] = "; ".join(
                f"{o['opioid']} {_num(o['dose_mg_per_day'])} mg/day" if o.get("dose_mg_per_day") is not None
                else f"{o['opioid']} {_num(o['patch_mcg_per_h'])} mcg/h"
                for o in value
            )
        elif key == "devices_involved":
            raw[key] = ", ".join(value)
        else:
            raw[key] = str(value)
    if isinstance(data, RefillData):
        raw.update(program_raw("program", data.program))
    if isinstance(data, ProgrammingData):
        if data.pump_program is not None:
            raw.update(program_raw("pump_program", data.pump_program))
        elif data.stim_programs:
            chosen = next((p for p in data.stim_programs if p.name == data.active_program), data.stim_programs[0])
            raw.update(stim_raw(chosen))
    return raw


# ====================================================================== registration forms


def patient_fields() -> list[FormField]:
    return [
        FormField("mrn", "MRN", "text", required=True),
        FormField("name", "Name", "text", required=True),
        FormField("birth_date", "Date of birth", "date", required=True, placeholder="YYYY-MM-DD"),
        FormField(
            "goals_of_care", "Goals of care", "choice", required=True,
            choices=_enum_choices(GoalsOfCare, {"survival_under_3_months": "expected survival < 3 months"}),
        ),
    ]


def device_fields(models: Sequence[DeviceModel]) -> list[FormField]:
    return [
        FormField("udi", "UDI (scan)", "text", placeholder="(01)…(17)…(10)…(21)… or scan",
                  help="fills device identifier, serial, lot and expiry", targets=("udi",)),
        FormField("model", "Model", "choice", required=True, choices=tuple((m.code, m.label) for m in models)),
        FormField("serial", "Serial", "text", required=True),
        FormField("implanted_on", "Implant date", "date", required=True),
        FormField("implant_type", "Implant", "choice", required=True, choices=_enum_choices(ImplantType)),
        FormField("site", "Site", "text", placeholder="left lower abdomen"),
        FormField("udi_di", "Device identifier (01)", "text", targets=("udi.device_identifier",)),
        FormField("udi_lot", "Lot (10)", "text", targets=("udi.lot",)),
        FormField("udi_expiry", "Expiry (17)", "date", targets=("udi.expiry",)),
        FormField("replaces_serial", "Replaces device (serial)", "text"),
    ]


def parse_udi_field(field: str, text: Any):
    """The UDI field: a parsed ``UdiIn`` or None when blank; refusals as ``InputError``."""
    from devicelog.clinic.udi import UdiError, parse_udi

    raw = _text(text) if not isinstance(text, str) else text
    if not raw.strip():
        return None
    try:
        return parse_udi(raw)
    except UdiError as exc:
        raise _fail(field, raw.strip()[:60], str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - the form must only ever refuse with InputError
        raise _fail(field, raw.strip()[:60], f"cannot read this UDI ({type(exc).__name__})") from None


# ====================================================================== words a person reads

#: Record path prefixes that the forms show as one program's fields.
_PROGRAM_PREFIXES = ("program.", "pump_program.", "stim_programs.0.", "stim.")


def _short_path(path: str) -> str:
    path = path.removeprefix("data.")
    for prefix in _PROGRAM_PREFIXES:
        path = path.removeprefix(prefix)
    return path


_LABELS: dict[str, str] | None = None
_VALUES: dict[tuple[str, str], str] | None = None


def _label_index() -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Every form field's label by record path and by field name, and every choice's
    label by (field name, value), taken from the forms themselves (one source)."""
    global _LABELS, _VALUES
    if _LABELS is None or _VALUES is None:
        from devicelog.clinic.catalogue import shipped_catalogue

        catalogue = shipped_catalogue()
        models = {}
        for m in catalogue.device_models:  # one model of each shape
            models.setdefault((m.kind.value, m.power.value, m.constant_flow), m)
        fields = patient_fields() + device_fields(catalogue.device_models)
        # The interrogation's "reason" is labelled "Interrogation" on its form: other kinds first,
        # so a bare "reason" reads "Reason".
        for kind in sorted(VISIT_FORM_KINDS, key=lambda k: k is EventKind.interrogation):
            for m in sorted(models.values(), key=lambda m: m.kind is not DeviceKind.intrathecal_pump):
                fields += event_fields(kind, m, catalogue.drugs)
        labels: dict[str, str] = {}
        values: dict[tuple[str, str], str] = {}
        for f in fields:
            shown = _with_unit(f)
            for path in (f.key, *f.paths):
                labels.setdefault(path, shown)
                labels.setdefault(_short_path(path), shown)
            for value, label in f.choices:
                for path in (f.key, *f.paths):
                    values.setdefault((_short_path(path), value), label)
        _LABELS, _VALUES = labels, values
    return _LABELS, _VALUES


def field_label(path: str, fields: Sequence[FormField] = ()) -> str:
    """The label a person sees for a record path (``data.program.dose_mg_per_day`` →
    "Daily dose (primary drug) (mg/day)"): the label of the form field it belongs to in
    ``fields`` if given, else of the form that shows it, else the name in plain words."""
    if path.startswith(("(", "$")):
        return path
    if fields:
        key = field_for(path, fields)
        for f in fields:
            if f.key == key:
                return _with_unit(f)
    labels, _ = _label_index()
    short = _short_path(path)
    found = labels.get(path.removeprefix("data.")) or labels.get(short)
    if found is None:
        name = next((part for part in reversed(short.split(".")) if not part.isdigit()), short)
        found = labels.get(name)
    if found is None:  # a field no form shows (an import's): its name in words, its unit spelt out
        unit = next((u for suffix, u in _UNIT_SUFFIXES if name.endswith(suffix)), "")
        words = name.removesuffix(next((sfx for sfx, u in _UNIT_SUFFIXES if u == unit), "") if unit else "")
        found = words.replace("_", " ").capitalize() + (f" ({unit})" if unit else "")
    return found


#: Unit suffixes of record field names (longest first) and how a person writes them.
_UNIT_SUFFIXES = (
    ("_mg_per_day", "mg/day"), ("_mg_per_ml", "mg/mL"), ("_ml_per_day", "mL/day"), ("_ml_per_h", "mL/h"),
    ("_mcg_per_h", "mcg/h"), ("_percent", "%"), ("_days", "days"), ("_ohm", "Ω"), ("_min", "min"),
    ("_ml", "mL"), ("_ma", "mA"), ("_us", "µs"), ("_hz", "Hz"), ("_cm", "cm"), ("_v", "V"), ("_c", "°C"), ("_s", "s"),
)


def _with_unit(f: FormField) -> str:
    """A number field's label with its unit: "Volume added (mL)", "Daily dose (primary drug, mg/day)"."""
    if not f.unit or f.type not in ("number", "int"):
        return f.label
    if f.label.endswith(")"):
        return f"{f.label[:-1]}, {f.unit})"
    return f"{f.label} ({f.unit})"


def value_label(path: str, value: Any) -> str:
    """A coded value as the form offers it (``waveform``, ``high_frequency`` → "high
    frequency"; ``battery_state``, ``eri`` → "ERI"); a number or free text as it is."""
    if not isinstance(value, str):
        return _num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    _, values = _label_index()
    short = _short_path(path)
    name = short.rsplit(".", 1)[-1]
    return values.get((short, value)) or values.get((name, value)) or value


_INTERNAL_NAME = re.compile(r"\b(?:data\.)?[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?:\.[a-z0-9_]+)*\b")


def humanise(text: str, fields: Sequence[FormField] = ()) -> str:
    """A message with each internal field name (``mri_on``, ``data.program.dose_mg_per_day``)
    replaced by its label, and each coded value (``post_mri``) by the words the form uses."""
    labels, values = _label_index()
    by_value = {}
    for (_, value), label in values.items():
        by_value.setdefault(value, label)

    def replace(m: re.Match) -> str:
        name = m.group(0)
        if name.removeprefix("data.") in labels or _short_path(name) in labels:
            return field_label(name, fields)
        return by_value.get(name, name)  # a name no form shows (a settings key) stays as it is written

    return _INTERNAL_NAME.sub(replace, text)


def problem_text(problem: Problem, fields: Sequence[FormField] = ()) -> str:
    """A refusal as a person reads it: the field's label, the value as typed (shortened),
    and the message in the same words (``Date of visit '2027-01-15': is after today``)."""
    from devicelog.clinic.words import quoted

    value = problem.value
    shown = "" if value is None or isinstance(value, (dict, list)) else f" {quoted(value)}"
    return f"{field_label(problem.field, fields)}{shown}: {humanise(problem.message, fields)}"


__all__ = [
    "FormField",
    "base_pump_program",
    "current_pump_program",
    "current_stim_programs",
    "defaults",
    "device_fields",
    "event_fields",
    "event_values",
    "field_for",
    "field_label",
    "humanise",
    "parse_choice",
    "parse_contacts",
    "parse_date",
    "parse_drug_list",
    "parse_field",
    "parse_fields",
    "parse_flag",
    "parse_flex_steps",
    "parse_impedances",
    "parse_int",
    "parse_list",
    "parse_number",
    "parse_opioids",
    "parse_udi_field",
    "patient_fields",
    "problem_text",
    "raw_from_data",
    "value_label",
]
