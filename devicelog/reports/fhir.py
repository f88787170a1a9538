"""FHIR R4 export: a Bundle of Patient, Device, Procedure and Observation (issue 5.6).

Built as plain dicts and validated resource by resource by fhir.resources' **R4B**
models (``fhir.resources.R4B``; the package's default models are R5 and R4 4.0.1 is
not shipped; R4B shares R4's Patient, Device, Procedure and Observation).  What
leaves devicelog is what the library accepted.

- **Patient**: MRN identifier, name, birth date, deceased.  No US Core Patient profile
  is claimed: devicelog does not record the gender that profile requires.
- **Device**, US Core Implantable Device profile: ``udiCarrier`` (``deviceIdentifier``,
  ``carrierHRF``; the scanned element string as ``carrierAIDC`` when it was not the
  human-readable form), ``serialNumber``, ``lotNumber``, ``expirationDate``,
  ``manufactureDate``, ``status`` (active while implanted or on trial, else
  inactive), maker, model and ``type``.  The device type is given as text: devicelog
  does not invent SNOMED CT codes it cannot check.
- **Procedure**: the implant of each device, and each revision, replacement,
  explant, lead removal, dye study or CAP aspiration, with ``focalDevice``; the code
  is text (no CPT/SNOMED code is invented), so no US Core Procedure profile is claimed.
- **Procedure** also for each review of a flagged refill (rule 26): its finding the
  ``outcome``, its reason the refill's "volume withdrawn" Observation, its note a note.
- **Observation**: refill volumes (withdrawn, added, mL) and the programmed daily
  dose of each drug (mg/d) at each refill; battery readings (%, V); pain scores
  (LOINC 72514-3, 0-10).  Units are UCUM.  An amended event's observations have
  status ``amended``; voided events are not exported.

Every ``fullUrl`` is a ``urn:uuid`` derived from the record (MRN, serial, event id),
so exporting the same database twice gives the same ids.

Streaming, for a whole clinic (issue 8)
---------------------------------------
A 100,000-patient clinic is about 7 million resources.  Building them all and
validating one ``Bundle`` model held the clinic several times over (8.9 GB and
growing at 10,000 patients) and cost ~0.5 ms per resource in fhir.resources'
validators plus ~0.35 ms in its serialiser.  :func:`write_bundle` instead:

- reads patients in MRN order, :data:`PATIENTS_PER_BATCH` at a time (keyset on MRN),
  with their devices' histories, so memory is one batch whatever the clinic size;
- validates **each resource** with its R4B model (``Patient``, ``Device``,
  ``Procedure``, ``Observation``) as it is built, and writes it at once, one entry
  per line of compact JSON (what the model accepted is the dict written: a test
  checks that each model gives back exactly that dict);
- validates an Observation once per *template* (:func:`observation_template`):
  observations are built by this module from a few codes, categories, statuses and
  authors; what differs between two of the same template is only values generated
  here in forms the models always accept (identifier ``<event id>:<part>``,
  ``urn:uuid`` references, an ISO date from a ``date``, a finite number), each
  checked by a pattern before it is masked.  Anything else (an author, a code, a
  NaN) is part of the template, so a new one is validated in full;
- writes to a temporary file that replaces the output only when every resource
  passed, so a refused record still leaves nothing written.

Cost is proportional to the clinic: about 10 ms per patient at 10,000 patients
(reading and validating the histories), memory flat (bench/commands.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from typing import Any, Iterable, Iterator, Mapping, Sequence, TextIO

from devicelog.clinic.catalogue import Drug
from devicelog.clinic.history import DeviceHistory, PatientInfo
from devicelog.clinic.pump import drug_doses_mg_per_day
from devicelog.clinic.records import (
    Event,
    InterrogationData,
    OutcomeData,
    RefillData,
    RefillReviewData,
    ReinterventionData,
    ReinterventionKind,
    SURGICAL_REINTERVENTIONS,
    TrialEndData,
    TrialStartData,
)

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
PAIN_LOINC = "72514-3"
PAIN_DISPLAY = "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
US_CORE_IMPLANTABLE_DEVICE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-implantable-device"
FDA_UDI = "http://hl7.org/fhir/NamingSystem/fda-udi"
GS1_DI = "http://hl7.org/fhir/NamingSystem/gs1-di"
MRN_SYSTEM = "urn:devicelog:mrn"
SERIAL_SYSTEM = "urn:devicelog:device-serial"
EVENT_SYSTEM = "urn:devicelog:event"
OBSERVATION_CODES = "urn:devicelog:observation"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
NAMESPACE = uuid.UUID("7d14d585-5e0f-4c1a-9a53-6465766c6f67")

#: Reinterventions exported as a Procedure (the others, e.g. a motor stall, are findings).
PROCEDURE_REINTERVENTIONS = SURGICAL_REINTERVENTIONS | {
    ReinterventionKind.lead_removal,
    ReinterventionKind.dye_study,
    ReinterventionKind.cap_aspiration,
    ReinterventionKind.other,
    ReinterventionKind.pre_mri_checklist,  # rule 13; for a Prometra it includes emptying the pump
}

DEVICE_TYPE_TEXT = {
    "intrathecal_pump": "Implantable intrathecal drug infusion pump",
    "spinal_cord_stimulator": "Spinal cord stimulator",
    "drg_stimulator": "Dorsal root ganglion stimulator",
    "peripheral_nerve_stimulator": "Peripheral nerve stimulator",
}


def urn(*parts: object) -> str:
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, ':'.join(str(p) for p in parts))}"


def ref(full_url: str, display: str | None = None) -> dict[str, str]:
    out = {"reference": full_url}
    if display:
        out["display"] = display
    return out


def quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": round(float(value), 6), "unit": unit, "system": UCUM, "code": unit}


def udi_hrf(device) -> str | None:
    """The human-readable UDI: the scanned text if it was in that form, else built from
    the parsed fields in GS1 order (01)(11)(17)(10)(21)."""
    raw = device.udi_raw or ""
    if raw.startswith("(01)"):
        return raw
    if not device.udi_di:
        return None
    text = f"(01){device.udi_di}"
    if device.udi_manufactured:
        text += f"(11){device.udi_manufactured:%y%m%d}"
    if device.udi_expiry:
        text += f"(17){device.udi_expiry:%y%m%d}"
    if device.udi_lot:
        text += f"(10){device.udi_lot}"
    if device.udi_serial:
        text += f"(21){device.udi_serial}"
    return text


def patient_resource(patient) -> dict[str, Any]:
    parts = patient.name.split()
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"use": "usual", "type": {"text": "MRN"}, "system": MRN_SYSTEM, "value": patient.mrn}],
        "name": [{"text": patient.name, "family": parts[-1], **({"given": parts[:-1]} if len(parts) > 1 else {})}],
        "birthDate": patient.birth_date.isoformat(),
    }
    if patient.died_on is not None:
        resource["deceasedDateTime"] = patient.died_on.isoformat()
    elif patient.status.value == "deceased":
        resource["deceasedBoolean"] = True
    return resource


def device_resource(history: DeviceHistory, patient_url: str, device_urls: Mapping[str, str]) -> dict[str, Any]:
    import base64

    d = history.device
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "meta": {"profile": [US_CORE_IMPLANTABLE_DEVICE]},
        "identifier": [{"system": SERIAL_SYSTEM, "value": d.serial}],
        "status": "active" if d.in_service else "inactive",
        "manufacturer": d.model.maker,
        "deviceName": [{"name": d.model.model, "type": "model-name"}],
        "modelNumber": d.model.code,
        "serialNumber": d.udi_serial or d.serial,
        "type": {"text": DEVICE_TYPE_TEXT[d.model.kind.value]},
        "patient": ref(patient_url),
    }
    hrf = udi_hrf(d)
    if hrf:
        carrier: dict[str, Any] = {
            "deviceIdentifier": d.udi_di,
            "issuer": GS1_DI,
            "jurisdiction": FDA_UDI,
            "carrierHRF": hrf,
        }
        if d.udi_raw and d.udi_raw != hrf:
            carrier["carrierAIDC"] = base64.b64encode(d.udi_raw.encode("utf-8")).decode("ascii")
            carrier["entryType"] = "barcode"
        resource["udiCarrier"] = [carrier]
    if d.udi_lot:
        resource["lotNumber"] = d.udi_lot
    if d.udi_expiry:
        resource["expirationDate"] = d.udi_expiry.isoformat()
    if d.udi_manufactured:
        resource["manufactureDate"] = d.udi_manufactured.isoformat()
    if d.replaces_serial and d.replaces_serial in device_urls:
        resource["note"] = [{"text": f"replaces device {d.replaces_serial}"}]
    if d.replaced_by_serial:
        resource.setdefault("note", []).append({"text": f"replaced by device {d.replaced_by_serial}"})
    return resource


def implant_procedure(history: DeviceHistory, patient_url: str, device_url: str) -> dict[str, Any]:
    d = history.device
    what = "trial implant" if d.implant_type.value == "trial" else "implant"
    procedure = {
        "resourceType": "Procedure",
        "identifier": [{"system": SERIAL_SYSTEM, "value": f"{d.serial}:implant"}],
        "status": "completed",
        "code": {"text": f"{DEVICE_TYPE_TEXT[d.model.kind.value]} {what}"},
        "subject": ref(patient_url),
        "performedDateTime": d.implanted_on.isoformat(),
        "focalDevice": [{"action": {"text": "implanted"}, "manipulated": ref(device_url, f"{d.model.label} {d.serial}")}],
    }
    if d.site:
        procedure["bodySite"] = [{"text": d.site}]
    return procedure


REMOVING = {ReinterventionKind.explant, ReinterventionKind.lead_removal, ReinterventionKind.pump_replacement, ReinterventionKind.ipg_replacement}


def reintervention_procedure(
    event: Event, history: DeviceHistory, patient_url: str, device_urls: Mapping[str, str]
) -> dict[str, Any]:
    data: ReinterventionData = event.data  # type: ignore[assignment]
    serials = [history.device.serial, *(s for s in data.devices_involved if s != history.device.serial)]
    if data.reintervention in REMOVING:
        action = "removed"
    elif data.reintervention is ReinterventionKind.pre_mri_checklist:
        action = "prepared for MRI"
    else:
        action = "revised"
    focal = [
        {"action": {"text": action if s == history.device.serial else "involved"}, "manipulated": ref(device_urls[s], s)}
        for s in serials
        if s in device_urls
    ]
    procedure: dict[str, Any] = {
        "resourceType": "Procedure",
        "identifier": [{"system": EVENT_SYSTEM, "value": str(event.id)}],
        "status": "completed",
        "code": {"text": data.reintervention.value.replace("_", " ")},
        "subject": ref(patient_url),
        "performedDateTime": event.occurred_on.isoformat(),
        "reasonCode": [{"text": data.reason}],
        "recorder": {"display": event.author},
        "focalDevice": focal,
    }
    unknown = [s for s in serials if s not in device_urls]
    mri = f"MRI on {data.mri_on} (rule 13 pre-MRI checklist)" if data.mri_on else ""
    notes = [n for n in (mri, data.notes, f"devices not in this export: {', '.join(unknown)}" if unknown else "") if n]
    if notes:
        procedure["note"] = [{"text": n} for n in notes]
    return procedure


def review_procedure(
    event: Event, history: DeviceHistory, patient_url: str, device_url: str
) -> dict[str, Any]:
    """Rule 26: the review of a flagged refill, as a Procedure whose reason is the refill's
    "volume withdrawn" Observation, its finding the outcome and its note a note."""
    data: RefillReviewData = event.data  # type: ignore[assignment]
    refill = next((e for e in history.events if e.id == data.refill_event_id and isinstance(e.data, RefillData)), None)
    procedure: dict[str, Any] = {
        "resourceType": "Procedure",
        "identifier": [{"system": EVENT_SYSTEM, "value": str(event.id)}],
        "status": "completed",
        "code": {"text": "review of a flagged pump refill (discrepancy or possible pocket fill)"},
        "subject": ref(patient_url),
        "performedDateTime": event.occurred_on.isoformat(),
        "recorder": {"display": event.author},
        "outcome": {"text": data.finding.label},
        "focalDevice": [{"action": {"text": "reviewed"}, "manipulated": ref(device_url, history.device.serial)}],
    }
    if refill is not None:
        procedure["reasonReference"] = [
            ref(urn("event", refill.id, "withdrawn"), f"refill of {refill.occurred_on}: volume withdrawn")
        ]
    notes = [n for n in (data.note, "" if refill is not None else f"refill entry {data.refill_event_id} is not in this export") if n]
    if notes:
        procedure["note"] = [{"text": n} for n in notes]
    return procedure


def observation(
    event: Event,
    part: str,
    code: dict[str, Any],
    value: dict[str, Any],
    patient_url: str,
    device_url: str,
    category: str,
    amended: bool,
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "identifier": [{"system": EVENT_SYSTEM, "value": f"{event.id}:{part}"}],
        "status": "amended" if amended else "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
        "code": code,
        "subject": ref(patient_url),
        "focus": [ref(device_url)],
        "effectiveDateTime": event.occurred_on.isoformat(),
        "performer": [{"display": event.author}],
        "valueQuantity": value,
    }


def local_code(code: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": OBSERVATION_CODES, "code": code, "display": text}], "text": text}


PAIN_CODE = {"coding": [{"system": LOINC, "code": PAIN_LOINC, "display": PAIN_DISPLAY}], "text": "Pain NRS 0-10"}


def event_observations(
    event: Event, patient_url: str, device_url: str, drugs: Mapping[str, Drug], amended: bool
) -> list[tuple[str, dict[str, Any]]]:
    """The observations of one event, each with its part name."""
    d = event.data
    out: list[tuple[str, dict[str, Any]]] = []

    def add(part: str, code: dict[str, Any], value: dict[str, Any], category: str = "procedure") -> None:
        out.append((part, observation(event, part, code, value, patient_url, device_url, category, amended)))

    if isinstance(d, RefillData):
        add("withdrawn", local_code("refill-volume-withdrawn", "Pump refill: volume withdrawn"), quantity(d.volume_withdrawn_ml, "mL"))
        add("added", local_code("refill-volume-added", "Pump refill: volume added"), quantity(d.volume_added_ml, "mL"))
        for code, mg in drug_doses_mg_per_day(d.program).items():
            name = drugs[code].name if code in drugs else code
            add(f"dose-{code}", local_code(f"it-daily-dose-{code}", f"Intrathecal {name} daily dose (programmed)"), quantity(mg, "mg/d"), "therapy")
    elif isinstance(d, InterrogationData):
        if d.battery_percent is not None:
            add("battery-percent", local_code("battery-percent", "Implanted device battery level"), quantity(d.battery_percent, "%"))
        if d.battery_v is not None:
            add("battery-v", local_code("battery-voltage", "Implanted device battery voltage"), quantity(d.battery_v, "V"))
    elif isinstance(d, (OutcomeData, TrialStartData, TrialEndData)):
        score = d.pain_nrs if isinstance(d, OutcomeData) else d.baseline_nrs if isinstance(d, TrialStartData) else d.end_nrs
        add("pain", PAIN_CODE, {"value": score, "unit": "{score}", "system": UCUM, "code": "{score}"}, "survey")
    return out


def iter_entries(
    patients: Sequence[PatientInfo],
    histories: Sequence[DeviceHistory],
    drugs: Mapping[str, Drug],
    amended_ids: Iterable[int] = (),
    device_urls: Mapping[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """The Bundle's entries (not yet validated): each patient in MRN order, then each of
    its devices with their implant, procedures and observations.  ``amended_ids``: ids
    of events that carry an amendment (their observations get status ``amended``).
    ``device_urls``: every device in the export by serial (default: these histories'),
    so that a replacement or reintervention names a device of another batch."""
    amended = set(amended_ids)
    if device_urls is None:
        device_urls = {h.device.serial: urn("device", h.device.serial) for h in histories}
    by_patient: dict[int, list[DeviceHistory]] = {}
    for h in histories:
        by_patient.setdefault(h.patient.id, []).append(h)
    known = {p.id: p for p in patients} | {h.patient.id: h.patient for h in histories}
    for patient in sorted(known.values(), key=lambda p: p.mrn):
        patient_url = urn("patient", patient.mrn)
        yield {"fullUrl": patient_url, "resource": patient_resource(patient)}
        for h in sorted(by_patient.get(patient.id, []), key=lambda h: (h.device.implanted_on, h.device.id)):
            device_url = device_urls.get(h.device.serial) or urn("device", h.device.serial)
            yield {"fullUrl": device_url, "resource": device_resource(h, patient_url, device_urls)}
            yield {"fullUrl": urn("implant", h.device.serial), "resource": implant_procedure(h, patient_url, device_url)}
            for event in h.events:
                data = event.data
                if isinstance(data, ReinterventionData) and data.reintervention in PROCEDURE_REINTERVENTIONS:
                    yield {"fullUrl": urn("event", event.id), "resource": reintervention_procedure(event, h, patient_url, device_urls)}
                elif isinstance(data, RefillReviewData):
                    yield {"fullUrl": urn("event", event.id), "resource": review_procedure(event, h, patient_url, device_url)}
                for part, obs in event_observations(event, patient_url, device_url, drugs, event.id in amended):
                    yield {"fullUrl": urn("event", event.id, part), "resource": obs}


def bundle_header(generated_at: dt.datetime) -> dict[str, Any]:
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must carry a time zone (FHIR instants do)")
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:devicelog:export", "value": generated_at.strftime("%Y%m%dT%H%M%SZ")},
        "type": "collection",
        "timestamp": generated_at.isoformat(),
    }


def bundle_dict(
    patients: Sequence[PatientInfo],
    histories: Sequence[DeviceHistory],
    drugs: Mapping[str, Drug],
    generated_at: dt.datetime,
    amended_ids: Iterable[int] = (),
) -> dict[str, Any]:
    """The whole Bundle as one plain dict (not yet validated): for a few patients only."""
    return bundle_header(generated_at) | {"entry": list(iter_entries(patients, histories, drugs, amended_ids))}


def build_bundle(
    patients: Sequence[PatientInfo],
    histories: Sequence[DeviceHistory],
    drugs: Mapping[str, Drug],
    generated_at: dt.datetime,
    amended_ids: Iterable[int] = (),
):
    """The Bundle validated as one R4B model (raises pydantic's ValidationError if not).
    Holds every resource as a model: for a few patients only; a clinic goes through
    :func:`write_bundle`."""
    from fhir.resources.R4B.bundle import Bundle

    return Bundle.model_validate(bundle_dict(patients, histories, drugs, generated_at, amended_ids))


def bundle_json(bundle) -> str:
    return bundle.model_dump_json(indent=2, exclude_none=True) + "\n"


# --------------------------------------------------------------------- streaming


#: Patients read, built, validated and written together (a batch holds their histories).
PATIENTS_PER_BATCH = 500


class RefusedResource(ValueError):
    """A resource the R4B models refused: which one, and the models' own words."""

    def __init__(self, entry: Mapping[str, Any], error: Exception):
        resource = entry.get("resource", {})
        ident = (resource.get("identifier") or [{}])
        ident = ident[0] if isinstance(ident, list) else ident
        self.full_url = entry.get("fullUrl")
        self.resource_type = resource.get("resourceType")
        super().__init__(
            f"{self.resource_type} {ident.get('value', '')} ({self.full_url}) was refused by the FHIR R4B models:\n{error}"
        )


def _models() -> dict[str, Any]:
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.device import Device
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.patient import Patient
    from fhir.resources.R4B.procedure import Procedure

    return {"Patient": Patient, "Device": Device, "Procedure": Procedure, "Observation": Observation, "Bundle": Bundle}


_URN_UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PART_ID = re.compile(r"[0-9]+:[A-Za-z0-9_.-]+")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _masked_ref(node: Any) -> Any:
    if isinstance(node, dict) and set(node) == {"reference"} and isinstance(node["reference"], str) and _URN_UUID.fullmatch(node["reference"]):
        return {"reference": "<urn>"}
    return node


def observation_template(resource: Mapping[str, Any]) -> str | None:
    """The Observation with the values that cannot change its validity masked, as a
    key: two observations with the same template are accepted or refused alike.

    Masked only when they have the form this module generates: the identifier value
    ``<event id>:<part>``, ``urn:uuid`` subject and focus references, an ISO
    ``YYYY-MM-DD`` effective date (the models accept every such date a ``datetime.date``
    can print; a string that is not one is left in the key, so it is validated), and
    a finite int or float value (the FHIR decimal pattern matches the ``str()`` of
    every one).  Everything else, author and codes included, stays in the key.
    ``None`` for a resource that is not such an Observation (validate it in full).
    """
    import math

    if resource.get("resourceType") != "Observation":
        return None
    out = dict(resource)
    ident = out.get("identifier")
    if isinstance(ident, list) and len(ident) == 1 and isinstance(ident[0], dict):
        value = ident[0].get("value")
        if isinstance(value, str) and _PART_ID.fullmatch(value):
            out["identifier"] = [{**ident[0], "value": "<part>"}]
    out["subject"] = _masked_ref(out.get("subject"))
    if isinstance(out.get("focus"), list):
        out["focus"] = [_masked_ref(f) for f in out["focus"]]
    when = out.get("effectiveDateTime")
    if isinstance(when, str) and _ISO_DATE.fullmatch(when):
        try:
            dt.date.fromisoformat(when)
            out["effectiveDateTime"] = "<date>"
        except ValueError:
            pass
    quantity_ = out.get("valueQuantity")
    if isinstance(quantity_, dict):
        value = quantity_.get("value")
        if type(value) in (int, float) and math.isfinite(value):
            out["valueQuantity"] = {**quantity_, "value": f"<{type(value).__name__}>"}
    # Keys in the order they were built: the same content in another order only misses the cache.
    return _ENCODE(out)


class EntryValidator:
    """Validates entries one resource at a time with the R4B models; an Observation of
    a template already accepted is not validated again (:func:`observation_template`)."""

    def __init__(self) -> None:
        self.models = _models()
        self.templates: set[str] = set()

    def check(self, entry: Mapping[str, Any]) -> None:
        resource = entry["resource"]
        template = observation_template(resource)
        if template is not None and template in self.templates:
            return
        try:
            self.models[resource["resourceType"]].model_validate(resource)
        except Exception as exc:  # pydantic's ValidationError, or a validator's ValueError
            raise RefusedResource(entry, exc) from exc
        if template is not None:
            self.templates.add(template)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _ENCODE(value) -> str:
    """Compact JSON; C1 controls and bidi overrides written as ``\\uXXXX`` (the same
    value), so a Bundle printed on a terminal runs nothing (``reports.safe.json_text``)."""
    from devicelog.reports.safe import json_text

    return json_text(_ENCODER(value))


def _patient_batches(session, mrn: str | None) -> Iterator[list]:
    """Patient rows in MRN order, :data:`PATIENTS_PER_BATCH` at a time (keyset on MRN)."""
    from sqlmodel import select

    from devicelog.store import queries, tables

    if mrn is not None:
        row = queries.patient_by_mrn(session, mrn)
        if row is None:
            raise LookupError(f"no patient has MRN {mrn!r}")
        yield [row]
        return
    P = tables.Patient
    last: str | None = None
    while True:
        query = select(P).order_by(P.mrn).limit(PATIENTS_PER_BATCH)
        if last is not None:
            query = query.where(P.mrn > last)
        rows = list(session.exec(query).all())
        if not rows:
            return
        yield rows
        last = rows[-1].mrn
        session.expunge_all()  # the batch's rows are not kept by the session


def _batch_entries(session, patient_rows, drugs, whole_clinic: bool) -> Iterator[dict[str, Any]]:
    """The entries of one batch of patients: their devices' histories read together."""
    from sqlmodel import select

    from devicelog.store import queries, tables

    D, E = tables.Device, tables.EventRow
    patient_ids = [p.id for p in patient_rows]
    device_ids = list(session.exec(select(D.id).where(D.patient_id.in_(patient_ids))).all())
    histories = list(queries.load_histories(session, device_ids)) if device_ids else []
    amended: list[int] = []
    for start in range(0, len(device_ids), 500):
        chunk = device_ids[start : start + 500]
        amended += session.exec(
            select(E.amends_id).where(E.device_id.in_(chunk), E.amends_id.is_not(None), E.voided == False)  # noqa: E712
        ).all()
    # Devices this batch names: its own, and those a replacement or reintervention names;
    # in a whole-clinic export every device in the database is in the Bundle.
    serials = {h.device.serial for h in histories}
    named = {h.device.replaces_serial for h in histories if h.device.replaces_serial}
    for h in histories:
        for e in h.events:
            if isinstance(e.data, ReinterventionData):
                named.update(e.data.devices_involved)
    named -= serials
    if named and whole_clinic:
        found = set()
        wanted = sorted(named)
        for start in range(0, len(wanted), 500):
            found.update(session.exec(select(D.serial).where(D.serial.in_(wanted[start : start + 500]))).all())
        serials |= found
    device_urls = {s: urn("device", s) for s in serials}
    patients = [queries.to_patient(p) for p in patient_rows]
    yield from iter_entries(patients, histories, drugs, amended, device_urls)


def write_bundle(session, out: TextIO, generated_at: dt.datetime, mrn: str | None = None) -> dict[str, int]:
    """Write the Bundle of every patient (or one patient's) to ``out`` as it is built;
    return the number of resources of each type.  Raises ``LookupError`` for an
    unknown MRN and :class:`RefusedResource` for a resource the models refuse (what
    was written by then is incomplete: write to a temporary file, see
    :func:`export_file`).

    Layout: the Bundle's own fields, then ``"entry":[`` and one entry per line."""
    from devicelog.store import queries

    validator = EntryValidator()
    header = validator.models["Bundle"].model_validate(bundle_header(generated_at)).model_dump_json(exclude_none=True)
    batches = _patient_batches(session, mrn)
    drugs = queries.drugs_by_code(session)
    counts: dict[str, int] = {}
    out.write(header[:-1])
    separator = ',"entry":[\n'
    for rows in batches:
        for entry in _batch_entries(session, rows, drugs, whole_clinic=mrn is None):
            validator.check(entry)
            out.write(separator)
            out.write(_ENCODE(entry))
            separator = ",\n"
            kind = entry["resource"]["resourceType"]
            counts[kind] = counts.get(kind, 0) + 1
    out.write("\n]}\n" if counts else "}\n")
    return counts


def export_file(session, path: str | os.PathLike | None, generated_at: dt.datetime, mrn: str | None = None) -> dict[str, int]:
    """:func:`write_bundle` into a temporary file beside ``path`` that replaces ``path``
    only when the whole Bundle was written (``None``: copied to standard output then).
    On any error nothing is written and the temporary file is removed."""
    import shutil
    import sys
    import tempfile

    folder = os.path.dirname(os.path.abspath(path)) if path else None
    fd, tmp = tempfile.mkstemp(prefix=".devicelog-fhir-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            counts = write_bundle(session, fh, generated_at, mrn)
        if path:
            os.replace(tmp, path)
        else:
            with open(tmp, encoding="utf-8") as fh:
                shutil.copyfileobj(fh, sys.stdout)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return counts


def load_bundle(session, generated_at: dt.datetime, mrn: str | None = None):
    """The validated Bundle model of every patient (or one patient's), read back from
    :func:`write_bundle`'s text: for tests and small exports (a clinic's Bundle model
    does not fit in memory)."""
    import io

    buffer = io.StringIO()
    write_bundle(session, buffer, generated_at, mrn)
    return _models()["Bundle"].model_validate_json(buffer.getvalue())
