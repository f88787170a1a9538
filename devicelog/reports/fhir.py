"""FHIR R4 export: a Bundle of Patient, Device, Procedure and Observation (issue 5.6).

Built as plain dicts and validated once, as a whole, by fhir.resources' **R4B**
models (``fhir.resources.R4B``; the package's default models are R5 and R4 4.0.1 is
not shipped; R4B shares R4's Patient, Device, Procedure and Observation).  The JSON
written is the validated model's, so what leaves devicelog is what the library
accepted.

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
- **Observation**: refill volumes (withdrawn, added, mL) and the programmed daily
  dose of each drug (mg/d) at each refill; battery readings (%, V); pain scores
  (LOINC 72514-3, 0-10).  Units are UCUM.  An amended event's observations have
  status ``amended``; voided events are not exported.

Every ``fullUrl`` is a ``urn:uuid`` derived from the record (MRN, serial, event id),
so exporting the same database twice gives the same ids.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Iterable, Mapping, Sequence

from devicelog.clinic.catalogue import Drug
from devicelog.clinic.history import DeviceHistory, PatientInfo
from devicelog.clinic.pump import drug_doses_mg_per_day
from devicelog.clinic.records import (
    Event,
    InterrogationData,
    OutcomeData,
    RefillData,
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
    action = "removed" if data.reintervention in REMOVING else "revised"
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
    notes = [n for n in (data.notes, f"devices not in this export: {', '.join(unknown)}" if unknown else "") if n]
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


def bundle_dict(
    patients: Sequence[PatientInfo],
    histories: Sequence[DeviceHistory],
    drugs: Mapping[str, Drug],
    generated_at: dt.datetime,
    amended_ids: Iterable[int] = (),
) -> dict[str, Any]:
    """The Bundle as a plain dict (not yet validated): each patient, then each of its
    devices with their implant, procedures and observations.  ``amended_ids``: ids of
    events that carry an amendment (their observations get status ``amended``)."""
    amended = set(amended_ids)
    entries: list[dict[str, Any]] = []
    device_urls = {h.device.serial: urn("device", h.device.serial) for h in histories}
    by_patient: dict[int, list[DeviceHistory]] = {}
    for h in histories:
        by_patient.setdefault(h.patient.id, []).append(h)
    known = {p.id: p for p in patients} | {h.patient.id: h.patient for h in histories}
    for patient in sorted(known.values(), key=lambda p: p.mrn):
        patient_url = urn("patient", patient.mrn)
        entries.append({"fullUrl": patient_url, "resource": patient_resource(patient)})
        for h in sorted(by_patient.get(patient.id, []), key=lambda h: (h.device.implanted_on, h.device.id)):
            device_url = device_urls[h.device.serial]
            entries.append({"fullUrl": device_url, "resource": device_resource(h, patient_url, device_urls)})
            entries.append({"fullUrl": urn("implant", h.device.serial), "resource": implant_procedure(h, patient_url, device_url)})
            for event in h.events:
                data = event.data
                if isinstance(data, ReinterventionData) and data.reintervention in PROCEDURE_REINTERVENTIONS:
                    entries.append({"fullUrl": urn("event", event.id), "resource": reintervention_procedure(event, h, patient_url, device_urls)})
                for part, obs in event_observations(event, patient_url, device_url, drugs, event.id in amended):
                    entries.append({"fullUrl": urn("event", event.id, part), "resource": obs})
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:devicelog:export", "value": generated_at.strftime("%Y%m%dT%H%M%SZ")},
        "type": "collection",
        "timestamp": generated_at.isoformat(),
        "entry": entries,
    }


def build_bundle(
    patients: Sequence[PatientInfo],
    histories: Sequence[DeviceHistory],
    drugs: Mapping[str, Drug],
    generated_at: dt.datetime,
    amended_ids: Iterable[int] = (),
):
    """The Bundle validated by the R4B models (raises pydantic's ValidationError if not)."""
    from fhir.resources.R4B.bundle import Bundle

    if generated_at.tzinfo is None:
        raise ValueError("generated_at must carry a time zone (FHIR instants do)")
    return Bundle.model_validate(bundle_dict(patients, histories, drugs, generated_at, amended_ids))


def bundle_json(bundle) -> str:
    return bundle.model_dump_json(indent=2, exclude_none=True) + "\n"


def load_bundle(session, generated_at: dt.datetime, mrn: str | None = None):
    """Read every patient and device (or one patient's) and build the validated Bundle.
    A fixed number of queries whatever the number of events."""
    from sqlmodel import select

    from devicelog.store import queries, tables

    if mrn is not None:
        row = queries.patient_by_mrn(session, mrn)
        if row is None:
            raise LookupError(f"no patient has MRN {mrn!r}")
        patients = [queries.to_patient(row)]
        ids = [d.id for d in queries.devices_of_patient(session, row.id)]
        histories = list(queries.load_histories(session, ids)) if ids else []
    else:
        patients = [queries.to_patient(r) for r in session.exec(select(tables.Patient)).all()]
        histories = list(queries.load_histories(session))
    amended = session.exec(
        select(tables.EventRow.amends_id).where(tables.EventRow.amends_id.is_not(None), tables.EventRow.voided == False)  # noqa: E712
    ).all()
    return build_bundle(patients, histories, queries.drugs_by_code(session), generated_at, amended)
