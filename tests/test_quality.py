"""The program quality report (issue 17, section 3): worked examples by hand, the
loader against the full history load, and every format for the demo clinic."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from devicelog import cli, demo
from devicelog.clinic.history import DeviceInfo, PatientInfo
from devicelog.clinic.quality import (
    Period,
    kaplan_meier,
    quality_report,
)
from devicelog.clinic.records import (
    AnalgesicChange,
    Drainage,
    ImplantType,
    OutcomeData,
    ReinterventionData,
    ReinterventionKind,
    TrialEndData,
    TrialStartData,
)
from devicelog.reports import quality as report
from devicelog.store import queries
from devicelog.store.db import read_session
from devicelog.store.quality import quality_histories
from tests.clinic_builders import (
    CATALOGUE,
    SETTINGS,
    Story,
    d,
    refill,
    simple_program,
    wound,
)

DRUGS = {drug.code: drug for drug in CATALOGUE.drugs}
PERIOD = Period(d("2026-01-01"), d("2026-12-31"))


def person(pid: int, name: str = "Ada Test", died_on: dt.date | None = None) -> PatientInfo:
    return PatientInfo(id=pid, mrn=f"MRN-{pid:03d}", name=name, birth_date=d("1950-03-04"), died_on=died_on)


def unit(did: int, model: str, implanted_on: str, implant_type: ImplantType = ImplantType.permanent) -> DeviceInfo:
    return DeviceInfo(id=did, serial=f"SN-{did}", model=CATALOGUE.device_model(model), implanted_on=d(implanted_on), implant_type=implant_type)


def story(pid: int, did: int, model: str = "synchromed-ii-20", implanted_on: str = "2025-06-02", **kw) -> Story:
    return Story(device=unit(did, model, implanted_on, kw.pop("implant_type", ImplantType.permanent)), patient=person(pid, **kw))


def run(*stories: Story, period: Period = PERIOD):
    return quality_report([s.history for s in stories], period=period, settings=SETTINGS, drugs=DRUGS)


# ============================================================== Kaplan-Meier


def test_kaplan_meier_matches_the_hand_computed_table():
    """Six devices: failures at days 30, 90, 90, 200; censored at 60 and 120.

    day  at risk  failed  censored  S(t)
     30     6       1        0      1 × (1 − 1/6)           = 5/6    = 0.8333
     60     5       0        1      unchanged               = 0.8333
     90     4       2        0      5/6 × (1 − 2/4) = 5/12           = 0.4167
    120     2       0        1      unchanged               = 0.4167
    200     1       1        0      5/12 × (1 − 1/1)        = 0
    """
    steps = kaplan_meier([(30, True), (60, False), (90, True), (90, True), (120, False), (200, True)])
    table = [(s.day, s.at_risk, s.events, s.censored, round(s.survival, 4)) for s in steps]
    assert table == [
        (30, 6, 1, 0, 0.8333),
        (60, 5, 0, 1, 0.8333),
        (90, 4, 2, 0, 0.4167),
        (120, 2, 0, 1, 0.4167),
        (200, 1, 1, 0, 0.0),
    ]


def test_kaplan_meier_counts_a_device_censored_on_a_failure_day_as_at_risk():
    """Day 10: one failure and one censoring among 3 at risk: S = 1 − 1/3 = 2/3 (had the
    censored one left first, 1 − 1/2 = 1/2).  Day 20: the last one fails: 0."""
    steps = kaplan_meier([(10, True), (10, False), (20, True)])
    assert [(s.day, s.at_risk, round(s.survival, 4)) for s in steps] == [(10, 3, 0.6667), (20, 1, 0.0)]


def test_survival_is_censored_at_death_and_at_the_period_end():
    """Pump A implanted 2026-01-01, explanted 2026-03-02 (60 days): a failure at 60.
    Pump B implanted 2026-01-01, patient died 2026-04-11 (100 days), explanted after
    death: censored at 100, not a failure.  Pump C implanted 2026-10-02: censored at the
    period end 2026-12-31 = 90 days.  S = 1 − 1/3 = 0.6667 from day 60 on."""
    a = story(1, 1, implanted_on="2026-01-01").add("2026-03-02", ReinterventionData(reintervention=ReinterventionKind.explant, reason="pocket infection"))
    b = story(2, 2, implanted_on="2026-01-01", died_on=d("2026-04-11")).add(
        "2026-04-20", ReinterventionData(reintervention=ReinterventionKind.explant, reason="removed after death")
    )
    c = story(3, 3, implanted_on="2026-10-02")
    (pumps,) = run(a, b, c).survival
    assert (pumps.devices, pumps.events) == (3, 1)
    assert [(s.day, s.events, s.censored) for s in pumps.steps] == [(60, 1, 0), (90, 0, 1), (100, 0, 1)]
    assert round(pumps.survival_at(95), 4) == 0.6667
    assert [m.serial for m in pumps.members] == ["SN-1"]


# ============================================================== refills


def constructed_clinic() -> tuple[Story, Story]:
    """Morphine 10 mg/mL at 1 mg/day = 0.1 mL/day, filled to 20 mL in a 20 mL SynchroMed II:
    low-reservoir alarm after (20 − 2) / 0.1 = 180 days; morphine stability 90 days, so
    the latest safe date of each fill is the fill date + 90 days."""
    program = simple_program(1.0)
    a = story(1, 1)
    a.add("2026-01-05", refill(program, withdrawn_ml=10.0))  # no previous fill in the story: not counted
    # Jan 5 + 90 = Apr 5: done that day, on time.  Expected 20 − 90 × 0.1 = 11.0 mL.
    a.add("2026-04-05", refill(program, withdrawn_ml=11.0))
    # Apr 5 + 90 = Jul 4: done Jul 8, 4 days overdue.  Expected 20 − 94 × 0.1 = 10.6 mL;
    # 8.0 withdrawn: −2.6 mL, beyond the 1.0 mL limit: flagged.
    a.add("2026-07-08", refill(program, withdrawn_ml=8.0))
    b = story(2, 2)
    b.add("2025-12-01", refill(program))  # before the period: the fill the next one is measured against
    # Dec 1 + 90 = Mar 1: done Mar 10, 9 days overdue.  Expected 20 − 99 × 0.1 = 10.1 mL.
    b.add("2026-03-10", refill(program, withdrawn_ml=10.1))
    # Mar 10 + 90 = Jun 8: done May 1, on time.  Expected 20 − 52 × 0.1 = 14.8 mL.
    # Measured 18.0 mL after injecting 20.0: 2.0 mL apart > 0.5 mL tolerance: possible pocket fill.
    b.add("2026-05-01", refill(program, withdrawn_ml=14.8, measured_after_ml=18.0))
    return a, b


def test_on_time_refills_of_a_constructed_clinic():
    """Refills with a previous fill in the period: A Apr 5 (on time), A Jul 8 (4 days),
    B Mar 10 (9 days), B May 1 (on time): 2 / 4 = 50.0 %."""
    q = run(*constructed_clinic())
    assert (q.refill_on_time.numerator, q.refill_on_time.denominator) == (2, 4)
    assert q.refill_on_time.value == pytest.approx(50.0)
    assert sorted((m.serial, m.on) for m in q.refill_on_time.members) == [("SN-1", d("2026-07-08")), ("SN-2", d("2026-03-10"))]
    bands = {f.label.split(": ")[1]: f.numerator for f in q.overdue_bands}
    assert bands == {"on time (0 days)": 2, "1-3 days": 0, "4-7 days": 1, "8-14 days": 1, "15-30 days": 0, "over 30 days": 0}
    assert [(p.month, p.on_time, p.refills) for p in q.monthly_on_time] == [("2026-03", 0, 1), ("2026-04", 1, 1), ("2026-05", 1, 1), ("2026-07", 0, 1)]


def test_discrepancies_and_pocket_fills_per_1000_refills():
    """Flagged discrepancies: 1 (A Jul 8) of the 4 refills with a previous fill:
    1 / 4 × 1,000 = 250 per 1,000.  Possible pocket fills: 1 (B May 1) of the 5 refills
    done in the period (A: 3, B: 2): 1 / 5 × 1,000 = 200 per 1,000."""
    q = run(*constructed_clinic())
    assert (q.discrepancies.numerator, q.discrepancies.denominator, q.discrepancies.value) == (1, 4, 250.0)
    assert (q.pocket_fills.numerator, q.pocket_fills.denominator, q.pocket_fills.value) == (1, 5, 200.0)
    assert q.pocket_fills.members[0].serial == "SN-2"
    assert q.reviews == "reviews: none of 2 flagged refills reviewed"


def test_reviews_of_flagged_refills_and_the_days_they_took():
    """Flagged: A Jul 8 (discrepancy) and B May 1 (pocket fill).  A's is reviewed on
    Jul 11: 3 days.  B's is reviewed on 2027-01-04, after the period: not counted.
    Reviewed 1 / 2 = 50 %; the open one (B) is listed."""
    from devicelog.clinic.records import RefillReviewData, ReviewFinding

    a, b = constructed_clinic()
    a.add("2026-07-11", RefillReviewData(refill_event_id=a.events[2].id, finding=ReviewFinding.no_cause_found))
    b.add("2027-01-04", RefillReviewData(refill_event_id=b.events[2].id, finding=ReviewFinding.pump_interrogated))
    q = run(a, b)
    assert (q.review_figure.numerator, q.review_figure.denominator, q.review_figure.value) == (1, 2, 50.0)
    assert [(m.serial, m.on) for m in q.review_figure.members] == [("SN-2", d("2026-05-01"))]
    assert q.reviews == "reviews: 1 of 2 flagged refills reviewed; days to review: median 3, longest 3"


def test_a_figure_with_nothing_to_divide_by_is_not_zero():
    q = run(story(1, 1, model="abbott-proclaim-xr"))
    assert q.refill_on_time.value is None
    assert q.refill_on_time.shown() == "n/a (0 / 0)"


# ============================================================== wounds, trials, MME


def test_wound_escalations_and_infections_per_100_implants():
    """Three implants in the period.  #1: purulent drainage with S. aureus at day 10:
    an escalation and an infection.  #2: fever exactly 38.0 °C (rule 22 is > 38.0 °C):
    neither.  #3: purulent drainage at day 100, after the 90-day window: neither.
    Escalations 1 / 3 × 100 = 33.3 per 100 implants; infections the same."""
    one = story(1, 1, implanted_on="2026-02-02").add("2026-02-12", wound(drainage=Drainage.purulent, culture_taken=True, organism="S. aureus"))
    two = story(2, 2, implanted_on="2026-03-02").add("2026-03-12", wound(fever_c=38.0))
    three = story(3, 3, implanted_on="2026-04-01").add("2026-07-10", wound(drainage=Drainage.purulent))
    q = run(one, two, three)
    assert (q.wound_escalations.numerator, q.wound_escalations.denominator) == (1, 3)
    assert round(q.wound_escalations.value, 1) == 33.3
    assert (q.infections.numerator, q.infections.denominator) == (1, 3)
    assert q.infections.members[0].note == "culture: S. aureus"


def test_trial_conversion_and_median_mme_change():
    """SCS trials started in the period: patient 1 (permanent SCS implanted after it) and
    patient 2 (none): 1 / 2 = 50 %.  Oral MME: patient 1 120 → 60 mg/day (−60, −50 %),
    patient 2 90 → 90 (0, 0 %): medians −30 mg/day and −25 %."""
    trial_1 = story(1, 1, model="nevro-senza", implanted_on="2026-02-01", implant_type=ImplantType.trial)
    trial_1.add("2026-02-01", TrialStartData(baseline_nrs=8)).add("2026-02-08", TrialEndData(end_nrs=3, analgesics=AnalgesicChange.reduced, patient_satisfied=True))
    trial_1.add("2026-02-01", OutcomeData(pain_nrs=8, oral_mme_mg_per_day=120))
    permanent_1 = story(1, 2, model="nevro-senza", implanted_on="2026-03-01").add("2026-09-01", OutcomeData(pain_nrs=4, oral_mme_mg_per_day=60))
    trial_2 = story(2, 3, model="nevro-senza", implanted_on="2026-05-01", implant_type=ImplantType.trial)
    trial_2.add("2026-05-01", TrialStartData(baseline_nrs=7)).add("2026-05-01", OutcomeData(pain_nrs=7, oral_mme_mg_per_day=90))
    trial_2.add("2026-06-01", OutcomeData(pain_nrs=7, oral_mme_mg_per_day=90))
    q = run(trial_1, permanent_1, trial_2)
    scs = q.trial_conversion[0]
    assert (scs.numerator, scs.denominator, scs.value) == (1, 2, 50.0)
    assert (q.mme_change.value, q.mme_change.count) == (-30.0, 2)
    assert q.mme_change_percent.value == -25.0
    # NRS 8 → 4 is a 50 % reduction (counts for ≥ 30 % and ≥ 50 %); 7 → 7 is none.
    assert (q.nrs_reduction_30.numerator, q.nrs_reduction_50.numerator, q.nrs_reduction_50.denominator) == (1, 1, 2)


# ============================================================== hostile text


def test_database_text_is_escaped_in_html_csv_and_text():
    hostile = "<script>alert(1)</script>\x1b[2J"
    a, b = constructed_clinic()
    a = Story(device=a.device, patient=person(1, name=hostile), events=a.events)
    q = run(a, b)
    page = report.render_html(q)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "\x1b" not in report.render_text(q) and "␛[2J" in report.render_text(q)
    rows = list(csv.reader(io.StringIO(report.render_csv(q))))
    names = [r[10] for r in rows if r[0] == "member" and r[9] == "MRN-001"]
    assert names and all("\x1b" not in n for n in names)
    formula = Story(device=a.device, patient=person(1, name="=HYPERLINK(1)"), events=a.events)
    rows = list(csv.reader(io.StringIO(report.render_csv(run(formula, b)))))
    assert {r[10] for r in rows if r[0] == "member" and r[9] == "MRN-001"} == {"'=HYPERLINK(1)"}


# ============================================================== the store and the command

AS_OF = d("2026-11-23")


@pytest.fixture
def demo_db(engine):
    demo.build(engine, patients=60, seed=7, as_of=AS_OF)
    return engine


def test_the_loader_reads_all_the_report_needs(demo_db):
    """The streaming loader (only the kinds and dates the report reads) gives the same
    report as every device's whole history."""
    period = Period(d("2026-03-01"), AS_OF)
    with read_session(demo_db) as s:
        drugs = queries.drugs_by_code(s)
        lean = quality_report(quality_histories(s, period), period=period, settings=SETTINGS, drugs=drugs)
        full = quality_report(queries.load_histories(s), period=period, settings=SETTINGS, drugs=drugs)
    assert lean.refill_on_time.denominator > 0
    assert report.report_dict(lean) == report.report_dict(full)


def test_every_format_for_the_demo_clinic(demo_db, tmp_path, capsys):
    url = demo_db.url.render_as_string(hide_password=False)
    out = {}
    for fmt in ("text", "json", "csv", "html", "pdf"):
        path = tmp_path / f"quality.{fmt}"
        assert cli.main(["--db", url, "quality", "--to", AS_OF.isoformat(), "--format", fmt, "-o", str(path)]) == 0
        out[fmt] = path.read_bytes()
    doc = json.loads(out["json"])
    on_time = doc["sections"][0]["figures"][0]
    assert on_time["key"] == "refill_on_time" and on_time["denominator"] > 0
    shown = f"({on_time['numerator']} / {on_time['denominator']})"
    assert shown in out["text"].decode()
    rows = list(csv.reader(io.StringIO(out["csv"].decode())))
    assert ["figure", "refill_on_time"] == rows[1][:2] and rows[1][3:5] == [str(on_time["numerator"]), str(on_time["denominator"])]
    page = out["html"].decode()
    assert page.count("<svg") == 2 and "Not yet available" in page
    assert out["pdf"].startswith(b"%PDF")
    from pypdf import PdfReader

    pdf_text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(out["pdf"])).pages)
    assert "Program quality report" in pdf_text and "Kaplan" in pdf_text and "Flagged refills reviewed" in pdf_text
    assert doc["period"] == {"start": "2025-11-24", "end": "2026-11-23"}


def test_the_command_refuses_a_period_that_ends_before_it_starts(demo_db, capsys):
    url = demo_db.url.render_as_string(hide_password=False)
    assert cli.main(["--db", url, "quality", "--from", "2026-06-01", "--to", "2026-01-01"]) == 2
    assert "--from 2026-06-01 is after --to 2026-01-01" in capsys.readouterr().err


def test_kind_filter_keeps_only_that_kind(demo_db, capsys):
    url = demo_db.url.render_as_string(hide_password=False)
    assert cli.main(["--db", url, "quality", "--to", AS_OF.isoformat(), "--kind", "spinal_cord_stimulator", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["kind"] for s in doc["survival"]] == ["spinal_cord_stimulator"]
    assert doc["sections"][0]["figures"][0]["denominator"] == 0


# ============================================================== the screen


async def test_quality_screen_drills_down_with_enter(demo_db):
    from textual.widgets import DataTable

    from devicelog.settings import Settings
    from devicelog.tui.app import make_app

    app = make_app(demo_db, Settings(), AS_OF, "nurse")
    async with app.run_test(size=(120, 50)) as pilot:
        await pilot.press("f6")  # from the main screen, as a clinician would
        for _ in range(6):
            await pilot.pause()
            await app.workers.wait_for_complete()
        screen = app.screen
        figures = screen.query_one("#quality-figures", DataTable)
        assert str(figures.get_row_at(0)[0]) == "Refills done by their latest safe date"
        late = screen.report.refill_on_time
        assert figures.get_row_at(0)[2:] == [str(late.numerator), str(late.denominator)]
        await pilot.press("enter")
        await pilot.pause()
        members = screen.query_one("#quality-members", DataTable)
        assert members.row_count == len(late.members) > 0
        assert str(members.get_row_at(0)[2]) == late.members[0].serial
        assert members.has_focus
        await pilot.press("escape")  # back to the figures, still on the screen
        await pilot.pause()
        assert figures.has_focus and app.screen is screen


def test_an_output_file_that_cannot_be_written_is_a_message_not_a_traceback(demo_db, tmp_path, capsys):
    url = demo_db.url.render_as_string(hide_password=False)
    target = tmp_path / "missing-folder" / "quality.pdf"
    assert cli.main(["--db", url, "quality", "--format", "pdf", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == f"devicelog: cannot write {target}: the folder {target.parent} does not exist\n"
    assert "Traceback" not in err
