"""``devicelog due`` end to end on the demo clinic at a fixed as-of date, every format."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from icalendar import Calendar
from sqlmodel import select

from devicelog import cli, demo
from devicelog.clinic.catalogue import shipped_catalogue
from devicelog.reports.due import FIELDS
from devicelog.reports.due_ics import base_uid
from devicelog.store import tables
from devicelog.store.db import read_session
from tests.test_due_clinic import AS_OF
from tests.test_due_pdf import assert_items_in_order, flat, pdf_text
from tests.test_due_reports import _Rows

FORMATS = ("text", "csv", "json", "pdf", "ics", "html")


@pytest.fixture
def demo_db(engine):
    demo.build(engine, patients=60, seed=7, as_of=AS_OF)
    return engine


def url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def due(engine, *args, capsys=None):
    code = cli.main(["--db", url(engine), "due", "--as-of", AS_OF.isoformat(), *args])
    assert code == 0
    return capsys.readouterr() if capsys else None


def export(engine, tmp_path, fmt, *args) -> bytes:
    out = tmp_path / f"due-{fmt}-{'-'.join(a.strip('-') for a in args)}.{fmt}"
    due(engine, "--format", fmt, "-o", str(out), *args)
    return out.read_bytes()


def test_every_format_lists_the_same_items_in_the_same_order(demo_db, tmp_path, capsys):
    doc = json.loads(export(demo_db, tmp_path, "json", "--within", "21"))
    items = doc["items"]
    assert doc["as_of"] == "2026-11-23" and doc["until"] == "2026-12-14"
    assert items, "the demo clinic has items due in three weeks"
    statuses = [i["status"] for i in items]
    assert statuses == sorted(statuses, key=["overdue", "due", "upcoming"].index)
    not_overdue = [i["due_on"] for i in items if i["status"] != "overdue"]
    assert not_overdue == sorted(not_overdue) and max(not_overdue) <= "2026-12-14"
    assert all(i["why"] for i in items)

    rows = list(csv.DictReader(io.StringIO(export(demo_db, tmp_path, "csv", "--within", "21").decode("utf-8-sig"))))
    assert rows == [{k: "" if v is None else str(v) for k, v in i.items()} for i in items]

    parser = _Rows()
    parser.feed(export(demo_db, tmp_path, "html", "--within", "21").decode("utf-8"))
    assert [r["data-item-key"] for r in parser.rows] == [i["item_key"] for i in items]
    assert [c["why"] for c in parser.cells] == [i["why"] for i in items]

    reader, text = pdf_text(export(demo_db, tmp_path, "pdf", "--within", "21", "--page-size", "Letter"))
    assert round(float(reader.pages[0].mediabox.width)) == 612

    assert_items_in_order(text, [(i["device_serial"], i["what"], i["due_on"]) for i in items])
    assert f"page {len(reader.pages)} of {len(reader.pages)}" in text

    cal = Calendar.from_ical(export(demo_db, tmp_path, "ics", "--within", "21"))
    evs = list(cal.walk("VEVENT"))
    assert [(e["dtstart"].dt.isoformat(), str(e["summary"])) for e in evs] == [
        (i["due_on"], f"{i['what']}: {i['patient_name']} ({i['patient_mrn']})") for i in items
    ]
    assert len({str(e["uid"]) for e in evs}) == len(evs)

    capsys.readouterr()
    due(demo_db, "--within", "21")
    out = capsys.readouterr().out
    assert "\x1b[" not in out and max(len(line) for line in out.splitlines()) <= 80
    assert f"{len(items)} items listed, {statuses.count('overdue')} overdue." in flat(out)
    for i in items:
        assert i["patient_mrn"] in out


def test_suppressed_items_are_counted_in_every_format_with_a_foot(demo_db, tmp_path, capsys):
    doc = json.loads(export(demo_db, tmp_path, "json"))
    with read_session(demo_db) as s:
        patients = {p.mrn: p for p in s.exec(select(tables.Patient)).all()}
    assert doc["suppressed_count"] == len(doc["suppressed"]) > 0
    assert doc["suppressed_count"] == sum(r["count"] for r in doc["suppressed_by_reason"])
    for sup in doc["suppressed"]:
        p = patients[sup["patient_mrn"]]
        assert p.goals_of_care != "active_treatment" or p.status == "deceased" or p.died_on
    n = doc["suppressed_count"]
    foot = f"{n} item{'s' if n != 1 else ''} suppressed by goals of care (rule 24)"
    assert foot in flat(export(demo_db, tmp_path, "text").decode())
    assert foot in export(demo_db, tmp_path, "html").decode()
    assert foot in flat(pdf_text(export(demo_db, tmp_path, "pdf"))[1])
    capsys.readouterr()
    export(demo_db, tmp_path, "csv")
    assert foot in capsys.readouterr().err  # csv has no foot: said on stderr


def test_explanted_and_replaced_devices_list_only_what_the_explant_requires(demo_db, tmp_path):
    with read_session(demo_db) as s:
        ended = {d.serial: d.status for d in s.exec(select(tables.Device)).all() if d.status in ("explanted", "replaced")}
    assert ended, "the demo clinic has an explant and a replacement"
    doc = json.loads(export(demo_db, tmp_path, "json"))
    for item in doc["items"]:
        if item["device_serial"] in ended:
            assert re.fullmatch(r"wound_check_day_\d+|wound_escalation", item["code"]), item


def test_kind_filter_accepts_short_names_and_repeats(demo_db, tmp_path):
    pumps = json.loads(export(demo_db, tmp_path, "json", "--kind", "pump"))
    assert pumps["kinds"] == ["intrathecal_pump"]
    assert {i["device_kind"] for i in pumps["items"]} == {"intrathecal_pump"}
    stims = json.loads(export(demo_db, tmp_path, "json", "--kind", "scs", "--kind", "pns", "--kind", "drg"))
    assert {i["device_kind"] for i in stims["items"]} <= {
        "spinal_cord_stimulator", "peripheral_nerve_stimulator", "drg_stimulator"
    }
    everything = json.loads(export(demo_db, tmp_path, "json"))
    assert pumps["count"] + stims["count"] == everything["count"]


def test_redact_leaves_no_name_mrn_or_drug_name_in_any_format(demo_db, tmp_path):
    with read_session(demo_db) as s:
        people = [(p.name, p.mrn) for p in s.exec(select(tables.Patient)).all()]
    drug_words = {w.lower() for d in shipped_catalogue().drugs for w in re.findall(r"[A-Za-z]{4,}", d.name)}
    for fmt in FORMATS:
        data = export(demo_db, tmp_path, fmt, "--redact", "--within", "60")
        body = flat(pdf_text(data)[1]) if fmt == "pdf" else data.decode("utf-8-sig")
        if fmt == "ics":
            body = re.sub(r"\r\n[ \t]", "", body).replace("\\n", " ").replace("\\,", ",").replace("\\;", ";")
        low = body.lower()
        for name, mrn in people:
            assert name.lower() not in low, (fmt, name)
            assert mrn.lower() not in low, (fmt, mrn)
        for word in drug_words:
            assert not re.search(rf"\b{word}\b", low), (fmt, word)
        assert "…0" in body, fmt  # MRN tails are there


def test_a_second_ics_export_after_a_new_event_keeps_the_uids(demo_db, tmp_path):
    from devicelog import services
    from devicelog.clinic.records import EventIn, WoundCheckData
    from devicelog.store.db import write_session

    first_doc = json.loads(export(demo_db, tmp_path, "json"))
    first = {str(e["uid"]) for e in Calendar.from_ical(export(demo_db, tmp_path, "ics")).walk("VEVENT")}
    wound = next(i for i in first_doc["items"] if i["code"].startswith("wound_check_day_"))
    with write_session(demo_db) as s:
        services.record_event(
            session=s,
            event=EventIn(device_serial=wound["device_serial"], occurred_on=AS_OF, author="rn", data=WoundCheckData()),
            today=AS_OF,
        )
    second_doc = json.loads(export(demo_db, tmp_path, "json"))
    second_cal = Calendar.from_ical(export(demo_db, tmp_path, "ics"))
    second = {str(e["uid"]) for e in second_cal.walk("VEVENT")}
    assert len(second) == second_doc["count"]
    # Every task on both lists has the same UID in both files.
    key = lambda i: (i["device_serial"], i["code"])  # noqa: E731
    both = {key(i) for i in first_doc["items"]} & {key(i) for i in second_doc["items"]}
    singles = [k for k in both if sum(1 for i in second_doc["items"] if key(i) == k) == 1]
    assert singles
    for serial, code in singles:
        uid = base_uid(serial, code)
        assert uid in first and uid in second


@pytest.mark.parametrize(
    "args, message",
    [
        (["--within", "-3"], "argument --within: -3 is not a number of days from 0 to 3660"),
        (["--within", "soon"], "argument --within: 'soon' is not a whole number of days"),
        (["--as-of", "2026-13-01"], "argument --as-of: '2026-13-01' is not a date (use YYYY-MM-DD)"),
        (["--kind", "pmp"], "argument --kind: unknown device kind 'pmp'"),
        (["--format", "docx"], "argument --format: invalid choice: 'docx'"),
    ],
)
def test_bad_range_date_or_kind_is_refused_with_exit_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        cli.main(["--db", str(tmp_path / "none.db"), "due", *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_empty_range_in_every_format(engine, tmp_path, capsys):
    for fmt in ("text", "html"):
        assert "Nothing overdue, and nothing due between 2026-11-23 and 2026-11-30." in export(
            engine, tmp_path, fmt, "--within", "7"
        ).decode()
    assert "Nothing overdue, and nothing due between 2026-11-23 and 2026-11-30." in flat(
        pdf_text(export(engine, tmp_path, "pdf", "--within", "7"))[1]
    )
    assert json.loads(export(engine, tmp_path, "json", "--within", "7"))["items"] == []
    assert export(engine, tmp_path, "csv", "--within", "7").decode("utf-8-sig").strip() == ",".join(FIELDS)


def test_a_pdf_over_the_page_limit_is_refused_with_one_line_and_no_file(demo_db, tmp_path, capsys):
    """The demo clinic's whole list takes more than one page: with due_pdf_max_pages = 1
    the command says so in one line pointing to csv or html, exits 2 and writes nothing."""
    settings = tmp_path / "settings.toml"
    settings.write_text("due_pdf_max_pages = 1\n", encoding="utf-8")
    target = tmp_path / "due.pdf"
    code = cli.main(
        ["--db", url(demo_db), "--settings", str(settings), "due", "--as-of", AS_OF.isoformat(), "--format", "pdf", "-o", str(target)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert not target.exists() and not any(p.name.startswith("due.pdf") for p in tmp_path.iterdir())
    assert err.count("\n") == 1 and "more than 1 PDF pages" in err and "csv or html" in err
    assert "Traceback" not in err
