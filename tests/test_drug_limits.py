"""Issue 18.2, the drug-limit library, and issue 19, drug numbers outside clinical ranges.

Amounts are stored in mg whatever unit a drug is read in: 1 mg = 1000 mcg, so
ziconotide's 19.2 mcg/day is 0.0192 mg/day and clonidine's 1000 mcg/mL is 1.0 mg/mL.
A simple continuous program's daily volume is dose ÷ concentration (rule 1); a drug's
daily dose from a volume is mL/day × mg/mL.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlmodel import select

from devicelog import forms, services, transfer
from devicelog.clinic.catalogue import Drug, DrugLimit, LimitKind
from devicelog.clinic.forecast import dose_warnings, forecast_device, refill_preview
from devicelog.clinic.pump import (
    applicable_limits,
    concentration_checks,
    daily_volume_ml,
    dose_checks,
    drug_doses_mg_per_day,
    implausible_values,
    limit_code,
    titration_checks,
)
from devicelog.clinic.records import EventIn, PumpProgram
from devicelog.reports.history import summarize
from devicelog.settings import Settings
from devicelog.store import queries, tables
from devicelog.store.db import read_session, write_session
from tests.clinic_builders import CATALOGUE, SETTINGS, Story, d, refill, simple_program
from tests.test_services import clinic, counts, record, refused  # noqa: F401  (fixture)
from tests.test_services import refill as service_refill
from tests.test_transfer import do_import, document, other_engine, refusals  # noqa: F401  (fixture)
from tests.test_transfer import refill as doc_refill

SHIPPED = [(drug, lim) for drug in CATALOGUE.drugs for lim in drug.limits]


def settings_for(lim: DrugLimit) -> Settings:
    return Settings(region=lim.region or "EU", consensus_limits=True)


def codes(warnings) -> dict[str, str]:
    return {w.code: w.level for w in warnings}


# ---------------------------------------------------------------- every limit, at and just above


def _check(drug: Drug, lim: DrugLimit, amount: float, settings: Settings):
    """The warnings for ``amount`` of the limit's kind: a concentration (mg/mL), a daily
    dose (mg/day), an increase (mg/day, from a dose of 1 mg/day held for a week), or a
    number of hours since the last increase (events are dated: hours in whole days)."""
    if lim.kind is LimitKind.max_concentration:
        return concentration_checks(drug, amount, settings)
    if lim.kind is LimitKind.max_dose:
        return dose_checks(drug, amount, settings)
    if lim.kind is LimitKind.max_step:
        base = 0.001  # 1 mcg/day, raised 7 days after it was set: only the step counts
        return titration_checks([(d("2025-01-01"), base)], base + amount, d("2025-01-08"), settings, drug)
    days = int(amount // 24)  # the increase of 0.1 mcg/day (below any step) `days` after the last
    return titration_checks([(d("2025-01-01"), 0.001)], 0.0011, d("2025-01-01") + dt.timedelta(days=days), settings, drug)


@pytest.mark.parametrize("drug, lim", SHIPPED, ids=[f"{dr.code}-{lim.kind.value}-{lim.ref}" for dr, lim in SHIPPED])
def test_every_shipped_limit_holds_at_the_limit_and_acts_just_above_it(drug, lim):
    settings = settings_for(lim)
    code = limit_code(drug, lim)
    level = "block" if lim.severity == "hard" else "warn"
    if lim.kind is LimitKind.min_step_interval:
        # 24 h = 1 day, 48 h = 2 days: at the limit allowed; one day sooner (24 h less) not.
        assert code not in codes(_check(drug, lim, lim.value, settings))
        sooner = codes(_check(drug, lim, lim.value - 24, settings))
        # a hard 24 h limit unmet (same day) hides the softer 48 h one; each alone acts
        assert sooner.get(code) == level
        return
    at = _check(drug, lim, lim.value, settings)
    assert code not in codes(at)
    above = [w for w in _check(drug, lim, lim.value * 1.01, settings) if w.code == code]
    assert [w.level for w in above] == [level]
    # The message names the limit in the drug's unit and its source.
    assert lim.source in above[0].message
    assert lim.severity in above[0].message


def test_the_shipped_library_holds_only_the_reference_numbers_and_marks_pacc_to_verify():
    # Every consensus (PACC) number is [GK, verify] in domain.md 1.3 and 8: soft, with
    # "verify against your formulary" in its source.
    for drug, lim in SHIPPED:
        if lim.consensus or "[GK]" in lim.source:
            assert lim.severity == "soft" and "verify against your formulary" in lim.source, (drug.code, lim.ref)
    by = {(dr.code, lim.kind.value, lim.ref): lim.value for dr, lim in SHIPPED}
    assert by == {
        ("morphine", "max_concentration", "pacc-2017"): 20,  # mg/mL
        ("morphine", "max_dose", "pacc-2017"): 15,  # mg/day
        ("morphine", "max_dose", "infumorph-label"): 20,  # mg/day, label caution (rule 7)
        ("hydromorphone", "max_concentration", "pacc-2017"): 15,
        ("hydromorphone", "max_dose", "pacc-2017"): 10,
        ("hydromorphone", "max_dose", "clinical-range"): 25,  # 0.5-25 mg/day in use
        ("fentanyl", "max_concentration", "pacc-2017"): 10,  # 10 mg/mL as PACC gives it
        ("fentanyl", "max_dose", "pacc-2017"): 1.0,  # 1000 mcg/day = 1.0 mg/day
        ("bupivacaine", "max_concentration", "pacc-2017"): 30,
        ("bupivacaine", "max_dose", "clinical-range"): 20,  # 6-20 mg/day in use
        ("clonidine", "max_concentration", "pacc-2017"): 1.0,  # 1000 mcg/mL = 1.0 mg/mL
        ("clonidine", "max_dose", "clinical-range"): 2.0,  # 250-2000 mcg/day: 2000 mcg = 2.0 mg
        ("ziconotide", "max_dose", "label-us"): 0.0192,  # 19.2 mcg/day = 0.8 mcg/h × 24 h
        ("ziconotide", "max_dose", "label-eu"): 0.0216,  # 21.6 mcg/day
        ("ziconotide", "max_step", "label"): 0.0024,  # 2.4 mcg/day = 0.1 mcg/h × 24 h
        ("ziconotide", "min_step_interval", "label"): 24,  # hours
        ("ziconotide", "min_step_interval", "label-recommended"): 48,
    }
    # No number in the reference: no limit shipped (docs/drug-limits.md says so).
    assert CATALOGUE.drug("sufentanil").limits == () and CATALOGUE.drug("baclofen").limits == ()


# ---------------------------------------------------------------- region and consensus settings


def test_ziconotide_maximum_follows_the_clinics_region():
    zic = CATALOGUE.drug("ziconotide")
    # 20.4 mcg/day = 0.0204 mg/day: above 19.2 (US), below 21.6 (EU).
    us = dose_checks(zic, 0.0204, Settings(region="US"))
    eu = dose_checks(zic, 0.0204, Settings(region="EU"))
    assert [(w.code, w.level) for w in us] == [("limit_ziconotide_max_dose_label-us", "block")]
    assert "20.4 mcg/day" in us[0].message and "19.2 mcg/day (hard, US; source: PRIALT US label" in us[0].message
    assert eu == []
    # 22.0 mcg/day is above 21.6 (EU) too: the EU clinic sees only its own label's limit.
    (eu_block,) = dose_checks(zic, 0.022, Settings(region="EU"))
    assert eu_block.code == "limit_ziconotide_max_dose_label-eu" and "21.6 mcg/day" in eu_block.message


def test_consensus_limits_apply_only_when_the_clinic_applies_them():
    morphine = CATALOGUE.drug("morphine")
    # 16 mg/day: above PACC 15 mg/day (consensus), below the label caution 20 mg/day.
    assert codes(dose_checks(morphine, 16.0, Settings())) == {"limit_morphine_max_dose_pacc-2017": "warn"}
    assert dose_checks(morphine, 16.0, Settings(consensus_limits=False)) == []
    # 21 mg/day: the label's caution still applies without consensus limits.
    assert codes(dose_checks(morphine, 21.0, Settings(consensus_limits=False))) == {"limit_morphine_max_dose_infumorph-label": "warn"}
    assert [lim.ref for lim in applicable_limits(morphine, Settings(consensus_limits=False))] == ["infumorph-label"]


# ---------------------------------------------------------------- the Infumorph false alarm


def test_infumorph_25_mg_per_ml_names_the_pacc_source_and_its_labelled_strength():
    morphine = CATALOGUE.drug("morphine")
    (w,) = concentration_checks(morphine, 25.0, SETTINGS)
    assert w.level == "warn"
    assert "25 mg/mL (a labelled strength: never a hard block)" in w.message
    assert "maximum concentration 20 mg/mL (soft; source: PACC 2017 consensus maximum" in w.message
    assert "verify against your formulary" in w.message
    assert "above the maximum of 20 mg/mL" not in w.message  # the old message named no source


def test_a_labelled_strength_is_never_a_hard_block_even_under_a_clinics_hard_limit():
    hard = DrugLimit(kind="max_concentration", value=20, severity="hard", source="clinic formulary", ref="clinic")
    morphine = CATALOGUE.drug("morphine").model_copy(update={"limits": (hard,)})
    assert [w.level for w in concentration_checks(morphine, 25.0, SETTINGS)] == ["warn"]  # labelled: soft
    assert [w.level for w in concentration_checks(morphine, 24.0, SETTINGS)] == ["block"]  # not labelled


# ---------------------------------------------------------------- unit conversions


def test_a_dose_from_volume_and_concentration_is_checked_in_the_drugs_unit():
    # Constant-flow pump 1.0 mL/day of hydromorphone 12 mg/mL = 1.0 × 12 = 12 mg/day:
    # above the PACC 10 mg/day (soft), below the clinical range's 25 mg/day.
    program = PumpProgram.model_validate({"mode": "constant_flow", "flow_rate_ml_per_day": 1.0,
                                          "drugs": [{"drug": "hydromorphone", "concentration_mg_per_ml": 12.0}]})
    assert drug_doses_mg_per_day(program) == {"hydromorphone": 12.0}
    warnings = dose_warnings(Story().history, program, d("2025-01-06"), SETTINGS, CATALOGUE)
    assert codes(warnings) == {"limit_hydromorphone_max_dose_pacc-2017": "warn"}
    assert "Hydromorphone 12 mg/day is above the maximum daily dose 10 mg/day" in warnings[0].message


def test_mcg_drugs_are_shown_and_compared_in_micrograms():
    # Clonidine in an admixture: morphine 10 mg/mL at 5 mg/day → 5 ÷ 10 = 0.5 mL/day;
    # clonidine 2.0 mg/mL (2000 mcg/mL) × 0.5 mL/day = 1.0 mg/day = 1000 mcg/day: below
    # 2000 mcg/day, but 2000 mcg/mL is above the PACC 1000 mcg/mL.
    program = PumpProgram.model_validate({"mode": "simple_continuous", "dose_mg_per_day": 5.0, "drugs": [
        {"drug": "morphine", "concentration_mg_per_ml": 10.0}, {"drug": "clonidine", "concentration_mg_per_ml": 2.0}]})
    assert daily_volume_ml(program) == pytest.approx(0.5)
    assert drug_doses_mg_per_day(program)["clonidine"] == pytest.approx(1.0)
    warnings = dose_warnings(Story().history, program, d("2025-01-06"), SETTINGS, CATALOGUE)
    assert codes(warnings) == {"limit_clonidine_max_concentration_pacc-2017": "warn"}
    assert "Clonidine 2000 mcg/mL is above the maximum concentration 1000 mcg/mL" in warnings[0].message
    # Fentanyl 1000 mcg/day = 1.0 mg/day at the limit; 1010 mcg/day = 1.01 mg/day above.
    fentanyl = CATALOGUE.drug("fentanyl")
    assert dose_checks(fentanyl, 1.0, SETTINGS) == []
    (w,) = dose_checks(fentanyl, 1.01, SETTINGS)
    assert "Fentanyl 1010 mcg/day is above the maximum daily dose 1000 mcg/day" in w.message


# ---------------------------------------------------------------- intrathecal baclofen


def test_baclofen_is_in_the_catalogue_in_micrograms_with_its_labelled_strengths():
    baclofen = CATALOGUE.drug("baclofen")
    assert baclofen.display_unit == "mcg"
    # 50, 500, 1000, 2000 mcg/mL = 0.05, 0.5, 1.0, 2.0 mg/mL
    assert [baclofen.show(c, "/mL") for c in baclofen.labelled_concentrations_mg_per_ml] == [
        "50 mcg/mL", "500 mcg/mL", "1000 mcg/mL", "2000 mcg/mL"]
    assert "withdrawal" in baclofen.boxed_warning and "refills scheduled" in baclofen.boxed_warning
    assert "alarm awareness" in baclofen.boxed_warning


def test_the_baclofen_withdrawal_warning_is_on_the_refill_preview_and_the_refill_item():
    # 500 mcg/mL at 250 mcg/day = 0.25 mg/day ÷ 0.5 mg/mL = 0.5 mL/day.
    fill = refill(simple_program(0.25, "baclofen", 0.5))
    preview = refill_preview(Story().history, fill, d("2025-01-06"), SETTINGS, CATALOGUE)
    assert preview.daily_volume_ml == pytest.approx(0.5)
    assert [w.code for w in preview.warnings] == ["boxed_warning_baclofen"]
    assert "Baclofen withdrawal (boxed warning)" in preview.warnings[0].message
    story = Story().add("2025-01-06", fill)
    (item,) = [i for i in forecast_device(story.history, SETTINGS, CATALOGUE).items if i.code == "refill"]
    assert "Baclofen withdrawal (boxed warning)" in item.why and "alarm awareness" in item.why
    # A morphine pump carries no such warning.
    morphine = Story().add("2025-01-06", refill(simple_program(2.0)))
    (item,) = [i for i in forecast_device(morphine.history, SETTINGS, CATALOGUE).items if i.code == "refill"]
    assert "boxed warning" not in item.why


# ---------------------------------------------------------------- absurd values (issue 19)


def test_hydromorphone_at_1000_mg_per_ml_and_1000_mg_per_day_is_implausible():
    hm = CATALOGUE.drug("hydromorphone")
    # Highest concentration known 15 mg/mL × 4 = 60 mg/mL; highest dose 25 mg/day × 4 = 100 mg/day.
    at = PumpProgram.model_validate({"mode": "simple_continuous", "dose_mg_per_day": 100.0,
                                     "drugs": [{"drug": "hydromorphone", "concentration_mg_per_ml": 60.0}]})
    assert implausible_values(at, {"hydromorphone": hm}, SETTINGS) == []
    absurd = PumpProgram.model_validate({"mode": "simple_continuous", "dose_mg_per_day": 1000.0,
                                         "drugs": [{"drug": "hydromorphone", "concentration_mg_per_ml": 1000.0}]})
    found = {f: (v, m) for f, v, m in implausible_values(absurd, {"hydromorphone": hm}, SETTINGS)}
    assert set(found) == {"drugs.0.concentration_mg_per_ml", "dose_mg_per_day"}
    assert "1000 mg/mL is more than 4 × the highest concentration devicelog knows for it (15 mg/mL)" in found["drugs.0.concentration_mg_per_ml"][1]
    assert "(25 mg/day)" in found["dose_mg_per_day"][1]
    # The factor is a setting: at 2 ×, 60 mg/mL (> 30) is refused.
    assert implausible_values(at, {"hydromorphone": hm}, Settings(implausible_factor=2)) != []


def test_an_absurd_dose_is_refused_at_a_visit_by_field_and_value_whatever_the_override(clinic):
    data = service_refill(program=PumpProgram.model_validate({
        "mode": "simple_continuous", "dose_mg_per_day": 1000.0, "drugs": [{"drug": "hydromorphone", "concentration_mg_per_ml": 1000.0}]}))
    problems = refused(clinic, lambda: record(clinic, EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 10, 1), author="rn", data=data)))
    assert problems["data.program.drugs.0.concentration_mg_per_ml"][0] == 1000.0
    assert problems["data.program.dose_mg_per_day"][0] == 1000.0


def test_an_absurd_concentration_is_refused_on_import_by_path_and_value(engine):
    doc = document()
    doc["events"][1]["data"]["program"]["drugs"][0] = {"drug": "morphine", "concentration_mg_per_ml": 1000.0}
    problems = refusals(engine, doc)  # and the database unchanged
    assert "$.events[1].data.program.drugs[0].concentration_mg_per_ml" in problems, problems
    value, message = problems["$.events[1].data.program.drugs[0].concentration_mg_per_ml"]
    assert value == 1000.0 and "more than 4 × the highest concentration devicelog knows for it (25 mg/mL)" in message


# ---------------------------------------------------------------- overriding a soft limit


def _morphine(dose: float, conc: float = 10.0, **over):
    return service_refill(program=PumpProgram.model_validate({
        "mode": "simple_continuous", "dose_mg_per_day": dose, "drugs": [{"drug": "morphine", "concentration_mg_per_ml": conc}]}), **over)


def test_a_soft_limit_is_saved_only_with_an_override_and_shows_in_the_history(clinic):
    on = dt.date(2026, 10, 1)
    # 16 mg/day: above the PACC 15 mg/day (soft).
    problems = refused(clinic, lambda: record(clinic, EventIn(device_serial="NGP100", occurred_on=on, author="rn", data=_morphine(16.0))))
    assert "soft limit exceeded" in problems["data.limit_override"][1] and "PACC 2017" in problems["data.limit_override"][1]
    # The form's way: the reason typed, every soft limit of the preview named.
    with read_session(clinic) as s:
        history = queries.history_by_serial(s, "NGP100")
    warnings = dose_warnings(history, _morphine(16.0).program, on, SETTINGS, CATALOGUE)
    data = forms.with_limit_override(_morphine(16.0), "pain crisis, palliative team agreed", warnings)
    event_id = record(clinic, EventIn(device_serial="NGP100", occurred_on=on, author="rn", data=data))
    with read_session(clinic) as s:
        row = s.get(tables.EventRow, event_id)
        audited = [a for a in s.exec(select(tables.AuditEntry)).all() if a.action == "record refill"]
        history = queries.history_by_serial(s, "NGP100")
    stored = row.data["limit_override"]
    assert stored["reason"] == "pain crisis, palliative team agreed"
    assert [lim["code"] for lim in stored["limits"]] == ["limit_morphine_max_dose_pacc-2017"]
    assert "pain crisis, palliative team agreed" in audited[-1].payload
    line = summarize(history.events[-1], SETTINGS, {d.code: d for d in CATALOGUE.drugs})
    assert "SOFT LIMIT OVERRIDDEN (pain crisis, palliative team agreed): Morphine (Infumorph) 16 mg/day" in line
    # The device's warning stays, saying it was dealt with.
    (w,) = [w for w in forecast_device(history, SETTINGS, CATALOGUE).warnings if w.code.startswith("limit_")]
    assert "overridden on 2026-10-01 by rn: pain crisis, palliative team agreed" in w.message


def test_an_override_of_a_limit_not_exceeded_is_refused(clinic):
    exceeded = dose_warnings(Story().history, _morphine(16.0).program, d("2026-10-01"), SETTINGS, CATALOGUE)
    data = forms.with_limit_override(_morphine(10.0), "habit", exceeded)  # 10 mg/day exceeds nothing
    problems = refused(clinic, lambda: record(clinic, EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 10, 1), author="rn", data=data)))
    assert "does not exceed: limit_morphine_max_dose_pacc-2017" in problems["data.limit_override"][1]


def test_a_hard_limit_cannot_be_overridden(clinic):
    # Ziconotide 22 mcg/day = 0.022 mg/day in an EU clinic: above 21.6 mcg/day (hard).
    zic = service_refill(program=PumpProgram.model_validate({
        "mode": "simple_continuous", "dose_mg_per_day": 0.022, "drugs": [{"drug": "ziconotide", "concentration_mg_per_ml": 0.025}]}))
    warnings = dose_warnings(Story().history, zic.program, d("2026-10-01"), SETTINGS, CATALOGUE)
    assert forms.with_limit_override(zic, "please", warnings) == zic  # nothing soft to override
    problems = refused(clinic, lambda: record(clinic, EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 10, 1), author="rn", data=zic)))
    assert "21.6 mcg/day (hard, EU" in problems["data.program.dose_mg_per_day"][1]


# ---------------------------------------------------------------- a clinic's catalogue


def _tightened_morphine() -> dict:
    entry = CATALOGUE.drug("morphine").model_dump(mode="json")
    for lim in entry["limits"]:
        if lim["ref"] == "pacc-2017" and lim["kind"] == "max_dose":
            lim["value"] = 12.0
    entry["limits"].append({"kind": "max_dose", "value": 30.0, "severity": "hard", "ref": "clinic-formulary",
                            "source": "St Elsewhere formulary 2026"})
    return entry


def test_a_clinic_tightens_and_adds_limits_by_import_and_the_export_carries_them(engine, other_engine):
    doc = document()
    doc["catalogue"]["drugs"].append(_tightened_morphine())
    do_import(engine, doc)
    with read_session(engine) as s:
        morphine = queries.drugs_by_code(s)["morphine"]
        audited = [a for a in s.exec(select(tables.AuditEntry)).all() if '"drug"' in a.payload and "clinic-formulary" in a.payload]
    settings = Settings()
    # 13 mg/day: above the clinic's 12 mg/day; 31 mg/day: above its hard 30 mg/day.
    assert codes(dose_checks(morphine, 13.0, settings)) == {"limit_morphine_max_dose_pacc-2017": "warn"}
    assert codes(dose_checks(morphine, 31.0, settings))["limit_morphine_max_dose_clinic-formulary"] == "block"
    assert audited, "the tightening is audited"
    # The due table was recomputed with the tightened catalogue in the same transaction.
    from devicelog.store import forecasts

    with engine.connect() as conn:
        assert forecasts.staleness(conn) is None
    first = transfer.export_text(engine)
    exported = {d["code"]: d for d in json.loads(first)["catalogue"]["drugs"]}
    assert {lim["ref"] for lim in exported["morphine"]["limits"]} >= {"clinic-formulary"}
    transfer.import_text(other_engine, first, author="someone-else", today=dt.date(2026, 11, 23))
    assert transfer.export_text(other_engine) == first


def test_a_clinic_cannot_loosen_or_drop_a_limit_by_import(engine):
    looser = CATALOGUE.drug("morphine").model_dump(mode="json")
    looser["limits"][0]["value"] = 40.0  # PACC 20 mg/mL → 40 mg/mL
    doc = document()
    doc["catalogue"]["drugs"].append(looser)
    assert "loosens the limit max_concentration pacc-2017" in refusals(engine, doc)["$.catalogue.drugs[1].code"][1]
    dropped = CATALOGUE.drug("morphine").model_dump(mode="json")
    dropped["limits"] = dropped["limits"][1:]
    doc = document()
    doc["catalogue"]["drugs"].append(dropped)
    assert "drops the limit max_concentration pacc-2017" in refusals(engine, doc)["$.catalogue.drugs[1].code"][1]


def test_settings_still_read_the_earlier_region_name():
    assert Settings.model_validate({"ziconotide_region": "US"}).region == "US"
    with pytest.raises(ValueError):
        Settings.model_validate({"ziconotide_region": "US", "region": "EU"})


def test_the_round_trip_carries_an_override(engine, other_engine):
    doc = document()
    override = {"reason": "agreed with pain team", "limits": [{"code": "limit_morphine_max_dose_pacc-2017", "limit": "as shown"}]}
    doc["events"][1]["data"] = doc_refill(limit_override=override)
    do_import(engine, doc)
    first = transfer.export_text(engine)
    assert json.loads(first)["events"][1]["data"]["limit_override"] == override
    transfer.import_text(other_engine, first, author="someone-else", today=dt.date(2026, 11, 23))
    assert transfer.export_text(other_engine) == first


def test_a_limit_override_is_refused_with_a_bad_code_or_no_reason(engine):
    doc = document()
    doc["events"][1]["data"] = doc_refill(limit_override={"reason": "", "limits": [{"code": "rm -rf", "limit": "x"}]})
    problems = refusals(engine, doc)
    assert "$.events[1].data.limit_override.reason" in problems
    assert "$.events[1].data.limit_override.limits[0].code" in problems or "$.events[1].data.limit_override.limits.0.code" in problems


def test_a_clinics_hard_concentration_limit_is_refused_at_the_concentration_field(clinic):
    # The clinic's hard 12 mg/mL hydromorphone maximum (tighter than PACC 15 mg/mL, added by import).
    entry = CATALOGUE.drug("hydromorphone").model_dump(mode="json")
    entry["limits"].append({"kind": "max_concentration", "value": 12.0, "severity": "hard", "ref": "clinic", "source": "formulary"})
    with write_session(clinic) as s:
        transfer.import_document(s, {"format": "devicelog", "version": 1, "catalogue": {"drugs": [entry]},
                                     "patients": [], "devices": [], "events": []}, author="pharmacist", today=dt.date(2026, 11, 23))
    data = service_refill(program=PumpProgram.model_validate({
        "mode": "simple_continuous", "dose_mg_per_day": 2.0, "drugs": [{"drug": "hydromorphone", "concentration_mg_per_ml": 13.0}]}))
    problems = refused(clinic, lambda: record(clinic, EventIn(device_serial="NGP100", occurred_on=dt.date(2026, 10, 1), author="rn", data=data)))
    value, message = problems["data.program.drugs.0.concentration_mg_per_ml"]
    assert value == 13.0 and "maximum concentration 12 mg/mL (hard; source: formulary): refused" in message


def test_a_tightened_limit_reaches_the_stored_warnings_of_every_device(engine):
    # The document's pump NGP2: morphine 10 mg/mL at 2 mg/day.  Tightening the PACC
    # maximum daily dose from 15 to 1.5 mg/day puts 2 mg/day above it: the stored
    # warnings (due list) say so at once, without a rebuild.
    from devicelog.store import forecasts

    do_import(engine, document())
    entry = CATALOGUE.drug("morphine").model_dump(mode="json")
    for lim in entry["limits"]:
        if lim["ref"] == "pacc-2017" and lim["kind"] == "max_dose":
            lim["value"] = 1.5
    do_import(engine, {"format": "devicelog", "version": 1, "catalogue": {"drugs": [entry]},
                       "patients": [], "devices": [], "events": []})
    with engine.connect() as conn:
        assert forecasts.staleness(conn) is None
        notes = [r.message for r in conn.execute(select(forecasts.device_note)).all()]
    assert any("Morphine (Infumorph) 2 mg/day is above the maximum daily dose 1.5 mg/day" in m for m in notes), notes


async def test_tui_refill_above_a_soft_limit_shows_it_needs_a_reason_and_saves_the_override(engine):
    """By keyboard: NGP100 (morphine 10 mg/mL at 2 mg/day, filled 2026-10-01) refilled on
    2026-11-23 at 16 mg/day: the preview names the PACC 15 mg/day limit and its source;
    saving without a reason is refused at the override field; with one it saves."""
    from devicelog.tui.screens.visit import VisitScreen
    from tests.test_tui import events, make, open_device, seed_clinic, settle, type_into

    seed_clinic(engine)
    app = make(engine)
    async with app.run_test(size=(100, 32)) as pilot:
        await open_device(pilot, "NGP100")
        await pilot.press("r")
        await settle(pilot)
        form = app.screen
        # Expected residual 20 mL − 53 days × 0.2 mL/day = 9.4 mL: 9.4 withdrawn, no flag.
        await pilot.press(*"9.4")
        await type_into(pilot, form.rows["program.dose_mg_per_day"], "16")
        await settle(pilot)
        preview = str(form.query_one("#preview").render())
        assert "SOFT LIMIT (rule 7): Morphine (Infumorph) 16 mg/day is above the maximum daily dose 15 mg/day" in preview
        assert "PACC 2017" in preview and "to save, type a Soft-limit override reason" in preview
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, VisitScreen)
        assert "give a reason to override it" in str(form.rows["limit_override_reason"].query_one(".problem").render())
        await type_into(pilot, form.rows["limit_override_reason"], "pain crisis, agreed")
        await settle(pilot)
        preview = str(form.query_one("#preview").render())
        assert "OVERRIDDEN SOFT LIMIT" in preview and "override reason: pain crisis, agreed" in preview
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, VisitScreen)
    new = [r for r in events(engine, "NGP100") if r.kind == "refill"][-1]
    assert new.data["program"]["dose_mg_per_day"] == 16.0 and new.author == "nurse"
    assert new.data["limit_override"]["reason"] == "pain crisis, agreed"
    assert [lim["code"] for lim in new.data["limit_override"]["limits"]] == ["limit_morphine_max_dose_pacc-2017"]
