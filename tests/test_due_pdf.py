"""The printable due list: text read back with pypdf, page sizes, fonts, printing."""

from __future__ import annotations

import datetime as dt
import re
import shlex
import sys
from dataclasses import replace
from io import BytesIO

import pytest
from pypdf import PdfReader

from devicelog.clinic.catalogue import shipped_catalogue
from devicelog.reports.due_pdf import group_title, print_due_pdf, render_pdf
from devicelog.reports.redact import redact_due_list
from devicelog.settings import Settings
from devicelog.store.due import DueEntry, parse_kind
from tests.test_due_clinic import AS_OF, clinic, load  # noqa: F401  (fixture)
from tests.test_due_reports import DRUG_WORDS, MRNS, NAMES


def pdf_text(data: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(BytesIO(data))
    return reader, "\n".join(p.extract_text() for p in reader.pages)


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture
def dl(clinic):  # noqa: F811
    return load(clinic, within_days=90)


def rows_of(items) -> list[tuple[str, str, str]]:
    return [(i.device_serial, i.what, i.due_on.isoformat()) for i in items]


def assert_items_in_order(text: str, rows: list[tuple[str, str, str]]) -> None:
    """Each (serial, what, due date) row is found after the one before it."""
    body = flat(text.split(" items listed,")[0] if " items listed," in text else text)
    pos = 0
    for serial, what, due_on in rows:
        needle = f"SN {serial} {what}"
        found = body.find(needle, pos)
        assert found >= 0, (needle, body[pos : pos + 300])
        # the row's own due date comes just before its patient and device
        assert due_on in body[max(0, found - 200) : found]
        pos = found + len(needle)


def test_every_item_is_printed_in_order_grouped_by_week(dl):
    reader, text = pdf_text(render_pdf(dl))
    assert_items_in_order(text, rows_of(dl.items))
    f = flat(text)
    assert "Device clinic: due list" in f
    assert "as of 2026-11-23 · overdue, and due 2026-11-23 to 2027-02-21" in f
    assert "Week of Mon 23 Nov 2026 to Sun 29 Nov 2026 (2)" in f
    assert "Week of Mon 30 Nov 2026 to Sun 6 Dec 2026 (2)" in f
    for name, mrn in zip(NAMES, MRNS):
        assert name in f and mrn in f
    assert "1 item suppressed by goals of care (rule 24), not listed: 1 × elective item suppressed (hospice)." in f
    n = len(reader.pages)
    assert n >= 2
    for k, page in enumerate(reader.pages, start=1):
        assert f"page {k} of {n}" in page.extract_text()


def test_page_sizes(dl):
    a4 = PdfReader(BytesIO(render_pdf(dl, page_size="A4"))).pages[0].mediabox
    letter = PdfReader(BytesIO(render_pdf(dl, page_size="Letter"))).pages[0].mediabox
    assert (round(float(a4.width)), round(float(a4.height))) == (595, 842)
    assert (round(float(letter.width)), round(float(letter.height))) == (612, 792)


def test_group_by_day_and_overdue_first(clinic):  # noqa: F811
    dl = load(clinic, as_of=dt.date(2026, 12, 7), within_days=7)
    _, text = pdf_text(render_pdf(dl, group="day"))
    f = flat(text)
    assert f.index("Overdue (4)") < f.index("Thu 10 Dec 2026 (1)") < f.index("Sun 13 Dec 2026 (1)")
    assert_items_in_order(text, rows_of(dl.items))
    assert "overdue by 14 days" in f  # Cara's day-10 check, due 2026-11-23


def test_group_titles():
    from tests.test_due_clinic import D

    class I:
        due_on = D(2026, 11, 29)  # a Sunday: its week starts Monday 23 Nov

    assert group_title(DueEntry(I, "due"), "week") == "Week of Mon 23 Nov 2026 to Sun 29 Nov 2026"
    assert group_title(DueEntry(I, "due"), "day") == "Sun 29 Nov 2026"
    assert group_title(DueEntry(I, "overdue"), "week") == "Overdue"


def test_redacted_pdf_has_no_names_mrns_or_drug_names(dl):
    red = redact_due_list(dl, shipped_catalogue().drugs)
    _, text = pdf_text(render_pdf(red))
    low = flat(text).lower()
    for name in NAMES:
        for part in name.lower().split():
            assert not re.search(rf"\b{part}\b", low), part
    for mrn in MRNS:
        assert mrn.lower() not in low
    for word in DRUG_WORDS:
        assert not re.search(rf"\b{word}\b", low), word
    assert "…0001" in text and "A.L." in text and "REDACTED" in text
    assert_items_in_order(text, rows_of(red.items))


def test_unicode_symbols_print(dl):
    e = dl.entries[0]
    why = "impedance 4,500 Ω ≥ 4,000 Ω open limit; pulse width 300 µs — check leads"
    special = replace(dl, entries=(DueEntry(replace(e.item, why=why), e.status),))
    _, text = pdf_text(render_pdf(special))
    f = flat(text)
    for ch in ("Ω", "≥", "µ", "—"):
        assert ch in f
    assert "4,500 Ω ≥ 4,000 Ω" in f


def test_empty_range_prints_a_page_that_says_so(clinic):  # noqa: F811
    dl = load(clinic, within_days=14, kinds=[parse_kind("drg")])
    reader, text = pdf_text(render_pdf(dl))
    assert len(reader.pages) == 1
    assert "Nothing overdue, and nothing due between 2026-11-23 and 2026-12-07." in flat(text)
    assert "page 1 of 1" in text


def test_print_due_pdf_writes_the_file_and_sends_it_to_the_print_command(clinic, tmp_path):  # noqa: F811
    log = tmp_path / "printed.txt"
    script = tmp_path / "fake_lp.py"
    script.write_text(
        "import sys, pathlib\n"
        f"pathlib.Path({str(log)!r}).write_text(sys.argv[-1])\n"
        "print('request id is clinic-7 (1 file(s))')\n"
    )
    settings = Settings(print_command=f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}", page_size="Letter")
    path, message = print_due_pdf(clinic, settings, AS_OF, 30, [parse_kind("pump")], tmp_path / "out")
    assert path == tmp_path / "out" / "due-2026-11-23-30d.pdf"
    assert log.read_text() == str(path)
    assert message.startswith(f"Due list saved to {path}; sent to the printer")
    assert "request id is clinic-7" in message
    reader, text = pdf_text(path.read_bytes())
    assert round(float(reader.pages[0].mediabox.width)) == 612
    assert "NGP200" in text and "SCS300" not in text  # pumps only


def test_print_due_pdf_without_a_print_command_only_saves(clinic, tmp_path):  # noqa: F811
    path, message = print_due_pdf(clinic, Settings(), AS_OF, None, (), tmp_path, redact=True)
    assert path.name == "due-2026-11-23-all-redacted.pdf"
    assert message == f"Due list saved to {path}"
    assert "Ann Lee" not in pdf_text(path.read_bytes())[1]


def test_print_failure_is_reported_and_the_file_kept(clinic, tmp_path):  # noqa: F811
    path, message = print_due_pdf(clinic, Settings(print_command="false"), AS_OF, 7, (), tmp_path)
    assert path.exists()
    assert "not printed: 'false' failed" in message
    path, message = print_due_pdf(clinic, Settings(print_command="no-such-lp-command-xyz"), AS_OF, 7, (), tmp_path)
    assert "not printed: 'no-such-lp-command-xyz' could not run" in message


def test_wrap_text_keeps_every_word_within_the_width():
    from fpdf import FPDF

    from devicelog.reports import fonts
    from devicelog.reports.due_pdf import wrap_text

    pdf = FPDF()
    family = fonts.register(pdf)
    pdf.set_font(family, "", 8)
    cw = pdf.current_font.cw
    text = "filled to 40.0 mL on 2025-07-11; 1.2 mg/day ÷ 20 mg/mL morphine = 0.060 mL/day\nSN " + "X" * 60 + " ≥ 4,000 Ω"
    room = 30 * pdf.k * 1000 / 8  # a 30 mm column
    lines = wrap_text(text, cw, room)
    assert all(sum(cw[ord(c)] for c in line) <= room for line in lines)
    assert all(pdf.get_string_width(line) <= 30.001 for line in lines)  # fpdf2's own measure agrees
    assert "".join("".join(lines).split()) == "".join(text.split())  # nothing lost or added
    assert lines[0].startswith("filled to") and any(line.startswith("SN") for line in lines)
    assert wrap_text("", cw, room) == [""] and wrap_text("a\n\nb", cw, room) == ["a", "", "b"]


def test_a_long_list_repeats_the_column_headings_on_every_page(dl):
    long = replace(dl, entries=dl.entries * 12)
    reader, text = pdf_text(render_pdf(long))
    assert len(reader.pages) >= 4
    for page in reader.pages:
        assert "Latest" in page.extract_text() and "Why" in page.extract_text()
    assert_items_in_order(text, rows_of([e.item for e in long.entries]))


def test_page_x_of_y_on_every_page_of_a_long_list(dl):
    """fpdf2's page-count alias gives the real count at every foot."""
    reader, _ = pdf_text(render_pdf(replace(dl, entries=dl.entries * 12)))
    n = len(reader.pages)
    assert n >= 4
    for k, page in enumerate(reader.pages, start=1):
        assert page.extract_text().rstrip().endswith(f"page {k} of {n}")
        assert "{page-count}" not in page.extract_text()


def test_a_list_longer_than_the_page_limit_is_refused(dl, tmp_path):
    """The 12-fold list takes 4 or more pages (above): a limit of 3 refuses it, naming
    the limit and pointing to csv or html; a limit at its length prints it."""
    from devicelog.reports.due_pdf import PageLimitExceeded, write_pdf

    long = replace(dl, entries=dl.entries * 12)
    n = len(PdfReader(BytesIO(render_pdf(long))).pages)
    with pytest.raises(PageLimitExceeded) as refused:
        write_pdf(long, tmp_path / "refused.pdf", max_pages=n - 1)
    assert f"more than {n - 1:,} PDF pages" in str(refused.value)
    assert "csv or html" in str(refused.value)
    assert not (tmp_path / "refused.pdf").exists()
    assert len(PdfReader(BytesIO(render_pdf(long, max_pages=n))).pages) == n


def test_the_page_limit_setting_defaults_to_a_30_day_list_of_a_large_clinic():
    # A 30-day list of a 100,000-patient clinic is about 7,900 pages (57,251 items at
    # 7.2 a page: 5,682 items took 786 pages at 10,000 patients); the whole list, about
    # 20,800, is refused.
    assert 7_900 < Settings().due_pdf_max_pages < 20_800
    with pytest.raises(ValueError):
        Settings(due_pdf_max_pages=0)


def test_the_tuis_print_action_refuses_a_list_over_the_page_limit(clinic, tmp_path):  # noqa: F811
    """print_due_pdf (the due view's print key) follows due_pdf_max_pages: nothing
    written, nothing sent to the printer, a message the screen shows as it is."""
    from devicelog.reports.due_pdf import PageLimitExceeded

    log = tmp_path / "printed.txt"
    settings = Settings(due_pdf_max_pages=1, print_command=f"touch {shlex.quote(str(log))}")
    long_list = load(clinic, within_days=365)
    assert len(long_list.entries) > 8  # more than one page of rows
    with pytest.raises(PageLimitExceeded, match="csv or html"):
        print_due_pdf(clinic, settings, AS_OF, 365, (), tmp_path / "out")
    assert not log.exists()
    assert not list((tmp_path / "out").glob("*.pdf"))
