"""A realistic demo clinic, generated from a seed.

``generate(patients, seed, as_of)`` yields one :class:`PatientStory` per patient: the
patient, its devices and about three years of events, as items of the import/export
document (``devicelog.transfer``).  Each patient has a random generator of its own
(seeded from the seed and the patient's number), so the same seed gives the same
clinic whatever the batch size, and patient 42 is the same in a 60- and a
100,000-patient clinic.

What is in it (clinical reference in ``shared/domain.md``):

* intrathecal pumps (SynchroMed II 20/40 mL, Prometra II, Codman constant-flow) with
  morphine or hydromorphone, alone or with bupivacaine/clonidine, or ziconotide;
  refills timed from the reservoir and the dose (rules 1-5) so most happen before
  the low-reservoir alarm, a few late; withdrawn volumes near the expected residual
  with a small noise and a few flagged discrepancies (rule 8); interrogations with
  battery readings trending down and occasional alarms; dose titrations;
* SCS (primary-cell and rechargeable), DRG and SPRINT PNS with trials, programs
  (contacts, amplitude, pulse width, frequency), impedances (now and then an open
  contact), wound checks after implants and revisions, the PNS 60-day lead removal;
* a pump replacement (``replaces_serial``), a lead revision, an explant for a pocket
  infection, an amended refill and a voided entry;
* outcomes (NRS, oral MME from the patient's opioids at the CDC factors), patients in
  hospice or with expected survival under 3 months, some deceased;
* relative to ``as_of``, some items overdue and some due soon.

Building: a clinic of up to :data:`CHECKED_LIMIT` patients goes through
``transfer.import_document``, i.e. every record through the records' models and
``services.check_event`` / ``add_device`` / ``add_patient``.  A larger one is written
in batches with SQLAlchemy Core ``executemany`` in one transaction (audited per batch),
after passing every event's values through its record model and the checks of
``services.check_event`` that do not depend on the order of writing (device fit,
volumes within the reservoir, known drugs, dates; a failure is a generator bug and
stops the build), and every :data:`SAMPLE_EVERY`-th patient's whole record (patient,
devices, events) through the document models; ``tests/test_demo.py`` checks that both
paths write the same rows and that a bulk build's export imports cleanly.

Memory of the bulk path (issue 8: at most 300 MB peak RSS whatever the clinic size)
-----------------------------------------------------------------------------------
The build is one transaction, but nothing it holds grows with the clinic: patients are
generated, checked, inserted, audited and forecast :data:`BATCH_PATIENTS` at a time
(~18,000 events), and a batch's rows are dropped before the next batch is generated:

* ``_write_batch`` keeps a batch's rows in its own locals (the generated stories are
  dropped as soon as they became rows), inserts them (events
  :data:`EVENT_ROWS_PER_INSERT` per ``executemany``), and returns, which frees them;
* the batch's audit is appended one entry at a time (``_audit_batch``): the changes of
  at most ``audit.CHANGES_PER_ENTRY`` rows and that entry's JSON payload exist at once,
  never a list of the whole batch's changes beside its rows;
* the due table is refreshed for the batch's devices after its rows are freed
  (``forecasts.refresh_devices`` loads their histories ``forecasts.BATCH_DEVICES`` at
  a time, through the ORM), then the session's identity map is emptied (the bulk path
  has nothing pending in it);
* the only state carried from batch to batch is the next ids and the catalogue.

Before (2,000-patient batches, one audit call with the batch's ~75,000 changes, and the
previous batch's changes still referenced while the next was generated) the peak was
~230 MB at 1,000 patients, ~320 MB at 2,000, ~340 MB at 5,000.  Now it is ~185 MB at
5,000 and ~195 MB at 10,000 (``/usr/bin/time -v devicelog demo``), and the build is
faster too (less memory to allocate and free: 5,000 patients ~37 s -> ~29 s).
A smaller batch saves little more: the interpreter, SQLAlchemy, pydantic and the
record models are ~70 MB before the first patient.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field
from typing import Callable, Iterator

from sqlalchemy import Engine, bindparam, func, select, text
from sqlmodel import Session

from devicelog.store import tables

DEMO_AUTHOR = "devicelog-demo"
#: The audit action of a demo build; with DEMO_AUTHOR it marks a database as a demo clinic.
BUILD_ACTION = "demo build"
CHECKED_LIMIT = 250
SAMPLE_EVERY = 97
BATCH_PATIENTS = 500
EVENT_ROWS_PER_INSERT = 5000

NURSES = ("rn.okafor", "rn.lindqvist", "rn.moreau", "dr.haddad", "dr.tanaka")
FIRST = ("Ann", "Ben", "Chloe", "David", "Eva", "Farid", "Grace", "Hugo", "Ines", "Jon", "Karin", "Luis",
         "Maya", "Nils", "Olga", "Pavel", "Rita", "Sam", "Tove", "Umar", "Vera", "Walt", "Yara", "Zoe")
LAST = ("Lee", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ivanova", "Jensen", "Kowalski",
        "Larsen", "Moreno", "Nakamura", "Olsen", "Petrov", "Quinn", "Rossi", "Silva", "Tanaka", "Ulrich", "Varga",
        "Weber", "Young")

PUMP_MODELS = (("synchromed-ii-20", 0.3), ("synchromed-ii-40", 0.35), ("prometra-ii-20", 0.1),
               ("prometra-ii-40", 0.1), ("codman-3000-30", 0.15))
RESERVOIR_ML = {"synchromed-ii-20": 20.0, "synchromed-ii-40": 40.0, "prometra-ii-20": 20.0,
                "prometra-ii-40": 40.0, "codman-3000-30": 30.0}
BATTERY_YEARS = {"synchromed-ii-20": 7, "synchromed-ii-40": 7, "prometra-ii-20": 10, "prometra-ii-40": 10,
                 "abbott-proclaim-xr": 10, "medtronic-primeadvanced": 5, "abbott-proclaim-drg": 7}
SCS_MODELS = (("abbott-proclaim-xr", 0.25), ("medtronic-primeadvanced", 0.2), ("medtronic-intellis", 0.2),
              ("bsci-wavewriter-alpha", 0.2), ("nevro-senza", 0.15))
RECHARGEABLE = {"medtronic-intellis", "bsci-wavewriter-alpha", "nevro-senza"}
SERIAL_PREFIX = {"synchromed-ii-20": "NGP", "synchromed-ii-40": "NGP", "prometra-ii-20": "PRM", "prometra-ii-40": "PRM",
                 "codman-3000-30": "CFP", "abbott-proclaim-xr": "ABX", "medtronic-primeadvanced": "MPA",
                 "medtronic-intellis": "MIN", "bsci-wavewriter-alpha": "BWA", "nevro-senza": "NVS",
                 "abbott-proclaim-drg": "ADR", "spr-sprint-pns": "SPR"}
#: CDC 2022 oral MME factors (clinical reference 5).
MME_FACTOR = {"morphine": 1.0, "oxycodone": 1.5, "hydromorphone": 5.0, "tapentadol": 0.4, "tramadol": 0.2}
#: GTINs for the UDI of SynchroMed pumps (demo numbers with valid check digits).
GTIN_BASE = {"synchromed-ii-20": "0076300020863", "synchromed-ii-40": "0076300040863"}


@dataclass
class PatientStory:
    patient: dict
    devices: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


def gtin_check_digit(first13: str) -> str:
    total = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(first13)))
    return str((10 - total % 10) % 10)


def _at(day: dt.date, minute: int) -> str:
    """A UTC instant on ``day``: 08:00 plus ``minute`` minutes (keeps same-day order)."""
    moment = dt.datetime(day.year, day.month, day.day, 8, 0, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=minute)
    return moment.isoformat().replace("+00:00", "Z")


def _pick(r: random.Random, weighted) -> str:
    x = r.random() * sum(w for _, w in weighted)
    for value, w in weighted:
        x -= w
        if x <= 0:
            return value
    return weighted[-1][0]


#: Rule 26: what the demo clinic's reviews of flagged refills found or did, with a note.
REVIEW_FINDINGS = (
    ("no_cause_found", "residual re-read with the patient; no symptoms"),
    ("no_cause_found", ""),
    ("pump_interrogated", "pump log read: rate and boluses as programmed"),
    ("catheter_study_ordered", "CAP dye study booked"),
    ("pocket_fill_excluded", "no pocket swelling; aspirate clear"),
)


class _Story:
    """Builds one patient's record; ``add`` keeps events in time order within the day."""

    def __init__(self, index: int, seed: int, as_of: dt.date):
        self.i = index
        self.r = random.Random(seed * 1_000_003 + index)
        self.as_of = as_of
        self.window_start = as_of - dt.timedelta(days=3 * 365)
        self.minute = 0
        self.per_day: dict[dt.date, int] = {}
        self.refs = 0
        self.devices: list[dict] = []
        self.events: list[dict] = []
        self.nurse = self.r.choice(NURSES)

    # ---- helpers
    def next_ref(self) -> str:
        self.refs += 1
        return f"p{self.i + 1}-{self.refs}"

    def day(self, start: dt.date, days: float) -> dt.date:
        return start + dt.timedelta(days=int(days))

    def add(self, serial: str, on: dt.date, data: dict, author: str | None = None) -> dict | None:
        if on > self.as_of:
            return None
        self.per_day[on] = minute = self.per_day.get(on, 0) + 1
        item = {
            "ref": self.next_ref(),
            "device_serial": serial,
            "occurred_on": on.isoformat(),
            "author": author or (self.nurse if self.r.random() < 0.7 else self.r.choice(NURSES)),
            "recorded_at": _at(on, minute),
            "data": data,
        }
        self.events.append(item)
        return item

    def amend(self, original: dict, data: dict, reason: str, voided: bool = False) -> None:
        on = dt.date.fromisoformat(original["occurred_on"])
        when = min(self.as_of, on + dt.timedelta(days=1 + self.r.randrange(3)))
        self.per_day[when] = minute = self.per_day.get(when, 0) + 1
        item = {
            "ref": self.next_ref(),
            "device_serial": original["device_serial"],
            "occurred_on": original["occurred_on"],
            "author": original["author"],
            "recorded_at": _at(when, 600 + minute),
            "data": data,
            "amends": original["ref"],
            "amendment_reason": reason,
        }
        if voided:
            item["voided"] = True
        self.events.append(item)

    def review(self, refill: dict, limit_ml: float, discrepancy_ml: float) -> None:
        """Rule 26: most flagged refills were reviewed within days; the last month's stay open."""
        on = dt.date.fromisoformat(refill["occurred_on"])
        if abs(discrepancy_ml) <= limit_ml + 0.1 or on > self.as_of - dt.timedelta(days=30):
            return  # not clearly beyond the limit (rounding), or recent: left for the clinic to review
        # A generator of its own, so the rest of the clinic is what it was before reviews existed.
        r = random.Random(f"review {refill['ref']}")
        finding, note = r.choice(REVIEW_FINDINGS)
        when = on  # reviewed the same day, after the refill (a later day could fall after an explant)
        self.per_day[when] = minute = self.per_day.get(when, 0) + 1
        item = {"ref": self.next_ref(), "device_serial": refill["device_serial"], "occurred_on": when.isoformat(),
                "author": refill["author"], "recorded_at": _at(when, 700 + minute),
                "data": {"kind": "refill_review", "finding": finding, "note": note}, "reviews": refill["ref"]}
        self.events.append(item)

    def device(self, model: str, implanted_on: dt.date, k: int, **extra) -> dict:
        serial = f"{SERIAL_PREFIX[model]}{self.i + 1:06d}{chr(65 + k)}"
        d = {"patient_mrn": self.mrn, "model": model, "serial": serial, "implanted_on": implanted_on.isoformat(),
             "implant_type": "permanent", "site": "", "status": "active", **extra}
        if model in GTIN_BASE and self.r.random() < 0.6:
            di = GTIN_BASE[model] + gtin_check_digit(GTIN_BASE[model])
            expiry = implanted_on + dt.timedelta(days=400 + self.r.randrange(300))
            lot = f"L{self.r.randrange(10**6):06d}"
            d["udi"] = {"raw": f"(01){di}(17){expiry:%y%m%d}(10){lot}(21){serial}", "device_identifier": di,
                        "lot": lot, "serial": serial, "expiry": expiry.isoformat()}
        d["author"] = self.nurse
        d["recorded_at"] = _at(min(implanted_on, self.as_of), 0)
        self.devices.append(d)
        return d

    # ---- common event kinds
    def wound_checks(self, serial: str, surgery_on: dt.date, site: str, infected: bool = False) -> None:
        for day, spread in ((10, 3), (30, 5), (90, 10)):
            on = self.day(surgery_on, day + self.r.randint(-spread, spread))
            if (self.as_of - on).days < 8 and self.r.random() < 0.4:
                continue  # not seen yet: due or overdue
            data = {"kind": "wound_check", "site": site, "erythema_cm": 0.0, "drainage": "none", "dehiscence": "none"}
            if self.r.random() < 0.1:
                data["erythema_cm"] = round(self.r.uniform(0.5, 1.5), 1)
                data["notes"] = "mild erythema at the incision; no drainage; review at next check"
            if infected and day == 30:
                data.update(erythema_cm=4.5, drainage="purulent", fever_c=38.6, pocket_swelling=True,
                            culture_taken=True, organism="Staphylococcus aureus",
                            notes="pocket infection: purulent drainage; admitted for IV antibiotics")
            self.add(serial, on, data)

    def outcomes(self, serial: str, start: dt.date, end: dt.date, baseline_nrs: int, relief: float) -> None:
        opioid = self.r.choice(("oxycodone", "morphine", "tapentadol", "hydromorphone"))
        dose = {"oxycodone": 80.0, "morphine": 120.0, "tapentadol": 300.0, "hydromorphone": 24.0}[opioid]
        dose *= self.r.uniform(0.6, 1.4)
        on = start
        while on <= end:
            nrs = max(0, min(10, round(baseline_nrs * (1 - relief) + self.r.gauss(0, 0.8))))
            dose_now = round(dose / 5) * 5 or 5.0
            data = {"kind": "outcome", "pain_nrs": nrs, "oral_mme_mg_per_day": round(dose_now * MME_FACTOR[opioid], 1),
                    "opioids": [{"opioid": opioid, "dose_mg_per_day": float(dose_now)}]}
            if self.r.random() < 0.3:
                data.update(functional_instrument="ODI", functional_score=float(self.r.randint(20, 60)))
            self.add(serial, on, data)
            dose *= self.r.uniform(0.75, 1.0)
            on = self.day(on, 80 + self.r.randrange(25))


# --------------------------------------------------------------------------- pumps


def _pump_drugs(s: _Story) -> tuple[list[dict], float, bool]:
    """(drugs, dose of the primary drug in mg/day, compounded)."""
    r = s.r
    x = r.random()
    if x < 0.1:  # ziconotide, undiluted 25 mcg/mL, starting at 2.4 mcg/day
        return [{"drug": "ziconotide", "concentration_mg_per_ml": 0.025}], 0.0024, False
    if x < 0.62:
        drugs = [{"drug": "morphine", "concentration_mg_per_ml": float(r.choice((10, 15, 20)))}]
        dose = round(r.uniform(1.0, 6.0), 1)
    else:
        drugs = [{"drug": "hydromorphone", "concentration_mg_per_ml": float(r.choice((2, 4, 6, 8)))}]
        dose = round(r.uniform(0.5, 3.0), 1)
    if r.random() < 0.3:
        drugs.append({"drug": "bupivacaine", "concentration_mg_per_ml": float(r.choice((4, 6, 8)))})
    if r.random() < 0.15:
        drugs.append({"drug": "clonidine", "concentration_mg_per_ml": r.choice((0.05, 0.075, 0.1))})
    return drugs, dose, len(drugs) > 1 or drugs[0]["drug"] != "morphine"


def _pump(s: _Story, model: str, implanted_on: dt.date, k: int, until: dt.date, scenario: str,
          eri_on: dt.date | None = None, replacing: dict | None = None) -> dict:
    """A pump from its implant to ``until``: fills, interrogations, titrations; ERI first seen on ``eri_on``."""
    r = s.r
    device = s.device(model, implanted_on, k, site="right lower abdomen")
    serial = device["serial"]
    reservoir = RESERVOIR_ML[model]
    constant_flow = model == "codman-3000-30"
    drugs, dose, compounded = _pump_drugs(s)
    zico = drugs[0]["drug"] == "ziconotide"
    if constant_flow and zico:
        drugs, dose, compounded = [{"drug": "morphine", "concentration_mg_per_ml": 10.0}], 3.0, False
        zico = False
    flow = round(r.uniform(0.5, 1.0), 2) if constant_flow else None
    bolus = (not constant_flow and not zico and r.random() < 0.2)
    low_alarm = 2.0

    def program() -> dict:
        p = {"mode": "constant_flow" if constant_flow else "simple_continuous", "drugs": [dict(d) for d in drugs]}
        if constant_flow:
            p["flow_rate_ml_per_day"] = flow
        else:
            p["dose_mg_per_day"] = dose
        if bolus:
            p.update(bolus_ml=0.1, bolus_max_per_day=4, bolus_lockout_min=180)
        return p

    def daily_ml() -> float:
        return flow if constant_flow else dose / drugs[0]["concentration_mg_per_ml"]

    if replacing is not None:  # the replacement is recorded on the new pump, on its implant day
        s.add(serial, implanted_on, replacing)
    s.wound_checks(serial, implanted_on, "pump pocket and lumbar incision", infected=scenario == "infection")
    # Initial fill on the implant day: the reservoir is filled and programmed.
    fill_on, after = implanted_on, reservoir
    initial = {"kind": "refill", "volume_withdrawn_ml": 0.0, "volume_added_ml": reservoir,
               "reservoir_volume_after_ml": reservoir, "program": program(), "kit": "refill", "low_alarm_ml": low_alarm,
               "notes": "initial fill and programming at implant"}
    if compounded:
        initial["admixture_bud"] = (fill_on + dt.timedelta(days=60)).isoformat()
    s.add(serial, fill_on, initial)
    fills = 0
    battery_years = BATTERY_YEARS.get(model)
    while True:
        fills += 1
        per_day = daily_ml()
        bolus_ml_per_day = 0.1 * r.uniform(0.5, 2.0) if bolus else 0.0
        days_to_alarm = math.floor((after - low_alarm) / (per_day + bolus_ml_per_day))
        cap = 14 if zico and fills == 1 else (84 if zico else (90 if not compounded else 60))
        due = min(days_to_alarm - 7, cap)
        x = r.random()
        if x < 0.06:
            gap = due + r.randint(1, 6)  # late, mostly still before the alarm
        elif x < 0.08 and not zico:
            gap = days_to_alarm + r.randint(1, 3)  # late past the alarm
        else:
            gap = due - r.randint(0, 9)
        gap = max(gap, 7)
        on = fill_on + dt.timedelta(days=gap)
        if on > until:
            break
        days = (on - fill_on).days
        bolus_used = round(bolus_ml_per_day * days, 1)
        expected = max(0.0, after - per_day * days - bolus_used)
        past_alarm = expected < low_alarm
        withdrawn = max(0.0, expected + r.gauss(0, 0.25))
        if r.random() < 0.03:  # a flagged discrepancy
            withdrawn = max(0.0, expected + r.choice((-1, 1)) * r.uniform(1.6, 3.5))
        interrogation = {"kind": "interrogation", "reservoir_volume_ml": round(expected, 1)}
        if battery_years:
            age_years = (on - implanted_on).days / 365.25
            interrogation["battery_percent"] = round(min(100.0, max(1.0, 100 * (1 - age_years / battery_years) + r.gauss(0, 1.5))), 0)
        alarms = []
        if past_alarm:
            alarms.append({"code": "low_reservoir", "note": "alarm heard by the patient"})
        if eri_on is not None and on >= eri_on:
            interrogation["battery_state"] = "eri"
            alarms.append({"code": "eri", "note": "elective replacement indicator"})
            eri_on = None
        if alarms:
            interrogation["alarms"] = alarms
        s.add(serial, on, interrogation)
        # Dose titration at some refills (ziconotide: at most +2.4 mcg/day, rule 6).
        if r.random() < 0.25:
            if zico:
                dose = round(min(0.0192, dose + r.choice((0.0012, 0.0024))), 4)
            elif constant_flow:
                pass
            else:
                dose = round(min(14.0 if drugs[0]["drug"] == "morphine" else 9.0, dose * r.uniform(0.9, 1.25)), 1)
        refill = {
            "kind": "refill",
            # A syringe cannot draw more than the reservoir holds (services refuse it).
            "volume_withdrawn_ml": min(round(withdrawn, 1), reservoir),
            "expected_residual_ml": round(expected, 1),
            "volume_added_ml": reservoir,
            "reservoir_volume_after_ml": reservoir,
            "program": program(),
            "bolus_volume_since_last_fill_ml": bolus_used,
            "kit": "refill",
            "low_alarm_ml": low_alarm,
        }
        if compounded:
            refill["admixture_bud"] = (on + dt.timedelta(days=60)).isoformat()
        item = s.add(serial, on, refill)
        final_withdrawn = refill["volume_withdrawn_ml"]
        if item is not None and r.random() < 0.02:
            fixed = dict(refill, volume_withdrawn_ml=min(round(withdrawn + 1.0, 1), reservoir))
            s.amend(item, fixed, "volume withdrawn mistyped: syringe read again")
            final_withdrawn = fixed["volume_withdrawn_ml"]
        if item is not None:
            s.review(item, 2.0 if reservoir >= 40 else 1.0, final_withdrawn - expected)
        fill_on, after = on, reservoir
    return device


# --------------------------------------------------------------------------- stimulators


def _stim_program(s: _Story, model: str) -> dict:
    r = s.r
    if model == "spr-sprint-pns":
        return {"name": "A", "contacts": {"lead1": "-", "pad": "+"}, "amplitude_ma": round(r.uniform(4, 15), 1),
                "pulse_width_us": float(r.choice((50, 100, 150))), "frequency_hz": 100.0, "waveform": "tonic"}
    if model == "abbott-proclaim-drg":
        contacts = {f"L4:{n}": "off" for n in range(1, 5)}
        contacts["L4:2"], contacts["L4:3"] = "-", "+"
        amp = round(r.uniform(0.2, 1.2), 2)
        return {"name": "A", "contacts": contacts, "amplitude_ma": amp, "pulse_width_us": float(r.choice((200, 250, 300))),
                "frequency_hz": float(r.choice((16, 20))), "waveform": "tonic",
                "patient_min_amplitude": round(amp * 0.5, 2), "patient_max_amplitude": round(amp * 1.5, 2)}
    contacts = {f"E{n}": "off" for n in range(8)}
    cathode = r.randrange(1, 7)
    contacts[f"E{cathode}"] = "-"
    contacts[f"E{cathode + 1}"] = "+"
    if model == "nevro-senza":
        amp, pw, hz, wave = round(r.uniform(1.5, 3.5), 1), 30.0, 10000.0, "high_frequency"
    elif model == "abbott-proclaim-xr" and r.random() < 0.6:
        amp, pw, hz, wave = round(r.uniform(0.6, 1.6), 1), 1000.0, 40.0, "burst"
    else:
        amp, pw, hz, wave = round(r.uniform(2.0, 6.0), 1), float(r.choice((210, 300, 450))), float(r.choice((40, 50, 60))), "tonic"
    return {"name": "A", "group": "1", "contacts": contacts, "amplitude_ma": amp, "pulse_width_us": pw, "frequency_hz": hz,
            "waveform": wave, "patient_min_amplitude": round(amp * 0.5, 1), "patient_max_amplitude": round(min(25.5, amp * 1.6), 1)}


def _impedances(s: _Story, model: str, open_contact: bool) -> list[dict]:
    names = [f"L4:{n}" for n in range(1, 5)] if model == "abbott-proclaim-drg" else [f"E{n}" for n in range(8)]
    values = [{"contact": c, "impedance_ohm": float(round(s.r.uniform(450, 1400)))} for c in names]
    if open_contact:
        values[s.r.randrange(len(values))]["impedance_ohm"] = float(round(s.r.uniform(4500, 9000)))
    return values


def _stimulator(s: _Story, model: str, trial_on: dt.date | None, implanted_on: dt.date, k: int, scenario: str) -> int:
    """A trial (if ``trial_on``), then the permanent implant; returns the next device letter."""
    r = s.r
    site = "L1 paramedian / left buttock IPG" if model != "abbott-proclaim-drg" else "L4 DRG / flank IPG"
    if trial_on is not None:
        trial = s.device(model, trial_on, k, implant_type="trial", status="trial", site="percutaneous trial leads")
        k += 1
        base = r.randint(7, 9)
        s.add(trial["serial"], trial_on, {"kind": "trial_start", "baseline_nrs": base, "planned_days": 7})
        s.add(trial["serial"], trial_on, {"kind": "programming", "stim_programs": [_stim_program(s, model)],
                                          "active_program": "A", "reason": "trial programming"})
        end_on = trial_on + dt.timedelta(days=r.randint(5, 8))
        if end_on > s.as_of:
            return k  # trial running today: its end is due
        success = scenario != "failed_trial"
        end_nrs = r.randint(2, 4) if success else r.randint(6, 8)
        s.add(trial["serial"], end_on, {"kind": "trial_end", "end_nrs": end_nrs,
                                        "analgesics": "reduced" if success else "stable", "patient_satisfied": success})
        s.add(trial["serial"], end_on, {"kind": "reintervention", "reintervention": "lead_removal",
                                        "reason": "trial leads removed at the end of the trial"})
        trial["status"] = "explanted"
        if not success or implanted_on > s.as_of:
            return k
    device = s.device(model, implanted_on, k, site=site,
                      **({"recharge_interval_days": float(r.choice((7, 10, 14)))} if model in RECHARGEABLE else {}))
    k += 1
    serial = device["serial"]
    s.wound_checks(serial, implanted_on, site)
    program = _stim_program(s, model)
    s.add(serial, implanted_on, {"kind": "programming", "stim_programs": [program], "active_program": "A",
                                  "reason": "initial programming"})
    on = implanted_on + dt.timedelta(days=14 + r.randrange(7))
    visit = 0
    revised = False
    while on <= s.as_of:
        visit += 1
        inter = {"kind": "interrogation", "impedances": _impedances(s, model, r.random() < 0.04)}
        if model in RECHARGEABLE:
            inter["last_full_charge_on"] = (on - dt.timedelta(days=r.randrange(6))).isoformat()
            inter["recharge_interval_days"] = device["recharge_interval_days"]
        elif model in BATTERY_YEARS:
            years = (on - implanted_on).days / 365.25
            inter["battery_percent"] = round(min(100.0, max(1.0, 100 * (1 - years / BATTERY_YEARS[model]) + r.gauss(0, 2))), 0)
        s.add(serial, on, inter)
        if scenario == "lead_revision" and not revised and visit == 3:
            s.add(serial, on, {"kind": "reintervention", "reintervention": "migration",
                               "reason": "loss of coverage: lead migration on X-ray", "notes": "booked for lead revision"})
            rev_on = on + dt.timedelta(days=12)
            if s.add(serial, rev_on, {"kind": "reintervention", "reintervention": "lead_revision",
                                      "reason": "lead migration with loss of coverage", "devices_involved": [serial]}):
                s.wound_checks(serial, rev_on, "lead anchor incision")
            revised = True
            on = rev_on + dt.timedelta(days=14)
            continue
        if visit == 1 or r.random() < 0.5:
            program = _stim_program(s, model)
            s.add(serial, on, {"kind": "programming", "stim_programs": [program], "active_program": "A",
                               "reason": "reprogrammed for coverage" if visit > 1 else "post-implant optimisation"})
        on += dt.timedelta(days=150 + r.randrange(60) if visit > 1 else 60 + r.randrange(30))
    return k


def _pns(s: _Story, implanted_on: dt.date, k: int, missed_removal: bool = False) -> None:
    device = s.device("spr-sprint-pns", implanted_on, k, site="right axillary nerve, percutaneous")
    serial = device["serial"]
    s.add(serial, implanted_on, {"kind": "programming", "stim_programs": [_stim_program(s, "spr-sprint-pns")],
                                 "active_program": "A", "reason": "initial programming"})
    s.add(serial, implanted_on + dt.timedelta(days=7 + s.r.randrange(4)),
          {"kind": "wound_check", "site": "lead exit site", "notes": "exit site clean, dressing changed"})
    removal = implanted_on + dt.timedelta(days=60 + s.r.randint(-2, 1))
    if not missed_removal and removal <= s.as_of and s.add(serial, removal, {"kind": "reintervention", "reintervention": "lead_removal",
                                                      "reason": "60-day PNS treatment complete"}):
        device["status"] = "explanted"


# --------------------------------------------------------------------------- patients


def _patient(index: int, seed: int, as_of: dt.date) -> PatientStory:
    s = _Story(index, seed, as_of)
    r = s.r
    s.mrn = f"DEMO-{index + 1:06d}"
    special = index % 60
    birth = dt.date(1935 + r.randrange(50), 1 + r.randrange(12), 1 + r.randrange(28))
    patient = {"mrn": s.mrn, "name": f"{r.choice(FIRST)} {r.choice(LAST)}", "birth_date": birth.isoformat(),
               "goals_of_care": "active_treatment", "status": "active"}
    start = s.window_start
    span = (as_of - start).days

    x = r.random()
    kind = "pump" if x < 0.52 else "scs" if x < 0.78 else "drg" if x < 0.89 else "pns"
    kind = {1: "pump", 2: "pump", 3: "pump", 4: "scs", 5: "scs", 6: "pns", 7: "pns", 8: "drg"}.get(special, kind)
    scenario = {1: "replace", 2: "eri", 3: "infection", 4: "lead_revision", 5: "current_trial", 6: "pns_due",
                7: "pns_overdue", 9: "failed_trial"}.get(special, "")
    until = as_of
    baseline = r.randint(6, 9)
    if kind == "pump":
        implanted = start + dt.timedelta(days=r.randrange(span - 20))
        model = _pick(r, PUMP_MODELS)
        if scenario == "replace":
            old = _pump(s, "synchromed-ii-40", start - dt.timedelta(days=6 * 365 + 200), 0, start + dt.timedelta(days=400),
                        "replace", eri_on=start + dt.timedelta(days=360))
            replaced_on = start + dt.timedelta(days=430)
            old["status"] = "replaced"
            new = _pump(s, "synchromed-ii-40", replaced_on, 1, until, "",
                        replacing={"kind": "reintervention", "reintervention": "pump_replacement",
                                   "reason": "ERI on the previous pump: battery at end of life",
                                   "devices_involved": [old["serial"]]})
            new["replaces_serial"] = old["serial"]
            s.outcomes(new["serial"], replaced_on + dt.timedelta(days=30), as_of, baseline, 0.4)
        else:
            if scenario == "eri":
                model, implanted = "synchromed-ii-20", as_of - dt.timedelta(days=int(6.8 * 365))
            elif scenario == "infection":
                implanted = as_of - dt.timedelta(days=200)
            eri_on = as_of - dt.timedelta(days=20 + r.randrange(30)) if scenario == "eri" else None
            device = _pump(s, model, implanted, 0, until, scenario, eri_on=eri_on)
            if scenario == "infection":
                explant_on = implanted + dt.timedelta(days=33)
                s.add(device["serial"], explant_on, {"kind": "reintervention", "reintervention": "explant",
                                                     "reason": "pocket infection (S. aureus)", "devices_involved": [device["serial"]]})
                device["status"] = "explanted"
                # Rebuild: no events on an explanted device after its explant but wound checks.
                s.events = [e for e in s.events if e["device_serial"] != device["serial"]
                            or e["occurred_on"] <= explant_on.isoformat() or e["data"]["kind"] in ("wound_check", "outcome")]
                s.wound_checks(device["serial"], explant_on, "pump pocket (explant)")
            s.outcomes(device["serial"], max(start, implanted + dt.timedelta(days=30)), as_of, baseline, 0.45)
        y = r.random()
        if y < 0.12:
            patient["goals_of_care"] = "hospice"
        elif y < 0.2:
            patient["goals_of_care"] = "survival_under_3_months"
    elif kind in ("scs", "drg"):
        model = _pick(r, SCS_MODELS) if kind == "scs" else "abbott-proclaim-drg"
        if scenario == "current_trial":
            trial_on = as_of - dt.timedelta(days=r.randint(2, 6))
        else:
            trial_on = start + dt.timedelta(days=r.randrange(span - 70))
        implanted = trial_on + dt.timedelta(days=21 + r.randrange(40))
        _stimulator(s, model, trial_on, implanted, 0, scenario)
        if s.devices[-1]["implant_type"] == "permanent":
            s.outcomes(s.devices[-1]["serial"], implanted + dt.timedelta(days=30), as_of, baseline, 0.5)
    else:
        if scenario == "pns_due":
            implanted = as_of - dt.timedelta(days=54)
        elif scenario == "pns_overdue":
            implanted = as_of - dt.timedelta(days=63)
        else:
            implanted = start + dt.timedelta(days=r.randrange(span - 10))
        _pns(s, implanted, 0, missed_removal=scenario == "pns_overdue")

    # Some patients died during the three years (no events after death).
    if scenario == "" and r.random() < 0.05 and kind == "pump":
        first_event = min((e["occurred_on"] for e in s.events), default=None)
        if first_event is not None:
            died = dt.date.fromisoformat(first_event) + dt.timedelta(days=60 + r.randrange(300))
            if died < as_of:
                patient.update(status="deceased", died_on=died.isoformat(), goals_of_care="hospice")
                s.events = [e for e in s.events if e["occurred_on"] <= died.isoformat()]
                # Most clinics remove the pump before cremation (rule 24); one in ten is
                # left for the due list to ask about.
                removal_on = died + dt.timedelta(days=2)
                if r.random() < 0.9 and removal_on <= as_of:
                    for device in s.devices:
                        if device["status"] in ("active", "trial") and s.add(
                            device["serial"], removal_on,
                            {"kind": "reintervention", "reintervention": "explant",
                             "reason": "removed after death, before cremation", "devices_involved": [device["serial"]]},
                        ):
                            device["status"] = "explanted"
    # Drop amendments whose original was cut away; then one voided entry now and then.
    refs = {e["ref"] for e in s.events}
    s.events = [e for e in s.events if e.get("amends", e["ref"]) in refs]
    wounds = [e for e in s.events if e["data"]["kind"] == "wound_check" and "amends" not in e]
    if wounds and r.random() < 0.05:  # a check entered twice by mistake: the copy is voided
        copy = dict(wounds[-1], ref=s.next_ref(), recorded_at=wounds[-1]["recorded_at"].replace(":00Z", ":30Z"))
        s.events.append(copy)
        s.amend(copy, copy["data"], "entered in error: the same check was saved twice", voided=True)
    first_day = min([d["implanted_on"] for d in s.devices])
    patient["author"] = s.nurse
    patient["recorded_at"] = _at(min(dt.date.fromisoformat(first_day), as_of), 0).replace("T08:00:00", "T07:30:00")
    return PatientStory(patient, s.devices, s.events)


def generate(patients: int, seed: int, as_of: dt.date, start: int = 0) -> Iterator[PatientStory]:
    """The stories of patients ``start`` … ``patients - 1``."""
    for index in range(start, patients):
        yield _patient(index, seed, as_of)


def document(patients: int, seed: int, as_of: dt.date) -> dict:
    """The whole demo clinic as an import/export document."""
    doc = {"format": "devicelog", "version": 1, "patients": [], "devices": [], "events": []}
    for story in generate(patients, seed, as_of):
        doc["patients"].append(story.patient)
        doc["devices"] += story.devices
        doc["events"] += story.events
    return doc


# --------------------------------------------------------------------------- the database


def is_demo(session: Session) -> bool:
    """True when the database holds a demo clinic: the audit trail has the demo build's entry."""
    A = tables.AuditEntry.__table__
    found = session.execute(select(A.c.id).where(A.c.action == BUILD_ACTION, A.c.author == DEMO_AUTHOR).limit(1)).first()
    return found is not None


@dataclass(frozen=True)
class BuildSummary:
    patients: int
    devices: int
    events: int
    checked: str  # how the records were validated


def build(
    engine: Engine,
    *,
    patients: int = 60,
    seed: int = 1,
    as_of: dt.date,
    method: str = "auto",
    tick: Callable[[int], None] = lambda n: None,
) -> BuildSummary:
    """Write a demo clinic into an empty database (``ValueError`` if it holds data).

    ``method``: "checked" (import through the use cases), "bulk" (Core executemany with
    sampled validation) or "auto" (checked up to CHECKED_LIMIT patients).
    """
    from devicelog import transfer
    from devicelog.store.db import write_session

    if patients < 1:
        raise ValueError("a demo clinic needs at least one patient")
    if method == "auto":
        method = "checked" if patients <= CHECKED_LIMIT else "bulk"
    with write_session(engine) as session:
        if transfer.holds_clinical_data(session):
            raise ValueError("the database already holds patients, devices or events")
        if method == "checked":
            doc = document(patients, seed, as_of)
            scale = patients / max(1, transfer.count_items(doc))  # ticks count patients
            summary = transfer.import_document(
                session, doc, author=DEMO_AUTHOR, today=as_of, tick=lambda n: tick(n * scale), audit_action=BUILD_ACTION
            )
            return BuildSummary(summary.patients, summary.devices, summary.events, "every record through services")
        counts = _bulk(session, patients, seed, as_of, tick)
        return BuildSummary(*counts, f"every event through its record model, every {SAMPLE_EVERY}th patient's whole record too; Core bulk insert")


def _next_id(session: Session, table) -> int:
    return (session.execute(select(func.max(table.c.id))).scalar() or 0) + 1


class _Checker:
    """Validates one generated story for the bulk path and turns it into table rows.

    Every event's values go through their record model (``EventData``) and the checks of
    ``services.check_event`` that hold whatever the order of writing; every
    :data:`SAMPLE_EVERY`-th patient's whole record goes through the document models too.
    A refusal is a generator bug: ``ValueError`` stops the build (nothing is written).
    """

    def __init__(self, session: Session, as_of: dt.date):
        from pydantic import TypeAdapter

        from devicelog.clinic.records import EventData
        from devicelog.store import queries

        self.session = session
        self.as_of = as_of
        self.event_data = TypeAdapter(EventData)
        catalogue = queries.catalogue(session)
        self.models = {m.code: m for m in catalogue.device_models}
        self.drug_codes = {d.code for d in catalogue.drugs}
        from devicelog import services
        from devicelog.settings import Settings

        self.settings = Settings()  # the implausible-dose guard at its default (issue 19)
        self.lookups = services.Lookups()
        self.lookups.drug_table = {d.code: d for d in catalogue.drugs}

    def refusals(self, typed, model, occurred_on: dt.date, implanted_on: dt.date) -> list:
        """What ``services.check_event`` would refuse in this event whatever the order
        (device fit, volumes within the reservoir, known drugs, dates): the bulk path
        must never write what ``devicelog import`` of its export refuses."""
        from devicelog import services
        from devicelog.clinic.records import EventKind

        found = services._fits_device(EventKind(typed.kind), typed, model)
        found += services._drugs_known(self.session, typed, self.drug_codes)
        found += services._volumes_fit(typed, model)
        found += services._plausible_doses(self.session, typed, self.settings, self.lookups)
        if occurred_on < implanted_on or occurred_on > self.as_of:
            found.append(services.Problem("occurred_on", occurred_on.isoformat(), "outside the device's service"))
        return found

    def sample(self, story: PatientStory) -> None:
        from devicelog.clinic.records import EventIn
        from devicelog.transfer import DocDevice, DocEvent, DocPatient

        DocPatient.model_validate(story.patient)
        for d in story.devices:
            DocDevice.model_validate(d)
        for e in story.events:
            EventIn.model_validate(DocEvent.model_validate(e).model_dump(include={"device_serial", "occurred_on", "author", "data"}))

    def rows(self, story: PatientStory, ids: dict[str, int], prow: list, drow: list, erow: list, replaced_by: list) -> None:
        """Append the story's rows (ids from ``ids``, which advances) to the batch's lists."""
        p = story.patient
        pid = ids["patient"]
        prow.append({"id": pid, "mrn": p["mrn"], "name": p["name"], "birth_date": dt.date.fromisoformat(p["birth_date"]),
                     "goals_of_care": p["goals_of_care"], "status": p["status"],
                     "died_on": dt.date.fromisoformat(p["died_on"]) if p.get("died_on") else None,
                     "author": p["author"], "recorded_at": _instant(p["recorded_at"])})
        ids["patient"] += 1
        device_ids = {}
        for d in story.devices:
            did = ids["device"]
            device_ids[d["serial"]] = did
            udi = d.get("udi") or {}
            drow.append({"id": did, "patient_id": pid, "model_code": d["model"], "serial": d["serial"],
                         "udi_raw": udi.get("raw"), "udi_di": udi.get("device_identifier"), "udi_lot": udi.get("lot"),
                         "udi_serial": udi.get("serial"),
                         "udi_expiry": dt.date.fromisoformat(udi["expiry"]) if udi.get("expiry") else None,
                         "udi_manufactured": None,
                         "implanted_on": dt.date.fromisoformat(d["implanted_on"]), "implant_type": d["implant_type"],
                         "site": d["site"], "status": d["status"], "replaced_by_id": None,
                         "recharge_interval_days": d.get("recharge_interval_days"),
                         "author": d["author"], "recorded_at": _instant(d["recorded_at"])})
            if d.get("replaces_serial"):
                replaced_by.append({"old": device_ids[d["replaces_serial"]], "new": did})
            ids["device"] += 1
        event_ids = {}
        for e in story.events:
            eid = ids["event"]
            event_ids[e["ref"]] = eid
            original = event_ids.get(e.get("amends"))
            source = e["data"]
            if e.get("voided"):  # a void keeps the original's values (services.void_event)
                source = next(x["data"] for x in story.events if x["ref"] == e["amends"])
            if e.get("reviews"):  # rule 26: the document names the refill by ref; a row names it by id
                source = {**source, "refill_event_id": event_ids[e["reviews"]]}
            typed = self.event_data.validate_python(source)
            device = next(d for d in story.devices if d["serial"] == e["device_serial"])
            occurred_on = dt.date.fromisoformat(e["occurred_on"])
            refused = self.refusals(typed, self.models[device["model"]], occurred_on, dt.date.fromisoformat(device["implanted_on"]))
            if refused:
                raise ValueError(f"demo patient {p['mrn']}: {e['ref']} would be refused: {refused[0]}")
            data = self.event_data.dump_python(typed, mode="json")
            erow.append({"id": eid, "device_id": device_ids[e["device_serial"]], "kind": data["kind"],
                         "occurred_on": occurred_on, "author": e["author"],
                         "recorded_at": _instant(e["recorded_at"]), "data": data, "amends_id": original,
                         "amendment_reason": e.get("amendment_reason"), "voided": bool(e.get("voided"))})
            ids["event"] += 1


def _bulk(session: Session, patients: int, seed: int, as_of: dt.date, tick) -> tuple[int, int, int]:
    """The large-clinic path; memory is that of one batch (see the module docstring)."""
    from devicelog.store import forecasts

    checker = _Checker(session, as_of)
    P, D, E = tables.Patient.__table__, tables.Device.__table__, tables.EventRow.__table__
    ids = {"patient": _next_id(session, P), "device": _next_id(session, D), "event": _next_id(session, E)}
    first = dict(ids)
    for batch_start in range(0, patients, BATCH_PATIENTS):
        batch_end = min(patients, batch_start + BATCH_PATIENTS)
        first_device = ids["device"]
        _write_batch(session, checker, range(batch_start, batch_end), seed, as_of, ids)
        # The due table for this batch's devices, read back from the rows just written
        # (``refresh_devices`` loads them in runs of ``forecasts.BATCH_DEVICES``).
        forecasts.refresh_devices(session, range(first_device, ids["device"]))
        # load_histories read the batch's patients and devices through the ORM.  The
        # identity map only holds them weakly, but nothing of the bulk path is pending
        # in it, so it is emptied outright: no batch's objects can outlive the batch.
        session.expunge_all()
        tick(batch_end - batch_start)
    if session.get_bind().dialect.name == "postgresql":
        for t in (P, D, E):
            session.execute(text(f"SELECT setval(pg_get_serial_sequence('{t.name}', 'id'), (SELECT max(id) FROM {t.name}))"))
    return ids["patient"] - first["patient"], ids["device"] - first["device"], ids["event"] - first["event"]


def _write_batch(session: Session, checker: _Checker, indexes: range, seed: int, as_of: dt.date, ids: dict[str, int]) -> None:
    """Generate, check, insert and audit the patients ``indexes``; everything it builds is
    local, so it is freed when it returns, before the next batch is generated."""
    P, D, E = tables.Patient.__table__, tables.Device.__table__, tables.EventRow.__table__
    prow: list[dict] = []
    drow: list[dict] = []
    erow: list[dict] = []
    replaced_by: list[dict] = []
    for index in indexes:
        story = _patient(index, seed, as_of)
        if index % SAMPLE_EVERY == 0:
            checker.sample(story)
        checker.rows(story, ids, prow, drow, erow, replaced_by)
    del story
    conn = session.connection()
    conn.execute(P.insert(), prow)
    conn.execute(D.insert(), drow)
    if replaced_by:  # after the insert: the replacing device has the larger id
        conn.execute(D.update().where(D.c.id == bindparam("old")).values(replaced_by_id=bindparam("new")), replaced_by)
        new_of = {pair["old"]: pair["new"] for pair in replaced_by}
        for row in drow:
            row["replaced_by_id"] = new_of.get(row["id"])
    for start in range(0, len(erow), EVENT_ROWS_PER_INSERT):
        conn.execute(E.insert(), erow[start : start + EVENT_ROWS_PER_INSERT])
    _audit_batch(session, prow, drow, erow)


def _audit_batch(session: Session, prow: list[dict], drow: list[dict], erow: list[dict]) -> None:
    """The batch's audit entries, one ``audit.append`` per :data:`audit.CHANGES_PER_ENTRY`
    changes: only one entry's changes (and its JSON payload) exist at a time."""
    from itertools import chain, islice

    from devicelog.store import audit
    from devicelog.transfer import event_audit_values

    changes = chain(
        (audit.Change("patient", r["id"], None, audit.row_values(r)) for r in prow),
        (audit.Change("device", r["id"], None, audit.row_values(r)) for r in drow),
        (audit.Change("event", r["id"], None, event_audit_values(r)) for r in erow),
    )
    while chunk := list(islice(changes, audit.CHANGES_PER_ENTRY)):
        audit.append(session, action=BUILD_ACTION, author=DEMO_AUTHOR, changes=chunk)


def event_audit_values(row: dict) -> dict:
    """``audit.row_values(row)`` for an event row whose ``data`` is already plain JSON, faster
    (``transfer.event_audit_values``, which the importer uses too)."""
    from devicelog.transfer import event_audit_values as values

    return values(row)


def _instant(text_value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text_value.replace("Z", "+00:00"))
