"""The clinical records devicelog keeps, as validated plain values.

These pydantic models are the *Create* models of the data model: every patient,
device and event passes through one of them before it reaches the database, and
the import/export document and the forms use the same ones.  They know nothing of
the database or the screen, so the forecast can take them as they are.

Units are in the names (``volume_ml``, ``dose_mg_per_day``).  Drug amounts are
stored in milligrams whatever unit a drug is shown in; a drug shown in micrograms
(ziconotide, clonidine, fentanyl) is converted at the edge (see ``Drug.display_unit``).
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import ValidationError

#: The longest text any record field holds (issue 19: a 50 MB drug name took 28 s to import).
MAX_TEXT_CHARS = 2000


class Allows:
    """Marks the control characters a text field may hold; every other text holds none."""

    def __init__(self, chars: str) -> None:
        self.chars = chars


def MultiLine() -> Allows:
    """Notes: line breaks and tabs."""
    return Allows("\t\n\r")


#: A scanned GS1 barcode: the group separator (GS, U+001D) ends its variable-length fields.
GS1_SCAN = Allows("\x1d")

#: Control characters (C0, DEL, C1) and the bidirectional embeddings, overrides and isolates,
#: which can make a name read differently from what is stored (issue 19).
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _base_type(annotation: Any) -> Any:
    """``float`` from ``Annotated[float, ...] | None``; a list or dict stays as it is."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


@functools.cache
def _field_kind(model: type[BaseModel], name: str) -> tuple[str, str, int]:
    """How a field's values are checked before pydantic reads them: ("number", "flag", "date",
    "text" or "other"), the control characters its text may hold, and its longest text."""
    info = model.model_fields[name]
    base = _base_type(info.annotation)
    allowed = "".join(m.chars for m in info.metadata if isinstance(m, Allows))
    longest = min([MAX_TEXT_CHARS] + [m.max_length for m in info.metadata if getattr(m, "max_length", None)])
    if base in (int, float):
        return "number", allowed, longest
    if base is bool:
        return "flag", allowed, longest
    if base in (dt.date, dt.datetime, AwareDatetime):
        return "date", allowed, longest
    if _holds_text(base):
        return "text", allowed, longest
    return "other", allowed, longest


def _holds_text(annotation: Any) -> bool:
    """A string, a coded value, or a list or dict of them (not of records)."""
    base = _base_type(annotation)
    if base is str or get_origin(base) is Literal or (isinstance(base, type) and issubclass(base, enum.Enum)):
        return True
    if get_origin(base) in (list, tuple, dict):
        return all(_holds_text(arg) for arg in get_args(base) if arg is not Ellipsis)
    return False


def _text_problem(text: str, allowed: str = "", longest: int = MAX_TEXT_CHARS) -> str | None:
    text = text.strip()
    if len(text) > longest:
        return f"is {len(text):,} characters long; at most {longest:,}"
    bad = next((m for m in _FORBIDDEN.finditer(text) if m.group(0) not in allowed), None)
    if bad is not None:
        c = bad.group(0)
        what = "a bidirectional override" if c >= "\u202a" else ("a line break" if c in "\r\n" else "a control character")
        return f"contains {what} (U+{ord(c):04X}) at character {bad.start() + 1}: type it as plain text"
    return None


def _texts(value: Any):
    """The strings of a plain value: a string, the strings of a list, a dict's keys and
    string values (one level: no record field holds lists of lists, and a value nested
    900 deep must not exhaust the stack here)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        yield from (item for item in value if isinstance(item, str))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from (text for text in (key, item) if isinstance(text, str))


#: Validation context for rows read back from the database: the entry checks of
#: :class:`Record` (text, types as typed) are for what a person or a document gives;
#: a row stored by an earlier version, or by an import before these checks, is read
#: as it is (and shown safely: ``reports.safe.visible``), never refused on reading.
STORED = {"stored": True}


class Record(BaseModel):
    """Base of every record: unknown fields are refused, whitespace trimmed.

    Issue 19, values a clinic could never have, refused in one place for every field of
    every record: a number that is not finite (NaN, Infinity: ``allow_inf_nan``), a number
    given as text or as true/false, a date given as a number, a yes/no given as text,
    text longer than ``MAX_TEXT_CHARS``, and control characters or
    bidirectional overrides in text (only those a field ``Allows``: line breaks and tabs in
    notes, the GS separator in a scanned UDI).
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _plain_values(cls, values: Any, info: ValidationInfo) -> Any:
        if not isinstance(values, dict) or (info.context or {}).get("stored"):
            return values  # a stored row is read as it was written (``STORED``)
        errors = []
        for name, value in values.items():
            if value is None or name not in cls.model_fields:
                continue
            problem = _value_problem(value, *_field_kind(cls, name))
            if problem:
                errors.append({"type": "value_error", "loc": (name,), "input": value, "ctx": {"error": ValueError(problem)}})
        if errors:  # each refusal at its field, as pydantic's own are
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return values


def _value_problem(value: Any, kind: str, allowed: str, longest: int) -> str | None:
    if kind == "number" and isinstance(value, (str, bool)):
        return f"must be a number, not {'true/false' if isinstance(value, bool) else 'text'}"
    if kind == "flag" and isinstance(value, str):  # "yes", "false": pydantic would read them; 0 and 1 stay
        return "must be true or false"
    if kind == "date" and isinstance(value, (int, float)):
        return "must be a date (YYYY-MM-DD), not a number"
    if kind == "text":
        for text in _texts(value):
            problem = _text_problem(text, allowed, longest if isinstance(value, str) else MAX_TEXT_CHARS)
            if problem:
                return problem
    return None


# --------------------------------------------------------------------------- enums


class GoalsOfCare(str, enum.Enum):
    active_treatment = "active_treatment"
    hospice = "hospice"
    survival_under_3_months = "survival_under_3_months"


class PatientStatus(str, enum.Enum):
    active = "active"
    discharged = "discharged"
    deceased = "deceased"


class DeviceKind(str, enum.Enum):
    intrathecal_pump = "intrathecal_pump"
    spinal_cord_stimulator = "spinal_cord_stimulator"
    drg_stimulator = "drg_stimulator"
    peripheral_nerve_stimulator = "peripheral_nerve_stimulator"

    @property
    def label(self) -> str:
        return {
            "intrathecal_pump": "IT pump",
            "spinal_cord_stimulator": "SCS",
            "drg_stimulator": "DRG",
            "peripheral_nerve_stimulator": "PNS",
        }[self.value]


class PowerSource(str, enum.Enum):
    battery = "battery"  # pump battery or primary-cell IPG
    rechargeable = "rechargeable"
    none = "none"  # constant-flow pump, external PNS pulse generator


class DeviceStatus(str, enum.Enum):
    trial = "trial"
    active = "active"
    explanted = "explanted"
    replaced = "replaced"


class ImplantType(str, enum.Enum):
    trial = "trial"
    permanent = "permanent"


class EventKind(str, enum.Enum):
    refill = "refill"
    interrogation = "interrogation"
    programming = "programming"
    wound_check = "wound_check"
    reintervention = "reintervention"
    trial_start = "trial_start"
    trial_end = "trial_end"
    outcome = "outcome"
    refill_review = "refill_review"

    @property
    def label(self) -> str:
        return EVENT_LABELS[self]


#: The kinds of entry a visit form records: every kind but the refill review (rule 26),
#: which names a flagged refill and has its own screen and command.
VISIT_FORM_KINDS = tuple(k for k in EventKind if k is not EventKind.refill_review)


EVENT_LABELS = {
    EventKind.refill: "Refill",
    EventKind.interrogation: "Interrogation",
    EventKind.programming: "Programming change",
    EventKind.wound_check: "Wound check",
    EventKind.reintervention: "Reintervention",
    EventKind.trial_start: "Trial start",
    EventKind.trial_end: "Trial end",
    EventKind.outcome: "Outcome",
    EventKind.refill_review: "Refill flag review",
}


# ------------------------------------------------------------------ small helpers

Volume = Annotated[float, Field(ge=0, le=1000)]
PositiveVolume = Annotated[float, Field(gt=0, le=1000)]
Concentration = Annotated[float, Field(gt=0, le=1000)]
Text = Annotated[str, Field(max_length=2000), MultiLine()]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


# ------------------------------------------------------------------ patients & devices


class PatientIn(Record):
    mrn: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9\-_/.]+$")]
    name: ShortText
    birth_date: dt.date
    goals_of_care: GoalsOfCare = GoalsOfCare.active_treatment
    status: PatientStatus = PatientStatus.active
    died_on: dt.date | None = None

    @model_validator(mode="after")
    def _died_when_deceased(self) -> "PatientIn":
        if self.died_on is not None and self.died_on < self.birth_date:
            raise ValueError(f"died_on {self.died_on} is before birth_date {self.birth_date}")
        return self


class UdiIn(Record):
    """A GS1 UDI: the raw scanned string and the fields parsed out of it (rule 25)."""

    raw: Annotated[str, Field(min_length=1, max_length=200), GS1_SCAN]
    device_identifier: Annotated[str, Field(pattern=r"^\d{14}$")]
    lot: Annotated[str, Field(max_length=20)] | None = None
    serial: Annotated[str, Field(max_length=20)] | None = None
    expiry: dt.date | None = None
    manufactured: dt.date | None = None


class DeviceIn(Record):
    patient_mrn: Annotated[str, Field(min_length=1, max_length=40)]
    model: Annotated[str, Field(min_length=1, max_length=60)]  # catalogue code
    serial: Annotated[str, Field(min_length=1, max_length=40)]
    implanted_on: dt.date
    implant_type: ImplantType = ImplantType.permanent
    site: Annotated[str, Field(max_length=120)] = ""
    status: DeviceStatus = DeviceStatus.active
    udi: UdiIn | None = None
    replaces_serial: Annotated[str, Field(max_length=40)] | None = None
    # For a stimulator trial or permanent IPG the clinic records which cell it has in the
    # catalogue; a rechargeable IPG's expected recharge interval is recorded here.
    recharge_interval_days: Annotated[float, Field(gt=0, le=365)] | None = None


# ------------------------------------------------------------------ pump programs


class DrugConcentration(Record):
    drug: Annotated[str, Field(min_length=1, max_length=40)]  # drug catalogue code
    concentration_mg_per_ml: Concentration


class FlexStep(Record):
    """One step of a flexible (time-varying) pump program: a rate held for some hours."""

    rate_ml_per_h: Annotated[float, Field(ge=0, le=10)]
    hours: Annotated[float, Field(gt=0, le=24)]


class PumpMode(str, enum.Enum):
    simple_continuous = "simple_continuous"
    flex = "flex"
    constant_flow = "constant_flow"


class PumpProgram(Record):
    """What the pump is set to deliver (rule 1, rule 2).

    ``drugs[0]`` is the primary drug of the admixture: its daily dose and concentration
    give the daily volume in simple continuous mode.

    No setting is given a value the person did not give (issue 13.1): ``mode`` must be
    said, and a setting left out is None, "not set" (a record written before the
    field existed, or a program read from a document without it), never 0 or any
    other value.  A form carries over what it does not show from the program in force
    (``devicelog.forms``).
    """

    mode: PumpMode
    drugs: Annotated[list[DrugConcentration], Field(min_length=1, max_length=6)]
    dose_mg_per_day: Annotated[float, Field(gt=0, le=1000)] | None = None
    flex_steps: Annotated[list[FlexStep], Field(max_length=24)] | None = None  # flex mode; None: not set
    flow_rate_ml_per_day: Annotated[float, Field(gt=0, le=10)] | None = None  # constant-flow pumps
    bolus_ml: Annotated[float, Field(ge=0, le=5)] | None = None  # patient (PTM/PTC) bolus volume; None: not set
    bolus_max_per_day: Annotated[int, Field(ge=0, le=24)] | None = None  # None: not set
    bolus_lockout_min: Annotated[int, Field(ge=0, le=1440)] | None = None  # None: not set

    @model_validator(mode="after")
    def _mode_inputs(self) -> "PumpProgram":
        if self.mode is PumpMode.simple_continuous and self.dose_mg_per_day is None:
            raise ValueError("dose_mg_per_day is required in simple continuous mode")
        if self.mode is PumpMode.flex and not self.flex_steps:
            raise ValueError("flex_steps is required in flex mode")
        if self.mode is PumpMode.flex and sum(s.hours for s in self.flex_steps) > 24.0001:
            raise ValueError(f"flex_steps cover {sum(s.hours for s in self.flex_steps)} h, more than 24 h")
        if self.mode is PumpMode.constant_flow and self.flow_rate_ml_per_day is None:
            raise ValueError("flow_rate_ml_per_day is required for a constant-flow pump")
        codes = [d.drug for d in self.drugs]
        if len(set(codes)) != len(codes):
            raise ValueError(f"drugs lists a drug twice: {codes}")
        return self


class OverriddenLimit(Record):
    """One soft drug limit an entry exceeds, as the preview showed it (issue 18.2)."""

    code: Annotated[str, Field(pattern=r"^limit_[a-z0-9_\-]+$", max_length=160)]
    limit: Annotated[str, Field(min_length=1, max_length=1000)]


class LimitOverride(Record):
    """A soft drug limit overridden, with the reason (issue 18.2): stored with the refill
    or programming change, audited with it and shown in the history.  On a server
    (PostgreSQL), only a login holding ``devicelog_clinician`` saves one."""

    reason: Annotated[str, Field(min_length=1, max_length=500)]
    limits: Annotated[list[OverriddenLimit], Field(min_length=1, max_length=24)]


class Kit(str, enum.Enum):
    refill = "refill"
    cap = "cap"  # catheter access port kit


# ------------------------------------------------------------------ events


class RefillData(Record):
    kind: Literal["refill"] = "refill"
    volume_withdrawn_ml: Volume
    expected_residual_ml: Volume | None = None  # as shown when the refill was entered
    volume_added_ml: PositiveVolume
    reservoir_volume_after_ml: PositiveVolume  # programmed into the pump after the fill
    measured_after_ml: Volume | None = None  # measured/aspirated check, if one was made
    program: PumpProgram
    bolus_volume_since_last_fill_ml: Volume | None = None  # from the pump log (rule 8); None: not recorded
    kit: Kit = Kit.refill
    low_alarm_ml: Annotated[float, Field(ge=0, le=10)] | None = None
    admixture_bud: dt.date | None = None  # pharmacy beyond-use date (rule 4)
    pocket_fill_reason: Annotated[str, Field(max_length=200)] | None = None
    limit_override: LimitOverride | None = None  # soft drug limits overridden (issue 18.2)
    notes: Text = ""

    @model_validator(mode="after")
    def _kit(self) -> "RefillData":
        if self.kit is Kit.cap:
            raise ValueError("kit: a refill done with the CAP kit is not allowed (rule 10); use the refill kit")
        return self


class AlarmCode(str, enum.Enum):
    low_reservoir = "low_reservoir"
    eri = "eri"
    empty_reservoir = "empty_reservoir"
    eos = "eos"
    motor_stall = "motor_stall"
    critical_memory_error = "critical_memory_error"
    low_battery_reset = "low_battery_reset"
    premature_eri = "premature_eri"
    premature_eos = "premature_eos"
    lead_impedance = "lead_impedance"
    other = "other"

    @property
    def label(self) -> str:
        return ALARM_LABELS[self]


ALARM_LABELS = {
    AlarmCode.low_reservoir: "low reservoir",
    AlarmCode.eri: "ERI (elective replacement indicator)",
    AlarmCode.empty_reservoir: "empty reservoir",
    AlarmCode.eos: "EOS (end of service: pump stopped)",
    AlarmCode.motor_stall: "motor stall",
    AlarmCode.critical_memory_error: "critical memory error",
    AlarmCode.low_battery_reset: "Low Battery Reset",
    AlarmCode.premature_eri: "premature ERI",
    AlarmCode.premature_eos: "premature EOS",
    AlarmCode.lead_impedance: "lead impedance",
    AlarmCode.other: "other",
}


#: Rule 12 and reference 1.2: which alarms are critical (same-day task).
CRITICAL_ALARMS = frozenset(
    {
        AlarmCode.empty_reservoir,
        AlarmCode.eos,
        AlarmCode.motor_stall,
        AlarmCode.critical_memory_error,
        AlarmCode.low_battery_reset,
        AlarmCode.premature_eos,
    }
)


class Alarm(Record):
    code: AlarmCode
    note: Annotated[str, Field(max_length=200)] = ""

    @property
    def critical(self) -> bool:
        return self.code in CRITICAL_ALARMS


class ContactImpedance(Record):
    contact: Annotated[str, Field(min_length=1, max_length=12)]
    impedance_ohm: Annotated[float, Field(ge=0, le=100000)]


class BatteryState(str, enum.Enum):
    ok = "ok"
    eri = "eri"
    eos = "eos"


class InterrogationReason(str, enum.Enum):
    """Why a device was interrogated: a routine read, or the read rule 13 asks for after an MRI."""

    routine = "routine"
    post_mri = "post_mri"


class InterrogationData(Record):
    kind: Literal["interrogation"] = "interrogation"
    reason: InterrogationReason = InterrogationReason.routine
    # Rule 13: the date of the MRI this interrogation follows (required when reason is
    # post_mri, refused otherwise).  That the interrogation is dated on or after it is
    # checked by ``services.check_event``, which has the date.
    mri_on: dt.date | None = None
    battery_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    battery_v: Annotated[float, Field(ge=0, le=10)] | None = None
    battery_state: BatteryState = BatteryState.ok
    reservoir_volume_ml: Volume | None = None  # pumps: what the pump reports
    alarms: Annotated[list[Alarm], Field(max_length=20)] = []
    impedances: Annotated[list[ContactImpedance], Field(max_length=64)] = []
    last_full_charge_on: dt.date | None = None  # rechargeable IPGs (rule 19)
    recharge_interval_days: Annotated[float, Field(gt=0, le=365)] | None = None
    notes: Text = ""

    @model_validator(mode="after")
    def _mri(self) -> "InterrogationData":
        if self.reason is InterrogationReason.post_mri and self.mri_on is None:
            raise ValueError("mri_on: a post-MRI interrogation (reason post_mri) needs the date of the MRI it follows")
        if self.reason is not InterrogationReason.post_mri and self.mri_on is not None:
            raise ValueError(f"mri_on {self.mri_on} is only for a post-MRI interrogation (reason post_mri, not {self.reason.value})")
        return self


class ContactPolarity(str, enum.Enum):
    anode = "+"
    cathode = "-"
    off = "off"


class Waveform(str, enum.Enum):
    tonic = "tonic"
    burst = "burst"
    high_frequency = "high_frequency"
    dtm = "dtm"
    closed_loop = "closed_loop"
    other = "other"


class StimProgram(Record):
    """One stimulation program (rule 17)."""

    name: Annotated[str, Field(min_length=1, max_length=40)]
    group: Annotated[str, Field(max_length=20)] = ""
    contacts: dict[Annotated[str, Field(min_length=1, max_length=12)], ContactPolarity]
    amplitude_ma: Annotated[float, Field(ge=0, le=25.5)] | None = None
    amplitude_v: Annotated[float, Field(ge=0, le=12)] | None = None
    pulse_width_us: Annotated[float, Field(gt=0, le=1000)]
    frequency_hz: Annotated[float, Field(gt=0, le=10000)]
    waveform: Waveform
    cycling_on_s: Annotated[float, Field(ge=0, le=86400)] | None = None
    cycling_off_s: Annotated[float, Field(ge=0, le=86400)] | None = None
    patient_min_amplitude: Annotated[float, Field(ge=0, le=25.5)] | None = None
    patient_max_amplitude: Annotated[float, Field(ge=0, le=25.5)] | None = None

    @property
    def amplitude_unit(self) -> str:
        return "mA" if self.amplitude_ma is not None else "V"

    @property
    def amplitude(self) -> float:
        return self.amplitude_ma if self.amplitude_ma is not None else float(self.amplitude_v or 0)

    @model_validator(mode="after")
    def _checks(self) -> "StimProgram":
        if (self.amplitude_ma is None) == (self.amplitude_v is None):
            raise ValueError("give exactly one of amplitude_ma (constant current) or amplitude_v (constant voltage)")
        polarities = set(self.contacts.values())
        if ContactPolarity.cathode not in polarities:
            raise ValueError("contacts: a program needs at least one cathode (-)")
        lo, hi = self.patient_min_amplitude, self.patient_max_amplitude
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"patient_min_amplitude {lo} is above patient_max_amplitude {hi}")
        if hi is not None and self.amplitude > hi:
            raise ValueError(f"amplitude {self.amplitude} {self.amplitude_unit} is above the patient maximum {hi}")
        return self


class ProgrammingData(Record):
    kind: Literal["programming"] = "programming"
    pump_program: PumpProgram | None = None
    reservoir_volume_ml: Volume | None = None  # pumps: volume at the time of the change
    stim_programs: Annotated[list[StimProgram], Field(max_length=16)] = []
    active_program: Annotated[str, Field(max_length=40)] | None = None
    reason: Text = ""
    limit_override: LimitOverride | None = None  # soft drug limits overridden (issue 18.2)

    @model_validator(mode="after")
    def _something(self) -> "ProgrammingData":
        if self.pump_program is None and not self.stim_programs:
            raise ValueError("a programming change needs pump_program or stim_programs")
        if self.pump_program is not None and self.stim_programs:
            raise ValueError("a programming change is for a pump or a stimulator, not both")
        return self


class Drainage(str, enum.Enum):
    none = "none"
    serous = "serous"
    purulent = "purulent"


class Dehiscence(str, enum.Enum):
    none = "none"
    partial = "partial"
    exposed_hardware = "exposed_hardware"


class WoundCheckData(Record):
    """Wound record fields (rule 21)."""

    kind: Literal["wound_check"] = "wound_check"
    site: Annotated[str, Field(max_length=80)] = ""
    erythema_cm: Annotated[float, Field(ge=0, le=50)] = 0.0
    drainage: Drainage = Drainage.none
    dehiscence: Dehiscence = Dehiscence.none
    fever_c: Annotated[float, Field(ge=30, le=45)] | None = None
    pocket_swelling: bool = False
    pain_on_refill_injection: bool = False
    meningism: bool = False
    culture_taken: bool = False
    organism: Annotated[str, Field(max_length=80)] = ""
    notes: Text = ""


class ReinterventionKind(str, enum.Enum):
    lead_revision = "lead_revision"
    catheter_revision = "catheter_revision"
    migration = "migration"
    ipg_replacement = "ipg_replacement"
    pump_replacement = "pump_replacement"
    pocket_revision = "pocket_revision"
    explant = "explant"
    dye_study = "dye_study"
    cap_aspiration = "cap_aspiration"
    pocket_fill = "pocket_fill"
    motor_stall = "motor_stall"
    post_mri_reprogramming = "post_mri_reprogramming"
    lead_removal = "lead_removal"  # PNS 60-day lead removal
    pre_mri_checklist = "pre_mri_checklist"  # rule 13: the checklist done before an MRI (mri_on)
    other = "other"


#: Reinterventions that open the wound: each starts a new series of wound checks (rule 20).
SURGICAL_REINTERVENTIONS = frozenset(
    {
        ReinterventionKind.lead_revision,
        ReinterventionKind.catheter_revision,
        ReinterventionKind.migration,
        ReinterventionKind.ipg_replacement,
        ReinterventionKind.pump_replacement,
        ReinterventionKind.pocket_revision,
        ReinterventionKind.explant,
    }
)


class ReinterventionData(Record):
    kind: Literal["reintervention"] = "reintervention"
    reintervention: ReinterventionKind
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    devices_involved: Annotated[list[Annotated[str, Field(max_length=40)]], Field(max_length=10)] = []
    kit: Kit | None = None
    # Rule 13: the date of the MRI a pre_mri_checklist is for (required for that kind,
    # refused for any other).
    mri_on: dt.date | None = None
    notes: Text = ""

    @model_validator(mode="after")
    def _kit(self) -> "ReinterventionData":
        if self.reintervention is ReinterventionKind.cap_aspiration and self.kit is Kit.refill:
            raise ValueError("kit: CAP access with the refill kit is not allowed (rule 10); use the CAP kit")
        if self.reintervention is ReinterventionKind.pre_mri_checklist and self.mri_on is None:
            raise ValueError("mri_on: a pre-MRI checklist (reintervention pre_mri_checklist) needs the date of the MRI")
        if self.reintervention is not ReinterventionKind.pre_mri_checklist and self.mri_on is not None:
            raise ValueError(f"mri_on {self.mri_on} is only for reintervention pre_mri_checklist, not {self.reintervention.value}")
        return self


class ReviewFinding(str, enum.Enum):
    """What the review of a flagged refill found or did (rule 26)."""

    pocket_fill_excluded = "pocket_fill_excluded"
    catheter_study_ordered = "catheter_study_ordered"
    pump_interrogated = "pump_interrogated"
    no_cause_found = "no_cause_found"

    @property
    def label(self) -> str:
        return REVIEW_FINDING_LABELS[self]


REVIEW_FINDING_LABELS = {
    ReviewFinding.pocket_fill_excluded: "pocket fill excluded",
    ReviewFinding.catheter_study_ordered: "catheter study ordered",
    ReviewFinding.pump_interrogated: "pump interrogated",
    ReviewFinding.no_cause_found: "no cause found",
}


class RefillReviewData(Record):
    """Rule 26: the review of a flagged refill (a refill discrepancy, rule 8, or a
    possible pocket fill, rule 9).  Who and when are the event's author and date; the
    review clears every flag of the refill it names from the due list.

    ``refill_event_id`` is the database id of the refill reviewed (the original entry's,
    which an amendment keeps).  In the import/export document it is left out: the
    document names the refill by its ``ref`` in the event's ``reviews``.
    """

    kind: Literal["refill_review"] = "refill_review"
    refill_event_id: Annotated[int, Field(ge=1)] | None = None
    finding: ReviewFinding
    note: Text = ""


Nrs = Annotated[int, Field(ge=0, le=10)]


class TrialStartData(Record):
    kind: Literal["trial_start"] = "trial_start"
    baseline_nrs: Nrs
    planned_days: Annotated[int, Field(ge=0, le=60)] = 7
    notes: Text = ""


class AnalgesicChange(str, enum.Enum):
    reduced = "reduced"
    stable = "stable"
    increased = "increased"


class TrialEndData(Record):
    kind: Literal["trial_end"] = "trial_end"
    end_nrs: Nrs
    analgesics: AnalgesicChange
    patient_satisfied: bool
    notes: Text = ""


class OpioidDose(Record):
    """An oral or transdermal opioid the patient takes, for total oral MME (reference 5)."""

    opioid: Annotated[str, Field(min_length=1, max_length=30)]
    dose_mg_per_day: Annotated[float, Field(gt=0, le=100000)] | None = None
    patch_mcg_per_h: Annotated[float, Field(gt=0, le=1000)] | None = None  # transdermal fentanyl

    @model_validator(mode="after")
    def _one(self) -> "OpioidDose":
        if (self.dose_mg_per_day is None) == (self.patch_mcg_per_h is None):
            raise ValueError("give exactly one of dose_mg_per_day or patch_mcg_per_h")
        return self


class FunctionalInstrument(str, enum.Enum):
    odi = "ODI"
    bpi_interference = "BPI interference"
    eq5d = "EQ-5D"
    pgic = "PGIC"


class OutcomeData(Record):
    kind: Literal["outcome"] = "outcome"
    pain_nrs: Nrs
    oral_mme_mg_per_day: Annotated[float, Field(ge=0, le=100000)] | None = None
    opioids: Annotated[list[OpioidDose], Field(max_length=10)] = []
    functional_instrument: FunctionalInstrument | None = None
    functional_score: Annotated[float, Field(ge=0, le=100)] | None = None
    notes: Text = ""


EventData = Annotated[
    Union[
        RefillData,
        InterrogationData,
        ProgrammingData,
        WoundCheckData,
        ReinterventionData,
        TrialStartData,
        TrialEndData,
        OutcomeData,
        RefillReviewData,
    ],
    Field(discriminator="kind"),
]

DATA_MODELS: dict[EventKind, type[Record]] = {
    EventKind.refill: RefillData,
    EventKind.interrogation: InterrogationData,
    EventKind.programming: ProgrammingData,
    EventKind.wound_check: WoundCheckData,
    EventKind.reintervention: ReinterventionData,
    EventKind.trial_start: TrialStartData,
    EventKind.trial_end: TrialEndData,
    EventKind.outcome: OutcomeData,
    EventKind.refill_review: RefillReviewData,
}


class EventIn(Record):
    """One clinical event for one device, as a person enters it."""

    device_serial: Annotated[str, Field(min_length=1, max_length=40)]
    occurred_on: dt.date
    author: Annotated[str, Field(min_length=1, max_length=80)]
    data: EventData


class Event(Record):
    """An event as the forecast and the reports see it: the effective values after
    amendments, with the ids that tie it to its history."""

    id: int
    device_id: int
    occurred_on: dt.date
    author: str
    recorded_at: dt.datetime
    data: EventData
    amends_id: int | None = None
    amendment_reason: str | None = None
    voided: bool = False

    @property
    def kind(self) -> EventKind:
        return EventKind(self.data.kind)
