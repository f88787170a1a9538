"""FHIR R4 export: the Bundle is validated by the R4B models, round-trips, and says what
the clinic recorded (the clinic of tests/test_history.py plus two devices with a UDI)."""

import datetime as dt
import json
import re

import pytest

from devicelog import services
from devicelog.cli import main
from devicelog.clinic.records import DeviceIn, PatientIn
from devicelog.clinic.udi import parse_udi
from devicelog.reports.fhir import PAIN_LOINC, bundle_json, load_bundle
from devicelog.store.db import read_session, write_session
from tests.conftest import TODAY
from tests.test_history import make_clinic

NOW = dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.timezone.utc)
HRF = "(01)09504000059118(11)130101(17)141120(10)7654321D(21)10987654d321"
AIDC = "]d2010950400005911817141120107654321D\x1d2110987654d322"


@pytest.fixture
def clinic(engine):
    make_clinic(engine)
    with write_session(engine) as s:
        services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN002", name="Bo Diaz", birth_date=dt.date(1961, 5, 6)), author="rn")
        for raw, serial in ((HRF, "10987654d321"), (AIDC, "10987654d322")):
            services.add_device(
                session=s,
                device=DeviceIn(patient_mrn="MRN002", model="medtronic-intellis", serial=serial, implanted_on=dt.date(2026, 2, 1), udi=parse_udi(raw)),
                author="rn",
                today=TODAY,
            )
        services.add_patient(session=s, today=dt.date(2026, 11, 23), patient=PatientIn(mrn="MRN003", name="Cy", birth_date=dt.date(1970, 1, 1)), author="rn")
    return engine


def bundle(engine, mrn=None):
    with read_session(engine) as s:
        return load_bundle(s, NOW, mrn=mrn)


def resources(b, kind):
    return [e.resource for e in b.entry if type(e.resource).__name__ == kind]


def test_bundle_is_r4b_and_round_trips(clinic):
    from fhir.resources.R4B.bundle import Bundle

    b = bundle(clinic)
    assert type(b).__module__ == "fhir.resources.R4B.bundle"
    text = bundle_json(b)
    again = Bundle.model_validate_json(text)
    assert again.model_dump(exclude_none=True) == b.model_dump(exclude_none=True)
    data = json.loads(text)
    assert data["resourceType"] == "Bundle" and data["type"] == "collection"
    assert data["timestamp"] == "2026-11-23T09:30:00Z"
    urls = [e["fullUrl"] for e in data["entry"]]
    assert len(urls) == len(set(urls)) and all(u.startswith("urn:uuid:") for u in urls)
    # every reference points inside the bundle
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "reference" in node:
                refs.add(node["reference"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(data["entry"])
    assert refs <= set(urls)


def test_same_database_same_ids(clinic):
    assert bundle_json(bundle(clinic)) == bundle_json(bundle(clinic))


def test_patients_including_one_without_devices(clinic):
    patients = resources(bundle(clinic), "Patient")
    assert [p.identifier[0].value for p in patients] == ["MRN001", "MRN002", "MRN003"]
    ann = patients[0]
    assert ann.name[0].family == "Lee" and ann.name[0].given == ["Ann"] and str(ann.birthDate) == "1950-01-02"


def test_us_core_implantable_device_fields(clinic):
    devices = {d.identifier[0].value: d for d in resources(bundle(clinic, "MRN002"), "Device")}
    hrf = devices["10987654d321"]
    assert hrf.meta.profile == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-implantable-device"]
    (carrier,) = hrf.udiCarrier
    assert carrier.deviceIdentifier == "09504000059118"
    assert carrier.carrierHRF == HRF and carrier.carrierAIDC is None
    assert hrf.serialNumber == "10987654d321" and hrf.lotNumber == "7654321D"
    assert str(hrf.expirationDate)[:10] == "2014-11-20" and str(hrf.manufactureDate)[:10] == "2013-01-01"
    assert hrf.status == "active"
    aidc = devices["10987654d322"]
    (carrier,) = aidc.udiCarrier
    # scanned element string: HRF rebuilt from the parsed fields, the scan kept as AIDC
    assert carrier.carrierHRF == "(01)09504000059118(17)141120(10)7654321D(21)10987654d322"
    assert carrier.carrierAIDC == AIDC.encode()  # the model holds the decoded bytes
    import base64

    written = json.loads(bundle_json(bundle(clinic, "MRN002")))
    aidc_json = next(e["resource"]["udiCarrier"][0]["carrierAIDC"] for e in written["entry"] if e["resource"].get("serialNumber") == "10987654d322")
    assert base64.b64decode(aidc_json).decode() == AIDC


def test_device_status_and_procedures_with_focal_device(clinic):
    b = bundle(clinic, "MRN001")
    devices = {d.identifier[0].value: d for d in resources(b, "Device")}
    assert devices["NGP100"].status == "inactive" and devices["NGP200"].status == "active"
    url_of = {e.resource.identifier[0].value: e.fullUrl for e in b.entry if type(e.resource).__name__ == "Device"}
    procedures = resources(b, "Procedure")
    implants = [p for p in procedures if "implant" in p.code.text]
    assert len(implants) == 3
    replacement = next(p for p in procedures if p.code.text == "pump replacement")
    assert str(replacement.performedDateTime)[:10] == "2025-06-01"
    assert replacement.focalDevice[0].manipulated.reference == url_of["NGP100"]
    assert replacement.focalDevice[0].action.text == "removed"
    assert replacement.reasonCode[0].text == "ERI"


def test_observations_units_and_loinc(clinic):
    obs = resources(bundle(clinic, "MRN001"), "Observation")
    pain = [o for o in obs if o.code.coding[0].code == PAIN_LOINC]
    # two outcomes (the voided NRS 9 is not exported)
    assert sorted((str(o.effectiveDateTime)[:10], o.valueQuantity.value) for o in pain) == [("2025-04-01", 6), ("2025-09-01", 3)]
    assert all(o.code.coding[0].system == "http://loinc.org" for o in pain)
    withdrawn = sorted(
        (str(o.effectiveDateTime)[:10], float(o.valueQuantity.value), o.status)
        for o in obs
        if o.code.coding[0].code == "refill-volume-withdrawn"
    )
    assert withdrawn[:3] == [("2025-01-05", 0.0, "final"), ("2025-02-04", 13.6, "amended"), ("2025-03-06", 13.2, "final")]
    units = {o.code.coding[0].code: (o.valueQuantity.unit, o.valueQuantity.system) for o in obs if o.valueQuantity is not None}
    assert units["refill-volume-added"] == ("mL", "http://unitsofmeasure.org")
    assert units["it-daily-dose-morphine"] == ("mg/d", "http://unitsofmeasure.org")
    assert units["battery-percent"] == ("%", "http://unitsofmeasure.org")
    doses = sorted({float(o.valueQuantity.value) for o in obs if o.code.coding[0].code == "it-daily-dose-morphine"})
    assert doses == [2.0, 3.0]
    battery = sorted(float(o.valueQuantity.value) for o in obs if o.code.coding[0].code == "battery-percent")
    assert battery == [90.0, 100.0]


def test_unknown_patient(clinic):
    with pytest.raises(LookupError, match="NOPE"):
        bundle(clinic, "NOPE")


def test_fhir_command(clinic, db_url, tmp_path, capsys):
    from fhir.resources.R4B.bundle import Bundle

    target = tmp_path / "b.json"
    assert main(["--db", db_url, "fhir", "--patient", "MRN002", "-o", str(target)]) == 0
    b = Bundle.model_validate_json(target.read_text(encoding="utf-8"))
    assert [type(e.resource).__name__ for e in b.entry] == ["Patient", "Device", "Procedure", "Device", "Procedure"]
    assert "2 Device, 1 Patient, 2 Procedure" in capsys.readouterr().err
    assert main(["--db", db_url, "fhir", "--patient", "NOPE"]) == 1
    assert "patient = 'NOPE'" in capsys.readouterr().err


# --------------------------------------------------------------------- streaming (issue 8)


def written(engine, monkeypatch=None, per_batch=None, mrn=None) -> str:
    import io

    from devicelog.reports import fhir

    if per_batch is not None:
        monkeypatch.setattr(fhir, "PATIENTS_PER_BATCH", per_batch)
    out = io.StringIO()
    with read_session(engine) as s:
        fhir.write_bundle(s, out, NOW, mrn=mrn)
    return out.getvalue()


def test_a_clinic_written_in_batches_is_one_valid_bundle_with_every_resource(clinic, monkeypatch):
    """One patient per batch: the same entries, in the same order, as one batch, each a
    resource the models accept, and references across batches still resolve."""
    from fhir.resources.R4B.bundle import Bundle

    whole = written(clinic)
    batched = written(clinic, monkeypatch, per_batch=1)
    assert json.loads(batched) == json.loads(whole)
    b = Bundle.model_validate_json(batched)
    kinds = [type(e.resource).__name__ for e in b.entry]
    assert kinds.count("Patient") == 3 and kinds.count("Device") == 5
    assert [e.resource.identifier[0].value for e in b.entry if type(e.resource).__name__ == "Patient"] == ["MRN001", "MRN002", "MRN003"]
    data = json.loads(batched)
    urls = {e["fullUrl"] for e in data["entry"]}
    refs = {m for m in re.findall(r'"reference":"([^"]+)"', batched)}
    assert refs and refs <= urls
    # one entry per line after the Bundle's own fields
    lines = batched.splitlines()
    assert lines[0].startswith('{"resourceType":"Bundle"') and lines[-1] == "]}"
    assert len(lines) == len(data["entry"]) + 2


def test_what_is_written_is_what_the_models_accept(clinic):
    """Each resource written equals its R4B model's own JSON of it, so writing the dict
    the model validated is writing what the library accepted."""
    from devicelog.reports.fhir import _models

    models = _models()
    for entry in json.loads(written(clinic))["entry"]:
        resource = entry["resource"]
        model = models[resource["resourceType"]].model_validate(resource)
        assert json.loads(model.model_dump_json(exclude_none=True)) == resource


def test_observation_templates_mask_only_generated_values():
    from devicelog.reports.fhir import EntryValidator, RefusedResource, observation_template

    obs = {
        "resourceType": "Observation",
        "identifier": [{"system": "urn:devicelog:event", "value": "12:withdrawn"}],
        "status": "final",
        "code": {"text": "Pump refill: volume withdrawn"},
        "subject": {"reference": "urn:uuid:22288d92-1b6d-5dc6-9e03-5f333992d400"},
        "focus": [{"reference": "urn:uuid:5248c443-cb12-5307-81ae-71ab4bd547bc"}],
        "effectiveDateTime": "2026-06-25",
        "performer": [{"display": "rn.ann"}],
        "valueQuantity": {"value": 13.6, "unit": "mL", "system": "http://unitsofmeasure.org", "code": "mL"},
    }
    other = json.loads(json.dumps(obs))
    other["identifier"][0]["value"] = "99:withdrawn"
    other["effectiveDateTime"] = "2025-01-31"
    other["valueQuantity"]["value"] = 0.0
    assert observation_template(obs) == observation_template(other)
    validator = EntryValidator()
    validator.check({"fullUrl": "urn:uuid:x", "resource": obs})
    # what could make a resource invalid is never masked: each of these is validated, and refused
    for path, bad in ((("valueQuantity", "value"), float("nan")), (("effectiveDateTime",), "2026-02-30"), (("status",), "final  amended")):
        refused = json.loads(json.dumps(obs))
        node = refused
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = bad
        assert observation_template(refused) != observation_template(obs)
        with pytest.raises(RefusedResource, match="Observation 12:withdrawn"):
            validator.check({"fullUrl": "urn:uuid:x", "resource": refused})


def test_a_refused_record_leaves_nothing_written(clinic, db_url, tmp_path, capsys, monkeypatch):
    from devicelog.reports import fhir

    target = tmp_path / "b.json"
    target.write_text("before", encoding="utf-8")
    real = fhir.patient_resource

    def bad_birth_date(patient):
        resource = real(patient)
        if patient.mrn == "MRN003":
            resource["birthDate"] = "1970-02-30"
        return resource

    monkeypatch.setattr(fhir, "PATIENTS_PER_BATCH", 1)
    monkeypatch.setattr(fhir, "patient_resource", bad_birth_date)
    assert main(["--db", db_url, "fhir", "-o", str(target)]) == 1
    err = capsys.readouterr().err
    assert "nothing written" in err and "Patient MRN003" in err
    assert target.read_text(encoding="utf-8") == "before"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".devicelog-fhir")] == []


def test_fhir_to_standard_output(clinic, db_url, capsys):
    from fhir.resources.R4B.bundle import Bundle

    assert main(["--db", db_url, "fhir", "--patient", "MRN003"]) == 0
    b = Bundle.model_validate_json(capsys.readouterr().out)
    assert [type(e.resource).__name__ for e in b.entry] == ["Patient"]


def test_a_drug_read_in_micrograms_is_exported_in_micrograms():
    """Issue 13.4: ziconotide 0.0024 mg/day is 2.4 µg/day (UCUM ug/d), as every screen says."""
    from devicelog.clinic.catalogue import shipped_catalogue
    from devicelog.clinic.records import Event, RefillData
    from devicelog.reports.fhir import event_observations

    drugs = {d.code: d for d in shipped_catalogue().drugs}
    data = RefillData.model_validate({
        "volume_withdrawn_ml": 0.0, "volume_added_ml": 20.0, "reservoir_volume_after_ml": 20.0,
        "program": {"mode": "simple_continuous", "dose_mg_per_day": 0.0024,
                    "drugs": [{"drug": "ziconotide", "concentration_mg_per_ml": 0.025},
                              {"drug": "morphine", "concentration_mg_per_ml": 10.0}]},
    })
    event = Event(id=7, device_id=1, occurred_on=dt.date(2026, 10, 1), author="rn",
                  recorded_at=dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc), data=data)
    doses = {part: obs["valueQuantity"] for part, obs in event_observations(event, "urn:p", "urn:d", drugs, False) if part.startswith("dose-")}
    # volume 0.0024 ÷ 0.025 = 0.096 mL/day: ziconotide 0.096 × 25 µg/mL = 2.4 µg/d; morphine 0.096 × 10 = 0.96 mg/d
    assert (doses["dose-ziconotide"]["value"], doses["dose-ziconotide"]["code"]) == (2.4, "ug/d")
    assert (doses["dose-morphine"]["value"], doses["dose-morphine"]["code"]) == (0.96, "mg/d")


def test_program_changes_are_exported_in_the_words_of_the_history(clinic):
    """Issue 13.4: FHIR reads the one program diff.  NGP100 (tests/test_history.py):
    morphine 10 mg/mL raised from 2 to 3 mg/day on 2025-03-21 (0.2 → 0.3 mL/day);
    SCS300 program A 3.5 mA → 4.2 mA and 210 → 300 µs on its second programming."""
    obs = resources(bundle(clinic, "MRN001"), "Observation")
    changes = {str(o.effectiveDateTime)[:10]: o.valueString for o in obs if o.code.coding[0].code == "device-program-change"}
    assert changes["2025-03-21"] == "pump: morphine dose: 2 mg/day → 3 mg/day; daily volume: 0.200 mL/day → 0.300 mL/day"
    assert any("amplitude: 3.5 mA → 4.2 mA" in text for text in changes.values())
