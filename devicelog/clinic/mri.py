"""Rule 13: the checklist before an MRI, and the post-MRI interrogation it asks for.

Domain rule 13 (domain.md, Rules the software must encode): "Prometra or any pump
before MRI: show 'empty pump (20/40 mL) and give alternative analgesia' as a
checklist.  Log the post-MRI interrogation."  Reference 1.1 says why per pump:

* Flowonix Prometra (I, II 20 mL, II 40 mL) is valve-gated: **empty the pump before
  MRI** (up to 20/40 mL) or risk an overdose (Flowonix PL-21604-02).  Prometra I
  became MR Unsafe in the EU (FSN 2019-044-02).
* Medtronic SynchroMed II/III are MR-conditional; the pump motor (rotor) stalls in
  the magnet, so drug stops for the scan and the pump is interrogated afterwards to
  confirm the motor restarted (catalogue note; a motor stall > 48 h is a critical
  alarm, rule 12).
* Codman 3000 (constant flow): reference 1.1 says nothing on MRI; rule 13's "any
  pump" applies, and the maker's labelling decides.  It has no telemetry (no
  battery, no programmer), so its post-MRI check is logged as an interrogation with
  the reservoir volume measured.

Stimulators are outside rule 13; reference 2 ("MRI") says: the label must say
MR-Conditional; check eligibility (field strength, head vs full body) and set MRI
mode first.  :func:`checklist` says that for them rather than nothing.

How the two records are kept
----------------------------
* **Checklist done for an MRI date**: a reintervention of kind ``pre_mri_checklist``
  with ``mri_on`` (the scan date; ``records.ReinterventionData``), its reason saying
  what was done.  Not an interrogation on purpose: any later interrogation clears
  earlier alarm tasks (``clinic.alarms``), so a checklist interrogation without the
  alarms re-entered would drop them.  It changes no other forecast (wounds, alarms,
  battery and trials look at other kinds) and does not count as a routine follow-up
  visit (``clinic.forecast.routine_follow_up_date``).
* **Post-MRI interrogation**: an ordinary interrogation (with its reservoir volume,
  alarms, battery: what the forecast reads) with ``reason`` ``post_mri`` and
  ``mri_on`` (``records.InterrogationData``).

What answers a checklist (:func:`post_mri_interrogations`): an interrogation whose
``mri_on`` is that MRI, a ``post_mri_reprogramming`` reintervention on or after the MRI
date, or any interrogation dated after the MRI day (the pump's state was read after
the scan).  A routine interrogation on the MRI day itself does not: it may be the read
before the scan.

Records from before these fields (a reintervention ``other`` whose reason started
"Pre-MRI checklist (rule 13): MRI on …") were only ever written by the unreleased
first version of ``devicelog mri``; they are not read as checklists (they stay plain
``other`` reinterventions on the record).

The outstanding post-MRI interrogations are due items (:func:`post_mri_items`, called
by ``clinic.forecast.forecast_device``), so this module is forecast code: a change to
what it gives bumps ``store.forecasts.FORECAST_VERSION``.

Nothing here reads the database or the clock: ``as_of`` comes in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from devicelog.clinic.catalogue import DeviceModel, Drug, MrStatus
from devicelog.clinic.due import DueItem, fmt_ml, make_item
from devicelog.clinic.history import DeviceHistory, clinical_order
from devicelog.clinic.pump import (
    daily_volume_ml,
    delivery_segments,
    drug_doses_mg_per_day,
    expected_residual_ml,
    pump_fills,
    program_timeline,
)
from devicelog.clinic.records import (
    DeviceKind,
    Event,
    InterrogationData,
    InterrogationReason,
    PumpMode,
    PumpProgram,
    ReinterventionData,
    ReinterventionKind,
)
from devicelog.clinic.words import plural

RULE = "rule 13"

#: Days after the MRI by which an unlogged post-MRI interrogation is shown as overdue.
#: 0: the same day, after the scan (a SynchroMed's stalled rotor, an emptied Prometra).
#: A constant of the rule, not a clinic setting.
POST_MRI_INTERROGATION_DAYS = 0


@dataclass(frozen=True)
class Step:
    """One line of the checklist: what to do, with the device's own figures, and where it comes from."""

    key: str
    text: str
    source: str
    figures: dict[str, object] = field(default_factory=dict)
    level: str = "do"  # "do", "warn" (read before the scan), "note"


@dataclass(frozen=True)
class InterruptedDrug:
    """A drug of the pump's current program whose delivery the MRI interrupts."""

    code: str
    name: str
    concentration: str  # in the drug's display unit, e.g. "10 mg/mL"
    dose_per_day: str  # e.g. "3 mg/day", "2.4 mcg/day"
    concentration_mg_per_ml: float
    dose_mg_per_day: float
    is_opioid: bool


@dataclass(frozen=True)
class PostMri:
    """One MRI whose checklist was recorded, and whether its post-MRI interrogation was logged."""

    mri_on: dt.date
    checklist_event_id: int
    checklist_on: dt.date
    answered_by_event_id: int | None
    answered_on: dt.date | None
    due_on: dt.date

    @property
    def outstanding(self) -> bool:
        return self.answered_by_event_id is None

    def status(self, as_of: dt.date) -> str:
        """``done``, ``planned`` (MRI still ahead), ``due`` (the MRI day) or ``overdue``."""
        if not self.outstanding:
            return "done"
        if as_of < self.mri_on:
            return "planned"
        return "due" if as_of <= self.due_on else "overdue"

    def text(self, as_of: dt.date) -> str:
        state = self.status(as_of)
        if state == "done":
            return f"post-MRI interrogation logged on {self.answered_on} (MRI on {self.mri_on})"
        if state == "planned":
            return f"MRI on {self.mri_on}: interrogate the pump after the scan and log it (checklist done {self.checklist_on})"
        if state == "due":
            return f"MRI on {self.mri_on}: post-MRI interrogation not logged yet (due {self.due_on})"
        late = (as_of - self.due_on).days
        return f"MRI on {self.mri_on}: post-MRI interrogation not logged, overdue by {late} day{'s' if late != 1 else ''}"


@dataclass(frozen=True)
class Checklist:
    patient_mrn: str
    patient_name: str
    serial: str
    model_label: str
    device_kind: str
    family: str  # prometra, synchromed, constant_flow, pump, stimulator
    applies: bool  # True for a pump (rule 13); False: outside rule 13
    mr_status: str
    mr_note: str
    reservoir_ml: float | None
    expected_now_ml: float | None
    expected_now_why: str
    drugs: tuple[InterruptedDrug, ...]
    steps: tuple[Step, ...]
    mri_on: dt.date | None
    post_mri: tuple[PostMri, ...]

    @property
    def outstanding(self) -> list[PostMri]:
        return [p for p in self.post_mri if p.outstanding]


# ----------------------------------------------------------------------- the pump


def pump_family(model: DeviceModel) -> str:
    """Which rule 13 steps a device gets: ``prometra`` (must be emptied), ``synchromed``
    (rotor stalls; interrogate after), ``constant_flow`` (Codman: no telemetry),
    ``pump`` (another pump: rule 13's "any pump"), ``stimulator`` (outside rule 13)."""
    if model.kind is not DeviceKind.intrathecal_pump:
        return "stimulator"
    text = f"{model.code} {model.model}".lower()
    if "prometra" in text:
        return "prometra"
    if "synchromed" in text:
        return "synchromed"
    if model.constant_flow:
        return "constant_flow"
    return "pump"


def current_program(history: DeviceHistory) -> PumpProgram | None:
    """The pump program in force: the latest set by a refill or a programming change."""
    timeline = program_timeline(history.events)
    return timeline[-1][1] if timeline else None


def interrupted_drugs(program: PumpProgram | None, drugs: Mapping[str, Drug]) -> tuple[InterruptedDrug, ...]:
    """Each drug of the program with its concentration and continuous daily dose
    (rule 1: daily volume × concentration; the primary drug's programmed dose in simple
    continuous mode), in the unit the drug is read in, so the alternative analgesia can
    be planned for what the pump stops delivering."""
    if program is None:
        return ()
    doses = drug_doses_mg_per_day(program)
    out = []
    for i, d in enumerate(program.drugs):
        dose = program.dose_mg_per_day if (i == 0 and program.mode is PumpMode.simple_continuous) else doses[d.drug]
        info = drugs.get(d.drug)
        if info is not None:
            conc, per_day, name, opioid = info.show(d.concentration_mg_per_ml, "/mL"), info.show(dose, "/day"), info.name, info.is_opioid
        else:
            conc, per_day, name, opioid = f"{d.concentration_mg_per_ml:g} mg/mL", f"{dose:.6g} mg/day", d.drug, False
        out.append(InterruptedDrug(d.drug, name, conc, per_day, d.concentration_mg_per_ml, float(dose), opioid))
    return tuple(out)


def expected_volume_now(history: DeviceHistory, as_of: dt.date) -> tuple[float | None, str]:
    """Rule 8's expected residual on ``as_of`` from the last fill (programmed delivery,
    boluses not counted, so it is the most the reservoir should hold), and how."""
    fills = pump_fills(history.events)
    if not fills:
        return None, "no refill logged: the volume in the pump is not known"
    fill = fills[-1]
    if as_of < fill.event.occurred_on:
        return None, f"the last fill ({fill.event.occurred_on}) is after {as_of}"
    start_on, start_ml = fill.event.occurred_on, fill.data.reservoir_volume_after_ml
    start_text = f"filled to {fmt_ml(start_ml)} on {start_on}"
    # A volume the pump reported on a later day (an interrogation, a programming change) is
    # newer than the fill: count from it (e.g. the 0 mL of an emptied Prometra).  One
    # reported on the fill's own day is not: the pump is read before it is refilled, and
    # the order entries of one visit are typed in says nothing of the order they were done
    # in, so the fill is the latest volume of its day.
    ordered = clinical_order(history.events)
    after_fill = ordered[[e.id for e in ordered].index(fill.event.id) + 1 :]
    for event in after_fill:
        reported = getattr(event.data, "reservoir_volume_ml", None)
        if reported is not None and fill.event.occurred_on < event.occurred_on <= as_of:
            start_on, start_ml = event.occurred_on, reported
            start_text = f"{fmt_ml(reported)} reported by the {event.kind.label.lower()} on {event.occurred_on}"
    pieces = []
    for s in delivery_segments(fill, as_of):
        days = max(0, (min(s.end_on, as_of) - max(s.start_on, start_on)).days)
        pieces.append((days, daily_volume_ml(s.program)))
    volume = expected_residual_ml(start_ml, pieces, 0.0)
    days = sum(d for d, _ in pieces)
    return volume, f"{start_text}, {plural(days, 'day')} at the programmed rate (rule 8; boluses not counted)"


# ----------------------------------------------------------------------- records


def pre_mri_reason(mri_on: dt.date, detail: str = "") -> str:
    """The reason written on a checklist-done record when the user gives none of their own."""
    return f"Pre-MRI checklist (rule 13) for the MRI on {mri_on.isoformat()}" + (f"; {detail}" if detail else "")


def checklist_mri_date(event: Event) -> dt.date | None:
    """The MRI date a "checklist done" record (reintervention ``pre_mri_checklist``) is for, else None."""
    data = event.data
    if isinstance(data, ReinterventionData) and data.reintervention is ReinterventionKind.pre_mri_checklist:
        return data.mri_on
    return None


def post_mri_date(event: Event) -> dt.date | None:
    """The MRI date a post-MRI interrogation (reason ``post_mri``) follows, else None."""
    data = event.data
    if isinstance(data, InterrogationData) and data.reason is InterrogationReason.post_mri:
        return data.mri_on
    return None


def _answers(event: Event, mri_on: dt.date) -> bool:
    if event.occurred_on < mri_on:
        return False
    data = event.data
    if isinstance(data, InterrogationData):
        # On the MRI day only the post-MRI one: a routine read that day may be from before the scan.
        return event.occurred_on > mri_on or data.mri_on == mri_on
    return isinstance(data, ReinterventionData) and data.reintervention is ReinterventionKind.post_mri_reprogramming


def post_mri_interrogations(history: DeviceHistory) -> list[PostMri]:
    """Rule 13, "log the post-MRI interrogation": for each MRI whose checklist was
    recorded (effective events: an amended date counts, a voided record drops out), the
    first record that answers it (see the module docstring), if any.
    One record per MRI date; only pumps (reference 2 asks no interrogation of a stimulator)."""
    if history.device.model.kind is not DeviceKind.intrathecal_pump:
        return []
    events = clinical_order(history.events)
    found: dict[dt.date, PostMri] = {}
    for event in events:
        mri_on = checklist_mri_date(event)
        if mri_on is None or mri_on in found:
            continue
        answer = next((e for e in events if _answers(e, mri_on)), None)
        found[mri_on] = PostMri(
            mri_on=mri_on,
            checklist_event_id=event.id,
            checklist_on=event.occurred_on,
            answered_by_event_id=answer.id if answer else None,
            answered_on=answer.occurred_on if answer else None,
            due_on=mri_on + dt.timedelta(days=POST_MRI_INTERROGATION_DAYS),
        )
    return sorted(found.values(), key=lambda p: p.mri_on)


def outstanding_post_mri(history: DeviceHistory) -> list[PostMri]:
    """The MRIs whose post-MRI interrogation is not logged (device still in service)."""
    if not history.device.in_service:
        return []
    return [p for p in post_mri_interrogations(history) if p.outstanding]


def post_mri_items(history: DeviceHistory) -> list[DueItem]:
    """Rule 13 as due items (``clinic.forecast.forecast_device``): one per MRI whose
    post-MRI interrogation is not logged, due on the MRI day
    (:data:`POST_MRI_INTERROGATION_DAYS` after; the latest safe date too: overdue the day
    after), severity high, never elective (the pump's interrupted delivery is checked
    at the end of life too, rule 24)."""
    items = []
    for post in outstanding_post_mri(history):
        items.append(
            make_item(
                history,
                what="Post-MRI pump interrogation",
                code="post_mri_interrogation",
                due_on=post.due_on,
                latest_safe_on=post.due_on,
                severity="high",
                rule=RULE,
                why=f"MRI on {post.mri_on} (pre-MRI checklist recorded {post.checklist_on}) + "
                f"{POST_MRI_INTERROGATION_DAYS} days: interrogate the pump after the scan, the same day, "
                f"and log it as the post-MRI interrogation (rule 13) → {post.due_on}",
                source_event_id=post.checklist_event_id,
            )
        )
    return items


# ----------------------------------------------------------------------- the checklist


def _mr_label(model: DeviceModel) -> str:
    return {"conditional": "MR Conditional", "unsafe": "MR Unsafe", "unknown": "MR status unknown"}[model.mr_status.value]


def checklist(
    history: DeviceHistory, drugs: Mapping[str, Drug] | Sequence[Drug], as_of: dt.date, mri_on: dt.date | None = None
) -> Checklist:
    """Rule 13's pre-MRI checklist for one device, with its own figures: the reservoir
    to empty (mL, from the model), the expected volume in it now, the drugs and doses
    the scan interrupts; for a stimulator, reference 2's MRI line instead."""
    table = dict(drugs) if isinstance(drugs, Mapping) else {d.code: d for d in drugs}
    model = history.device.model
    family = pump_family(model)
    steps: list[Step] = []
    when = f" on {mri_on}" if mri_on else ""
    if model.mr_status is MrStatus.unsafe:
        steps.append(Step("mr_unsafe", f"MR Unsafe in the catalogue: {model.mr_note or 'no MRI without the maker’s advice'}. "
                          "Confirm with radiology and the maker before any scan.",
                          "catalogue" + ("; reference 1.1 (FSN2019-044-02)" if family == "prometra" else ""), level="warn"))
    elif model.mr_status is MrStatus.unknown:
        steps.append(Step("mr_unknown", "MR status unknown in the catalogue: check the device label before any scan.",
                          "catalogue", level="warn"))
    if not history.device.in_service:
        steps.append(Step("not_in_service", f"The device is {history.device.status.value}: check whether it (or part of it) is still in the body.",
                          "device record", level="warn"))

    if family == "stimulator":
        steps += [
            Step("mr_conditional", f"Check the label says MR-Conditional (catalogue: {_mr_label(model)}).", "reference 2, MRI (mrimplant.org)"),
            Step("eligibility", "Check eligibility: field strength (1.5 T / 3 T) and head-only vs full body.", "reference 2, MRI"),
            Step("mri_mode", "Set the maker's MRI mode before the scan.", "reference 2, MRI (Boston Scientific 1.5 T guidelines)"),
            Step("outside_rule_13", "Rule 13's pump checklist does not apply to a stimulator; no post-MRI interrogation is required by the clinical reference.",
                 "rule 13 (pumps)", level="note"),
        ]
        return Checklist(history.patient.mrn, history.patient.name, history.device.serial, model.label, model.kind.value, family, False, model.mr_status.value, model.mr_note,
                         None, None, "", (), tuple(steps), mri_on, ())

    program = current_program(history)
    interrupted = interrupted_drugs(program, table)
    expected, expected_why = expected_volume_now(history, as_of)
    reservoir = float(model.reservoir_ml or 0)
    reservoir_text = fmt_ml(reservoir)
    now_text = f"; expected in it now about {fmt_ml(expected)}: {expected_why}" if expected is not None else f"; {expected_why}"
    figures = {"reservoir_ml": reservoir, "expected_now_ml": None if expected is None else round(expected, 3)}
    if family == "prometra":
        steps.append(Step("empty_pump", f"EMPTY THE PUMP before the MRI{when}: withdraw the whole reservoir (holds up to {reservoir_text}){now_text}. "
                          "Record the volume withdrawn. A Prometra left filled risks an overdose.",
                          "rule 13; reference 1.1 (Flowonix PL-21604-02)", figures))
    else:
        why = {
            "synchromed": "the reference asks it of Prometra; for a SynchroMed follow the maker's MRI instructions",
            "constant_flow": "the reference gives no MRI instruction for a constant-flow pump: follow the maker's labelling",
        }.get(family, "follow the maker's MRI instructions")
        steps.append(Step("empty_pump_decide", f"Decide whether to empty the pump: rule 13 lists it for any pump; {why}. Reservoir {reservoir_text}{now_text}.",
                          "rule 13; reference 1.1", figures))
    if interrupted:
        listed = "; ".join(f"{d.name} {d.concentration}, {d.dose_per_day}" for d in interrupted)
        steps.append(Step("alternative_analgesia", f"Give alternative analgesia for the time the pump delivers nothing: it delivers {listed}.",
                          "rule 13", {"drugs": [d.code for d in interrupted]}))
        if any(d.is_opioid for d in interrupted):
            steps.append(Step("opioid_lapse", "Intrathecal opioid must not lapse without cover (withdrawal).",
                              "reference 6 [GK]", level="warn"))
    else:
        steps.append(Step("alternative_analgesia", "Give alternative analgesia: no refill or program logged, so the drug and dose are not known here: check the pump.",
                          "rule 13", level="warn"))
    if family == "synchromed":
        steps.append(Step("rotor_stall", "The pump motor (rotor) stalls in the MRI field: drug delivery stops during the scan.",
                          "catalogue note; reference 1.1", level="note"))
    if family == "constant_flow":
        after = (f"After the MRI{when}: check the pump (no telemetry: measure the reservoir volume) and log it as the post-MRI interrogation.")
    elif family == "prometra":
        after = (f"After the MRI{when}: interrogate the pump, log the post-MRI interrogation, then refill and reprogram it (it was emptied).")
    else:
        after = (f"After the MRI{when}: interrogate the pump to confirm the motor restarted and log the post-MRI interrogation "
                 "(a motor stall alarm over 48 h is critical, rule 12).")
    steps.append(Step("post_mri_interrogation", after, "rule 13"))
    return Checklist(
        patient_mrn=history.patient.mrn,
        patient_name=history.patient.name,
        serial=history.device.serial,
        model_label=model.label,
        device_kind=model.kind.value,
        family=family,
        applies=True,
        mr_status=model.mr_status.value,
        mr_note=model.mr_note,
        reservoir_ml=reservoir,
        expected_now_ml=expected,
        expected_now_why=expected_why,
        drugs=interrupted,
        steps=tuple(steps),
        mri_on=mri_on,
        post_mri=tuple(post_mri_interrogations(history)),
    )
