"""A device's (or a patient's) whole history for clinicians (issue 5), as plain data.

``build_report`` turns device histories and their raw event rows into a
``HistoryReport``: the timeline (every event in date order, amendments beside what
they amend, voided entries kept and marked), the programming history (each change as
a diff against the program before it, with who made it), the refill ledger of each
pump with its discrepancy trend, and the trend series.  The TUI screen, the text and
JSON renderers here and the PDF (``reports.history_pdf``) all draw from it, so every
format says the same thing.

Clinical numbers come from the clinic rules: reconciliation from
``clinic.pump`` (through ``clinic.ledger``), battery ERI from the forecast, MME from
``clinic.mme``.  Nothing here recomputes a rule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from functools import partial
from typing import Any, Iterable, Mapping, Sequence

from devicelog.clinic.catalogue import Drug
from devicelog.clinic.history import DeviceHistory, clinical_order
from devicelog.clinic.ledger import DiscrepancyTrend, LedgerRow, drugs_label, ledger_trend, refill_ledger
from devicelog.clinic.mme import REFERENCE_ONLY, oral_mme
from devicelog.clinic.programs import (  # noqa: F401 - FieldChange, pump_fields, stim_fields: part of this module's API
    MODE_WORDS,
    NONE,
    WAVEFORM_WORDS,
    FieldChange,
    contacts_text,
    diff_fields,
    pump_fields,
    stim_fields,
)
from devicelog.clinic.programs import drug_amount as _drug_show
from devicelog.clinic.programs import fmt_amount as _g
from devicelog.clinic.programs import memoized as _memoized
from devicelog.clinic.pump import daily_volume_ml, drug_doses_mg_per_day
from devicelog.clinic.records import (
    Event,
    EventKind,
    InterrogationData,
    OutcomeData,
    ProgrammingData,
    PumpProgram,
    RefillData,
    RefillReviewData,
    ReinterventionData,
    StimProgram,
    TrialEndData,
    TrialStartData,
    WoundCheckData,
)
from devicelog.clinic.trends import Series, all_series, oral_mme_series, pain_series
from devicelog.settings import Settings

JSON_FORMAT = "devicelog.history/1"

#: Forecast item codes that speak about the battery (rules 11, 19).
BATTERY_CODES = frozenset(
    {
        "therapy_off_eos",
        "pump_replacement_eos",
        "eos_decision",
        "ipg_replacement_eri",
        "ipg_replacement_projected_eri",
        "planned_replacement",
        "recharge_missed",
    }
)
BATTERY_NOTE_CODES = frozenset({"battery_projection", "recharge_unknown", "recharge_interval_unknown"})


# ====================================================================== content


class Later:
    """A field value to compute on first read: ``Later(fn)`` (see ``Deferred``)."""

    __slots__ = ("compute",)

    def __init__(self, compute) -> None:
        self.compute = compute


class Deferred:
    """A dataclass field that may be given as ``Later(fn)``: ``fn()`` runs when the field
    is first read and its result is kept.  Every reader (attributes, ``asdict`` and so
    the JSON, ``==``, ``replace``) sees the computed value, so a report is the same
    whether a part was computed early or late.

    Why: opening a history in the TUI shows the timeline, programming and ledger at
    once, while the trends (series and battery outlook, ~10 ms for an 800-event pump)
    are drawn only when their tab is first opened, and the JSON copy of each entry's
    data (``TimelineEntry.data``, ~3 ms) only goes into the JSON export.  These are
    computed from values already in memory (no database), so computing them late
    gives what computing them early gave.  (A descriptor-typed dataclass field, as
    the ``dataclasses`` documentation describes.)
    """

    def __init__(self, default: Any = dataclasses.MISSING) -> None:
        self.default = default

    def __set_name__(self, owner, name: str) -> None:
        self.slot = f"_deferred_{name}"

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.default  # the field's default, as ``dataclass`` reads it
        value = obj.__dict__[self.slot]
        if isinstance(value, Later):
            value = obj.__dict__[self.slot] = value.compute()
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.slot] = value


@dataclass
class AckLine:
    """A due item acknowledged, snoozed or withdrawn, as the history shows it."""

    id: int
    device_serial: str
    recorded_at: dt.datetime
    author: str
    action: str  # "acknowledged", "snoozed" or "withdrawn"
    item_key: str
    what: str
    due_on: dt.date | None
    until: dt.date | None
    reason: str
    withdraws_id: int | None = None

    @property
    def line(self) -> str:
        """"Lead impedance out of range (due 2026-07-01) acknowledged by … on …: reason"."""
        at = self.recorded_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        until = f" until {self.until}" if self.until else ""
        takes_back = f" (takes back record {self.withdraws_id})" if self.withdraws_id else ""
        due = f" (due {self.due_on})" if self.due_on else ""
        return f"{self.what}{due} {self.action}{until}{takes_back} by {self.author} on {at}: {self.reason}"


def ack_lines(records, serials: Mapping[int, str]) -> list[AckLine]:
    """``store.acks`` records as history lines (the device named by its serial)."""
    return [
        AckLine(a.id, serials.get(a.device_id, str(a.device_id)), a.recorded_at, a.author, a.word, a.item_key, a.what,
                a.due_on, a.until, a.reason, a.withdraws_id)
        for a in records
    ]


@dataclass
class DeviceSummary:
    id: int
    serial: str
    model: str
    kind: str
    implanted_on: dt.date
    implant_type: str
    status: str
    site: str
    replaces_serial: str | None
    replaced_by_serial: str | None
    udi: str | None
    reservoir_ml: float | None
    mr_status: str

    @property
    def line(self) -> str:
        text = f"{self.serial}  {self.model} ({self.kind})  implanted {self.implanted_on} ({self.implant_type})  {self.status}"
        if self.site:
            text += f"  site: {self.site}"
        if self.replaces_serial:
            text += f"  replaces {self.replaces_serial}"
        if self.replaced_by_serial:
            text += f"  → replaced by {self.replaced_by_serial}"
        return text


@dataclass
class Version:
    """One row of the record behind a timeline entry: the original or an amendment."""

    row_id: int
    recorded_at: dt.datetime
    author: str
    occurred_on: dt.date
    summary: str
    reason: str | None  # None for the original
    voided: bool

    @property
    def line(self) -> str:
        when = self.recorded_at.strftime("%Y-%m-%d %H:%M UTC")
        if self.reason is None:
            return f"original, recorded {when} by {self.author}: {self.occurred_on} {self.summary}"
        if self.voided:
            return f"ENTERED IN ERROR, marked {when} by {self.author}: {self.reason}"
        return f"amended {when} by {self.author} ({self.reason}): {self.occurred_on} {self.summary}"


@dataclass
class TimelineEntry:
    event_id: int
    device_serial: str
    occurred_on: dt.date
    kind: str
    kind_label: str
    author: str
    summary: str
    status: str = ""  # "", "amended" or "entered in error"
    recorded_at: dt.datetime | None = None
    versions: list[Version] = field(default_factory=list)  # filled when amended or voided
    data: dict[str, Any] = Deferred(Later(dict))  # the effective data as JSON values; computed when read


@dataclass
class ProgramChange:
    event_id: int
    device_serial: str
    occurred_on: dt.date
    author: str
    source: str  # "Programming change" or "Refill"
    target: str  # "pump", "program A", "active program"
    changes: list[FieldChange]
    initial: bool
    reason: str = ""


@dataclass
class PumpLedger:
    device_serial: str
    reservoir_ml: float
    limit_ml: float
    rows: list[LedgerRow]
    trend: DiscrepancyTrend

    @property
    def trend_text(self) -> str:
        return self.trend.text


@dataclass
class DeviceTrends:
    device_serial: str
    series: list[Series]
    battery_outlook: list[str]


@dataclass
class HistoryReport:
    clinic_name: str
    as_of: dt.date
    scope: str  # "device NGP100" or "patient MRN001 (all devices)"
    patient_name: str
    patient_mrn: str
    patient_birth_date: dt.date
    patient_status: str
    goals_of_care: str
    devices: list[DeviceSummary]
    timeline: list[TimelineEntry]
    programming: list[ProgramChange]
    ledgers: list[PumpLedger]
    device_trends: list[DeviceTrends] = Deferred()  # computed when first read (Trends tab, renderers)
    patient_series: list[Series] = Deferred()  # pain and oral MME, across the patient's devices; likewise
    oral_to_it_ratio: float
    notes: list[str] = field(default_factory=list)
    #: Acknowledgements, snoozes and their withdrawals of the devices' due items (issue 14.2), oldest first.
    acknowledgements: list[AckLine] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        """The event kinds present, in the order of ``EventKind``."""
        present = {e.kind for e in self.timeline}
        return [k.value for k in EventKind if k.value in present]

    def timeline_of(self, kinds: Iterable[str] | None = None) -> list[TimelineEntry]:
        """The timeline filtered by kind (all when ``kinds`` is None or empty)."""
        wanted = set(kinds or ())
        return [e for e in self.timeline if not wanted or e.kind in wanted]


# ====================================================================== summaries


def pump_program_text(program: PumpProgram, drugs: Mapping[str, Drug], memo: dict[str, str] | None = None) -> str:
    if memo is not None:
        return _memoized(pump_program_text, program, drugs, memo)
    doses = drug_doses_mg_per_day(program)
    parts = [f"{drugs_label(program, drugs)}; " + ", ".join(f"{c} {_drug_show(drugs, c, mg, '/day')}" for c, mg in doses.items())]
    parts.append(f"{daily_volume_ml(program):.3f} mL/day ({MODE_WORDS[program.mode]})")
    if program.bolus_max_per_day:
        parts.append(f"bolus {_g(program.bolus_ml, 'mL', 3)} × {program.bolus_max_per_day}/day")
    return "; ".join(parts)


def stim_program_text(p: StimProgram) -> str:
    return (
        f"{p.name}: {contacts_text(p.contacts)}, {_g(p.amplitude, p.amplitude_unit)}, {_g(p.pulse_width_us, 'µs')}, "
        f"{_g(p.frequency_hz, 'Hz')}, {WAVEFORM_WORDS[p.waveform.value]}"
    )


def impedance_flags(data: InterrogationData, settings: Settings) -> list[str]:
    """Rule 18: contacts above the open or below the short threshold."""
    flags = []
    for c in data.impedances:
        if c.impedance_ohm > settings.impedance_open_ohm:
            flags.append(f"{c.contact} {c.impedance_ohm:g} Ω open (> {settings.impedance_open_ohm:g} Ω)")
        elif c.impedance_ohm < settings.impedance_short_ohm:
            flags.append(f"{c.contact} {c.impedance_ohm:g} Ω short (< {settings.impedance_short_ohm:g} Ω)")
    return flags


def limit_override_text(data: Any) -> str:
    """Issue 18.2: the soft drug limits an entry overrode, each with its source, and why."""
    override = getattr(data, "limit_override", None)
    if override is None:
        return ""
    limits = " | ".join(lim.limit for lim in override.limits)
    return f"; SOFT LIMIT OVERRIDDEN ({override.reason}): {limits}"


def summarize(event: Event, settings: Settings, drugs: Mapping[str, Drug], memo: dict[str, str] | None = None) -> str:
    """One line a clinician reads for an event, every number with its unit (``memo``:
    see ``pump_program_text``)."""
    d = event.data
    if isinstance(d, RefillData):
        text = (
            f"withdrawn {_g(d.volume_withdrawn_ml, 'mL')}, added {_g(d.volume_added_ml, 'mL')}, "
            f"reservoir after {_g(d.reservoir_volume_after_ml, 'mL')}"
        )
        if d.measured_after_ml is not None:
            text += f" (measured {_g(d.measured_after_ml, 'mL')})"
        if d.bolus_volume_since_last_fill_ml:
            text += f", boluses since last fill {_g(d.bolus_volume_since_last_fill_ml, 'mL')}"
        text += f"; {pump_program_text(d.program, drugs, memo)}"
        if d.admixture_bud:
            text += f"; beyond-use {d.admixture_bud}"
        if d.pocket_fill_reason:
            text += f"; pocket-fill reason: {d.pocket_fill_reason}"
        text += limit_override_text(d)
    elif isinstance(d, InterrogationData):
        parts = []
        if d.battery_percent is not None:
            parts.append(f"battery {_g(d.battery_percent, '%')}")
        if d.battery_v is not None:
            parts.append(f"battery {_g(d.battery_v, 'V')}")
        if d.battery_state.value != "ok":
            parts.append(f"battery {d.battery_state.value.upper()}")
        if d.reservoir_volume_ml is not None:
            parts.append(f"reservoir {_g(d.reservoir_volume_ml, 'mL')}")
        if d.alarms:
            parts.append(
                "alarms: "
                + ", ".join(f"{a.code.value.replace('_', ' ')}{' (CRITICAL)' if a.critical else ''}" for a in d.alarms)
            )
        if d.impedances:
            flags = impedance_flags(d, settings)
            values = ", ".join(f"{c.contact} {c.impedance_ohm:g} Ω" for c in d.impedances)
            parts.append(f"impedances {values}" + (f" — FLAG: {'; '.join(flags)}" if flags else ""))
        if d.last_full_charge_on:
            parts.append(f"last full charge {d.last_full_charge_on}")
        if d.recharge_interval_days:
            parts.append(f"recharge every {_g(d.recharge_interval_days, 'days')}")
        text = "; ".join(parts) or "interrogated"
        if d.mri_on:
            text = f"post-MRI (MRI on {d.mri_on}): {text}"
    elif isinstance(d, ProgrammingData):
        if d.pump_program is not None:
            text = pump_program_text(d.pump_program, drugs, memo)
            if d.reservoir_volume_ml is not None:
                text += f"; reservoir {_g(d.reservoir_volume_ml, 'mL')}"
        else:
            text = "; ".join(stim_program_text(p) for p in d.stim_programs)
            if d.active_program:
                text += f"; active {d.active_program}"
        if d.reason:
            text += f"; reason: {d.reason}"
        text += limit_override_text(d)
    elif isinstance(d, WoundCheckData):
        parts = [f"site {d.site}"] if d.site else []
        parts += [f"erythema {_g(d.erythema_cm, 'cm')}", f"drainage {d.drainage.value}"]
        if d.dehiscence.value != "none":
            parts.append(f"dehiscence {d.dehiscence.value.replace('_', ' ')}")
        if d.fever_c is not None:
            parts.append(f"temperature {_g(d.fever_c, '°C', 1)}")
        for flag, word in (
            (d.pocket_swelling, "pocket swelling"),
            (d.pain_on_refill_injection, "pain on refill injection"),
            (d.meningism, "MENINGISM"),
        ):
            if flag:
                parts.append(word)
        if d.culture_taken:
            parts.append(f"culture taken{': ' + d.organism if d.organism else ''}")
        text = ", ".join(parts)
    elif isinstance(d, ReinterventionData):
        text = f"{d.reintervention.value.replace('_', ' ')}: {d.reason}"
        if d.mri_on:
            text += f"; MRI on {d.mri_on}"
        if d.devices_involved:
            text += f"; devices {', '.join(d.devices_involved)}"
        if d.kit:
            text += f"; kit {d.kit.value}"
    elif isinstance(d, TrialStartData):
        text = f"baseline NRS {d.baseline_nrs}/10, planned {d.planned_days} days"
    elif isinstance(d, TrialEndData):
        text = (
            f"end NRS {d.end_nrs}/10, analgesics {d.analgesics.value}, "
            f"patient {'satisfied' if d.patient_satisfied else 'not satisfied'}"
        )
    elif isinstance(d, OutcomeData):
        parts = [f"NRS {d.pain_nrs}/10"]
        if d.opioids:
            mme = oral_mme(d.opioids)
            parts.append(f"oral MME {_g(mme.total_mg_per_day, 'mg/day')}{'' if mme.complete else ' (INCOMPLETE)'}")
            parts.append(", ".join(o.opioid + (f" {o.dose_mg_per_day:g} mg/day" if o.dose_mg_per_day else f" {o.patch_mcg_per_h:g} mcg/h") for o in d.opioids))
        elif d.oral_mme_mg_per_day is not None:
            parts.append(f"oral MME {_g(d.oral_mme_mg_per_day, 'mg/day')} (recorded)")
        if d.functional_instrument is not None and d.functional_score is not None:
            parts.append(f"{d.functional_instrument.value} {d.functional_score:g}")
        text = ", ".join(parts)
    elif isinstance(d, RefillReviewData):
        text = f"review of refill entry {d.refill_event_id}: {d.finding.label}"
        if d.note:
            text += f"; note: {d.note}"
    else:  # pragma: no cover - every kind is handled above
        text = ""
    notes = getattr(d, "notes", "")
    if notes:
        text += f"; notes: {notes}"
    return text


# ====================================================================== timeline


def timeline(
    history: DeviceHistory, corrections: Sequence[Event], settings: Settings, drugs: Mapping[str, Drug]
) -> list[TimelineEntry]:
    """Every event of one device in clinical order, effective values shown, with the
    original and each amendment beside an amended one; voided events stay, marked.

    ``corrections`` holds the amendment rows and the originals they amend (every raw
    row of the device, as ``store.queries.raw_events`` gives, will do too).
    """
    amendments: dict[int, list[Event]] = defaultdict(list)
    originals: dict[int, Event] = {}
    for row in corrections:
        if row.amends_id is not None:
            amendments[row.amends_id].append(row)
        else:
            originals[row.id] = row
    effective = {e.id: e for e in history.events}
    serial = history.device.serial
    memo: dict[str, str] = {}
    entries = []
    for event_id in effective.keys() | amendments.keys():
        rows = sorted(amendments[event_id], key=lambda r: r.id) if event_id in amendments else ()
        original = originals.get(event_id) or effective[event_id]
        shown = effective.get(event_id)
        status = ""
        if rows:
            status = "entered in error" if rows[-1].voided else "amended"
        if shown is None:  # voided: show what was entered, marked
            shown = rows[-1]
        kind = original.kind
        entry = TimelineEntry(
            event_id=event_id,
            device_serial=serial,
            occurred_on=shown.occurred_on,
            kind=kind.value,
            kind_label=kind.label,
            author=original.author,
            summary=summarize(shown, settings, drugs, memo),
            status=status,
            data=Later(partial(shown.data.model_dump, mode="json")),
            recorded_at=original.recorded_at,
        )
        if rows:
            entry.versions = [
                Version(r.id, r.recorded_at, r.author, r.occurred_on, summarize(r, settings, drugs, memo), r.amendment_reason if r is not original else None, r.voided)
                for r in [original, *rows]
            ]
        entries.append(entry)
    entries.sort(key=lambda t: (t.occurred_on, t.recorded_at, t.event_id))
    return entries


# ====================================================================== programming


def programming_history(history: DeviceHistory, drugs: Mapping[str, Drug]) -> list[ProgramChange]:
    """Each program set on the device, as a diff against the one before it.

    Pumps: every refill and programming change carries a program; a refill that
    leaves the program as it was is not listed, a programming change always is.
    Stimulators: per program name, plus which program is active.
    """
    changes: list[ProgramChange] = []
    serial = history.device.serial
    pump_before: dict[str, str] | None = None
    stim_before: dict[str, dict[str, str]] | None = None
    active_before: str | None = None
    memo: dict[str, dict[str, str]] = {}
    for e in clinical_order(history.events):
        d = e.data
        program = d.program if isinstance(d, RefillData) else d.pump_program if isinstance(d, ProgrammingData) else None
        reason = d.reason if isinstance(d, ProgrammingData) else ""
        if program is not None:
            now = pump_fields(program, drugs, memo)
            # The memo gives the same dict for the same program: nothing changed.
            diff = [] if now is pump_before else diff_fields(pump_before, now)
            if diff or isinstance(d, ProgrammingData):
                changes.append(ProgramChange(e.id, serial, e.occurred_on, e.author, e.kind.label, "pump", diff, pump_before is None, reason))
            pump_before = now
        elif isinstance(d, ProgrammingData):
            now_stim = {p.name: stim_fields(p) for p in d.stim_programs}
            first = stim_before is None
            before_stim = stim_before or {}
            logged = False
            for name, fields in now_stim.items():
                diff = diff_fields(before_stim.get(name), fields)
                if diff:
                    changes.append(ProgramChange(e.id, serial, e.occurred_on, e.author, e.kind.label, f"program {name}", diff, name not in before_stim, reason))
                    logged = True
            for name in before_stim.keys() - now_stim.keys():
                changes.append(
                    ProgramChange(e.id, serial, e.occurred_on, e.author, e.kind.label, f"program {name}", [FieldChange("program", "present", "removed")], False, reason)
                )
                logged = True
            if d.active_program != active_before and d.active_program is not None:
                changes.append(
                    ProgramChange(e.id, serial, e.occurred_on, e.author, e.kind.label, "active program", [FieldChange("active program", active_before or NONE, d.active_program)], first, reason)
                )
                logged = True
            if not logged:
                changes.append(ProgramChange(e.id, serial, e.occurred_on, e.author, e.kind.label, "programs", [], False, reason))
            stim_before = now_stim
            active_before = d.active_program if d.active_program is not None else active_before
    return changes


# ====================================================================== battery


def battery_outlook(history: DeviceHistory, settings: Settings, drugs: Mapping[str, Drug]) -> list[str]:
    """What the forecast says about the battery: EOS, ERI, projected ERI, planned
    replacement, recharge; suppressed ones (rule 24) say so."""
    from devicelog.clinic.forecast import forecast_device

    if not history.device.in_service:
        return [f"device {history.device.status.value}: no battery outlook"] if history.device.model.power.value != "none" else []
    forecast = forecast_device(history, settings, drugs)
    lines = [f"{i.what}: {i.due_on} — {i.why}" for i in forecast.items if i.code in BATTERY_CODES]
    lines += [
        f"{s.item.what}: {s.item.due_on} (not on the due list: {s.reason}) — {s.item.why}"
        for s in forecast.suppressed
        if s.item.code in BATTERY_CODES
    ]
    lines += [w.message for w in forecast.warnings if w.code in BATTERY_NOTE_CODES]
    return lines


# ====================================================================== report


def device_summary(h: DeviceHistory) -> DeviceSummary:
    d = h.device
    return DeviceSummary(
        id=d.id,
        serial=d.serial,
        model=d.model.label,
        kind=d.model.kind.label,
        implanted_on=d.implanted_on,
        implant_type=d.implant_type.value,
        status=d.status.value,
        site=d.site,
        replaces_serial=d.replaces_serial,
        replaced_by_serial=d.replaced_by_serial,
        udi=d.udi_raw,
        reservoir_ml=d.model.reservoir_ml,
        mr_status=d.model.mr_status.value,
    )


def build_report(
    histories: Sequence[DeviceHistory],
    raw: Mapping[int, Sequence[Event]],
    settings: Settings,
    drugs: Mapping[str, Drug],
    as_of: dt.date,
    *,
    scope: str | None = None,
) -> HistoryReport:
    """The history of one patient's devices (one device, or all of them).

    ``raw`` holds, by device id, the amendment rows and the originals they amend
    (``load_corrections``), or every row (``store.queries.raw_events``).
    """
    if not histories:
        raise ValueError("build_report needs at least one device history")
    histories = sorted(histories, key=lambda h: (h.device.implanted_on, h.device.id))
    patient = histories[0].patient
    if any(h.patient.id != patient.id for h in histories):
        raise ValueError("a history report covers one patient")
    entries: list[TimelineEntry] = []
    programming: list[ProgramChange] = []
    ledgers: list[PumpLedger] = []
    for h in histories:
        device_entries = timeline(h, raw.get(h.device.id, []), settings, drugs)
        entries += device_entries
        programming += programming_history(h, drugs)
        if h.device.model.is_pump:
            # The ledger names who did the refill (the original entry), as the timeline does.
            authors = {e.event_id: e.author for e in device_entries}
            rows = [
                r if authors.get(r.event_id, r.author) == r.author else replace(r, author=authors[r.event_id])
                for r in refill_ledger(h, settings, drugs)
            ]
            reservoir = h.device.model.reservoir_ml or 20.0
            ledgers.append(PumpLedger(h.device.serial, reservoir, settings.discrepancy_limit_ml(reservoir), rows, ledger_trend(rows)))
    entries.sort(key=lambda t: (t.occurred_on, t.recorded_at, t.event_id))
    programming.sort(key=lambda c: (c.occurred_on, c.event_id))
    if scope is None:
        scope = f"device {histories[0].device.serial}" if len(histories) == 1 else f"patient {patient.mrn} (all devices)"
    return HistoryReport(
        clinic_name=settings.clinic_name,
        as_of=as_of,
        scope=scope,
        patient_name=patient.name,
        patient_mrn=patient.mrn,
        patient_birth_date=patient.birth_date,
        patient_status=patient.status.value,
        goals_of_care=patient.goals_of_care.value.replace("_", " "),
        devices=[device_summary(h) for h in histories],
        timeline=entries,
        programming=programming,
        ledgers=ledgers,
        device_trends=Later(partial(device_trends, histories, settings, drugs)),
        patient_series=Later(partial(patient_series, histories)),
        oral_to_it_ratio=settings.oral_to_it_morphine_ratio,
    )


def device_trends(histories: Sequence[DeviceHistory], settings: Settings, drugs: Mapping[str, Drug]) -> list[DeviceTrends]:
    """Each device's series (pain and oral MME are the patient's, see ``patient_series``)
    and battery outlook."""
    out = []
    for h in histories:
        series = [s for s in all_series(h.events, drugs, settings.oral_to_it_morphine_ratio) if s.key not in ("pain_nrs", "oral_mme_mg_per_day")]
        out.append(DeviceTrends(h.device.serial, series, battery_outlook(h, settings, drugs)))
    return out


def patient_series(histories: Sequence[DeviceHistory]) -> list[Series]:
    """Pain NRS and oral MME across the patient's devices (the ones with points)."""
    events = [e for h in histories for e in h.events]
    return [s for s in (pain_series(events), oral_mme_series(events)) if s.points]


def load_corrections(session, device_ids: Sequence[int]) -> dict[int, list[Event]]:
    """The amendment rows of these devices and the originals they amend, by device id.

    Two queries whatever the number of events; the effective events themselves come
    from ``store.queries.load_histories``, so nothing is read twice.
    """
    from devicelog.store import queries

    return queries.corrections(session, device_ids)


def load_report(
    session,
    serial: str | None = None,
    *,
    settings: Settings,
    as_of: dt.date,
    whole_patient: bool = False,
    device_id: int | None = None,
) -> HistoryReport:
    """Read one device, by ``serial`` or ``device_id`` (or, with ``whole_patient``,
    every device of its patient, old ones included) and build the report.  A fixed
    number of queries however many events there are."""
    from devicelog.store import queries, tables

    device = queries.device_by_serial(session, serial) if serial is not None else session.get(tables.Device, device_id)
    if device is None:
        raise LookupError(f"no device has serial {serial!r}" if serial is not None else f"no device has id {device_id}")
    ids = [d.id for d in queries.devices_of_patient(session, device.patient_id)] if whole_patient else [device.id]
    histories = list(queries.load_histories(session, ids))
    corrections = load_corrections(session, ids)
    scope = f"patient {histories[0].patient.mrn} (all devices)" if whole_patient else f"device {device.serial}"
    report = build_report(histories, corrections, settings, queries.drugs_by_code(session), as_of, scope=scope)
    from devicelog.store import acks

    report.acknowledgements = ack_lines(acks.records(session, device_ids=ids), {h.device.id: h.device.serial for h in histories})
    return report


# ====================================================================== renderers


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def to_json_dict(report: HistoryReport) -> dict[str, Any]:
    """The report as plain JSON values (dates ISO strings)."""
    data = _plain(report)
    data["format"] = JSON_FORMAT
    for ledger, out in zip(report.ledgers, data["ledgers"]):
        out["trend"].update(
            {"flagged": ledger.trend.flagged, "text": ledger.trend.text}
        )
        for row, row_out in zip(ledger.rows, out["rows"]):
            row_out["review_open"] = row.review_open  # rule 26: flagged and not reviewed yet
    for trend in data["device_trends"]:
        for s in trend["series"]:
            s["label"] = s["label"] or None
    return data


def render_json(report: HistoryReport) -> str:
    """The exact text of every field (a terminal it is printed on runs none of it:
    ``reports.safe.json_text``)."""
    from devicelog.reports.safe import json_text

    return json_text(json.dumps(to_json_dict(report), indent=2, ensure_ascii=False)) + "\n"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> list[str]:
    right = set(right)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


def ledger_table_rows(ledger: PumpLedger) -> list[list[str]]:
    rows = []
    for r in ledger.rows:
        if r.discrepancy_ml is None:
            flag = "first fill"
        elif r.flagged:
            flag = f"FLAG: {r.direction}"
        else:
            flag = "within limit"
        if r.pocket_fill_flagged:
            flag += "; POSSIBLE POCKET FILL"
        rows.append(
            [
                r.refilled_on.isoformat(),
                _g(r.expected_residual_ml),
                _g(r.withdrawn_ml),
                NONE if r.discrepancy_ml is None else f"{r.discrepancy_ml:+.2f}",
                flag,
                _g(r.added_ml),
                r.drugs,
                r.author,
                r.review_text,
            ]
        )
    return rows


LEDGER_HEADERS = ("date", "expected mL", "withdrawn mL", "discrepancy mL", "flag", "added mL", "drug", "by", "review (rule 26)")


def series_line(s: Series) -> str:
    from devicelog.clinic.trends import sparkline

    last = s.last
    label = f" [{s.label}]" if s.label else ""
    span = f"{s.points[0].on} to {last.on}" if last else ""
    values = s.values
    return (
        f"{s.title} ({s.unit}){label}: {sparkline(values, 40)}  "
        f"min {min(values):g}, max {max(values):g}, last {last.value:g} {s.unit} on {last.on} ({len(values)} point{'s' if len(values) != 1 else ''}, {span})"
    )


def render_text(report: HistoryReport, kinds: Iterable[str] | None = None) -> str:
    """The report as plain text (no colour), every number with its unit.  Text from the
    database is shown as it is typed: a control character is shown as a mark, never
    run by the terminal (``reports.safe.visible``)."""
    from devicelog.reports.safe import visible

    out: list[str] = []
    out.append(f"DEVICE HISTORY — {report.patient_name} (MRN {report.patient_mrn}), born {report.patient_birth_date}")
    out.append(f"{report.clinic_name}; {report.scope}; as of {report.as_of}; patient {report.patient_status}, goals of care: {report.goals_of_care}")
    out.append("")
    out.append("DEVICES")
    out += [f"  {d.line}" for d in report.devices]
    entries = report.timeline_of(kinds)
    out.append("")
    out.append(f"TIMELINE ({len(entries)} events{', kinds: ' + ', '.join(sorted(kinds)) if kinds else ''})")
    several = len(report.devices) > 1
    for e in entries:
        device = f"{e.device_serial}  " if several else ""
        mark = f"  [{e.status.upper()}]" if e.status else ""
        out.append(f"  {e.occurred_on}  {device}{e.kind_label}{mark} — by {e.author}: {e.summary}")
        for v in e.versions:
            out.append(f"      · {v.line}")
    out.append("")
    out.append("PROGRAMMING HISTORY")
    if not report.programming:
        out.append("  no programs logged")
    for c in report.programming:
        device = f"{c.device_serial}  " if several else ""
        head = f"  {c.occurred_on}  {device}{c.source} by {c.author} — {c.target}{' (initial)' if c.initial else ''}"
        if c.reason:
            head += f"; reason: {c.reason}"
        out.append(head)
        if not c.changes:
            out.append("      no change to the settings")
        for f in c.changes:
            out.append(f"      {f.field}: {f.before} → {f.after}")
    for ledger in report.ledgers:
        out.append("")
        out.append(
            f"REFILL LEDGER — {ledger.device_serial} ({ledger.reservoir_ml:g} mL reservoir; discrepancy flagged above {ledger.limit_ml:g} mL)"
        )
        out.append("  discrepancy = withdrawn − expected residual; negative: less than expected")
        out += [f"  {line}" for line in _table(LEDGER_HEADERS, ledger_table_rows(ledger), right=(1, 2, 3, 5))]
        out.append(f"  Trend: {ledger.trend.text}")
    out.append("")
    out.append("TRENDS")
    for t in report.device_trends:
        if t.series or t.battery_outlook:
            out.append(f"  {t.device_serial}")
        for s in t.series:
            out.append(f"    {series_line(s)}")
            out += [f"      note: {n}" for n in s.notes]
        for line in t.battery_outlook:
            out.append(f"    Battery outlook: {line}")
    if report.patient_series:
        out.append("  Patient")
        for s in report.patient_series:
            out.append(f"    {series_line(s)}")
            out += [f"      note: {n}" for n in s.notes]
    if any(s.label == REFERENCE_ONLY for t in report.device_trends for s in t.series):
        out.append(
            f"  IT morphine oral equivalent at {report.oral_to_it_ratio:g}:1 is {REFERENCE_ONLY}: observed ratios vary from 10:1 to 300:1."
        )
    if report.acknowledgements:
        out.append("")
        out.append("DUE ITEMS ACKNOWLEDGED OR SNOOZED")
        for a in report.acknowledgements:
            device = f"{a.device_serial}  " if several else ""
            out.append(f"  {a.recorded_at.astimezone(dt.timezone.utc).date()}  {device}{a.line}")
    for note in report.notes:
        out.append(f"NOTE: {note}")
    return visible("\n".join(out)) + "\n"
