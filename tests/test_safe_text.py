"""Text from the database never runs in a terminal or a spreadsheet (issue 19, section 2)."""

from hypothesis import given, strategies as st

from devicelog.reports.safe import csv_cell, visible


def test_escape_sequences_are_shown_not_run():
    # Clear screen, retitle the window, write the clipboard (OSC 52), ring the bell.
    hostile = "Zoe\x1b[2J\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07 Silva"
    shown = visible(hostile)
    assert "\x1b" not in shown and "\x07" not in shown
    assert shown == "Zoe␛[2J␛]0;owned␇␛]52;c;ZXZpbA==␇ Silva"


def test_bidi_override_and_zero_width_are_named():
    assert visible("abc\u202edcba") == "abc<U+202E>dcba"
    assert visible("NGP\u200b000016A") == "NGP<U+200B>000016A"
    assert visible("\x9b31m") == "<U+009B>31m"  # the 8-bit CSI


def test_lines_kept_unless_one_line():
    assert visible("a\nb\tc") == "a\nb\tc"
    assert visible("a\nb\tc\r", one_line=True) == "a␊b␉c␍"


def test_plain_text_is_returned_unchanged():
    name = "O'Brien-Núñez, Zoë — 2.4 µg"
    assert visible(name) is name


def test_formulas_are_neutralised():
    assert csv_cell('=HYPERLINK("http://x","y")') == "'=HYPERLINK(\"http://x\",\"y\")"
    assert csv_cell("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    for start in "=+-@":
        assert csv_cell(start + "1") == "'" + start + "1"
    assert csv_cell("\t=1") == "␉=1"  # made visible first, so no longer a formula start
    assert csv_cell("Silva, Zoe") == "Silva, Zoe"


@given(st.text())
def test_no_control_character_survives(text):
    for out in (visible(text, one_line=True), csv_cell(text)):
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in out)
        assert not any(0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 for c in out)
    assert not csv_cell(text).startswith(("=", "+", "-", "@"))
