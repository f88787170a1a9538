"""Text from the database made safe for the place it is shown (issue 19, section 2).

A name, serial or note is whatever someone typed or imported.  Two places would run it
rather than show it:

- a **terminal** acts on control characters: ESC starts a sequence that can clear the
  screen, retitle the window or write the clipboard (OSC 52), and bidirectional
  overrides reorder what a person reads;
- a **spreadsheet** runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return as a formula (OWASP, "CSV Injection").

:func:`visible` shows every such character as a visible mark instead, and
:func:`csv_cell` neutralises a formula the way OWASP advises: a leading apostrophe, so
the spreadsheet shows the text as it was typed.  JSON is data, not a screen, so it keeps
the exact text: :func:`json_text` only writes as ``\\uXXXX`` escapes what ``json.dumps``
with ``ensure_ascii=False`` leaves raw (C1 controls such as the 8-bit CSI, bidirectional
overrides), so JSON printed on a terminal runs nothing either.  All three are pure and
cheap; a text with nothing to change is returned as it is.
"""

from __future__ import annotations

import re

#: C0 controls (but tab and line feed), DEL, C1 controls, the bidirectional embeddings,
#: overrides and isolates, the zero-width characters and the line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
#: The same with tab and line feed, for a value that must stay on one line.
_UNSAFE_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _mark(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode control pictures: ␛ for ESC, ␀ for NUL
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"<U+{code:04X}>"


def visible(text: str, *, one_line: bool = False) -> str:
    """``text`` with every control, bidirectional or invisible character shown as a
    visible mark (``"\\x1b[2J"`` → ``"␛[2J"``, U+202E → ``"<U+202E>"``).  Tab and line
    feed are kept unless ``one_line``."""
    pattern = _UNSAFE_ONE_LINE if one_line else _UNSAFE
    return pattern.sub(_mark, text) if pattern.search(text) else text


def json_text(text: str) -> str:
    """JSON written by ``json.dumps(..., ensure_ascii=False)`` with every character
    :func:`visible` would mark written as a ``\\uXXXX`` escape: the same JSON value
    (such characters only occur inside strings; ``json.dumps`` has already escaped the
    C0 controls), and nothing a terminal acts on."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) if _UNSAFE.search(text) else text


#: What a spreadsheet takes as the start of a formula (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """A text cell a spreadsheet shows and never runs: control characters made visible,
    then a leading apostrophe before anything that would start a formula."""
    text = visible(text, one_line=True)
    return "'" + text if text.startswith(FORMULA_START) else text
