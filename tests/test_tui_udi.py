"""Reading a scanned GS1 UDI (rule 25, reference section 7)."""

import datetime as dt

import pytest

from devicelog.clinic.udi import UdiError, parse_udi

EXAMPLE = "(01)09504000059118(17)141120(10)7654321D(21)10987654d321"


def test_reference_example_in_bracketed_form():
    udi = parse_udi(EXAMPLE)
    assert udi.device_identifier == "09504000059118"
    assert udi.expiry == dt.date(2014, 11, 20)
    assert udi.lot == "7654321D"
    assert udi.serial == "10987654d321"
    assert udi.raw == EXAMPLE


def test_expiry_day_00_is_the_last_day_of_the_month():
    # GS1: day "00" means the last day of the month; February 2024 has 29 days.
    udi = parse_udi("(01)09504000059118(17)240200(21)S1")
    assert udi.expiry == dt.date(2024, 2, 29)


def test_raw_scanner_form_with_group_separator_and_symbology_prefix():
    raw = "]d2" + "0109504000059118" + "17141120" + "107654321D\x1d" + "2110987654d321"
    udi = parse_udi(raw)
    assert (udi.device_identifier, udi.lot, udi.serial, udi.expiry) == (
        "09504000059118", "7654321D", "10987654d321", dt.date(2014, 11, 20)
    )


@pytest.mark.parametrize("stand_in", ["\u241d", "<GS>", "^]"])
def test_visible_stand_ins_for_the_group_separator(stand_in):
    raw = "0109504000059118" + "107654321D" + stand_in + "2110987654d321" + stand_in + "11230115"
    udi = parse_udi(raw)
    assert udi.lot == "7654321D" and udi.serial == "10987654d321"
    assert udi.manufactured == dt.date(2023, 1, 15)
    assert "\x1d" in udi.raw and stand_in not in udi.raw


def test_wrong_gtin_check_digit_is_refused_with_the_digits():
    # By hand, digits 0950400005911 weighted 3,1,3,… from the right: 3+1+27+5+0+0+0+0+12+0+15+9+0
    # = 72, so the check digit is (10 - 72 mod 10) mod 10 = 8, not 9.
    with pytest.raises(UdiError) as info:
        parse_udi("(01)09504000059119(17)141120")
    message = str(info.value)
    assert "check digit" in message and "09504000059119" in message and "8" in message


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("(17)141120(21)X", "no device identifier"),
        ("(01)0950400005911", "not a GS1 UDI"),
        ("hello", "not a GS1 UDI"),
        ("(17)141399(01)09504000059118", "not a GS1 UDI"),
    ],
)
def test_bad_text_is_refused_with_a_reason(text, words):
    with pytest.raises(UdiError) as info:
        parse_udi(text)
    assert words in str(info.value)


def test_udi_module_does_not_import_biip_until_used():
    import subprocess
    import sys

    code = "import sys, devicelog.clinic.udi; print('biip' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
