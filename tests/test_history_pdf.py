"""The history PDF and the ``devicelog history`` command, read back as a person would."""

import io
import json

import pytest


from devicelog.cli import main
from devicelog.reports.fonts import BOLD, REGULAR, find_font, register, unicode_fonts
from devicelog.reports.history_pdf import render_pdf
from tests.conftest import user_args
from tests.test_history import make_clinic, report


@pytest.fixture
def clinic(engine):
    make_clinic(engine)
    return engine


def pdf_text(data: bytes) -> tuple[list[str], object]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return [page.extract_text() for page in reader.pages], reader


def test_fonts_are_shipped_not_downloaded():
    fonts = unicode_fonts()
    assert "devicelog" in str(fonts.regular) and fonts.regular.name == REGULAR
    assert fonts.bold.name == BOLD and find_font(BOLD).stat().st_size > 100_000


def test_register_twice_is_harmless():
    from fpdf import FPDF

    pdf = FPDF()
    assert register(pdf) == register(pdf) == "DejaVu"


def test_pdf_text_units_symbols_and_page_numbers(clinic):
    data = render_pdf(report(clinic, "NGP200", whole=True), page_size="A4")
    pages, reader = pdf_text(data)
    text = " ".join(" ".join(pages).split())  # lines wrap inside table cells
    n = len(pages)
    assert n >= 2
    for i, page in enumerate(pages, start=1):
        assert f"page {i} of {n}" in page
        assert "Device history — Ann Lee (MRN MRN001)" in page
    assert "210 µs" in text and "300 µs" in text
    assert "4500 Ω open (> 4000 Ω)" in text and "180 Ω short (< 250 Ω)" in text
    assert "-1.30" in text and "FLAG: over-delivery, leak" in text
    assert "3 consecutive refills less than expected" in text
    assert "REFERENCE ONLY, NOT FOR DOSING" in text
    assert "transposed digits" in text and "wrong patient" in text
    assert "2029-09-12" in text  # projected ERI of SCS300, worked by hand in test_history
    width, height = float(reader.pages[0].mediabox.width), float(reader.pages[0].mediabox.height)
    assert (round(width), round(height)) == (595, 842)


def test_letter_page_size(clinic):
    _, reader = pdf_text(render_pdf(report(clinic), page_size="Letter"))
    assert (round(float(reader.pages[0].mediabox.width)), round(float(reader.pages[0].mediabox.height))) == (612, 792)


def test_unknown_page_size_is_refused(clinic):
    with pytest.raises(ValueError, match="Legal"):
        render_pdf(report(clinic), page_size="Legal")


def test_pdf_timeline_filter(clinic):
    pages, _ = pdf_text(render_pdf(report(clinic), kinds=["interrogation"]))
    timeline = " ".join(" ".join(pages).split()).split("Timeline (")[1]
    assert timeline.startswith("1 events, kinds: interrogation")
    assert "battery ERI" in timeline and "withdrawn 13.6 mL" not in timeline


def test_same_report_same_bytes(clinic):
    r = report(clinic)
    assert render_pdf(r) == render_pdf(r)


# ------------------------------------------------------------------ the command


def run(db_url, *args):
    return main(["--db", db_url, *user_args("tester"), "history", *args, "--as-of", "2026-11-23"])


def test_command_text(clinic, db_url, capsys):
    assert run(db_url, "NGP100") == 0
    out = capsys.readouterr().out
    assert "REFILL LEDGER — NGP100" in out and "-1.30" in out


def test_command_json_with_kind_filter(clinic, db_url, tmp_path, capsys):
    target = tmp_path / "h.json"
    assert run(db_url, "SCS300", "--patient", "--format", "json", "--kind", "outcome", "-o", str(target)) == 0
    data = json.loads(target.read_text(encoding="utf-8"))
    assert {e["kind"] for e in data["timeline"]} == {"outcome"} and len(data["timeline"]) == 3
    assert [d["serial"] for d in data["devices"]] == ["NGP100", "SCS300", "NGP200"]
    assert "3 events written" in capsys.readouterr().err


def test_command_pdf_letter_from_settings(clinic, db_url, tmp_path):
    settings = tmp_path / "s.toml"
    settings.write_text('page_size = "Letter"\n', encoding="utf-8")
    target = tmp_path / "h.pdf"
    assert main(["--db", db_url, "--settings", str(settings), "history", "NGP100", "--format", "pdf", "-o", str(target)]) == 0
    pages, reader = pdf_text(target.read_bytes())
    assert round(float(reader.pages[0].mediabox.width)) == 612
    assert run(db_url, "NGP100", "--format", "pdf", "--page-size", "A4", "-o", str(target)) == 0
    _, reader = pdf_text(target.read_bytes())
    assert round(float(reader.pages[0].mediabox.width)) == 595


def test_command_unknown_serial(clinic, db_url, capsys):
    assert run(db_url, "NOPE") == 1
    assert "serial = 'NOPE'" in capsys.readouterr().err
