"""Reading a GS1 UDI as a barcode scanner types it (rule 25, reference section 7).

Pure: no database, no textual.  ``parse_udi`` accepts

* the human-readable form with bracketed AIs: ``(01)09504000059118(17)141120(10)7654321D(21)10987654d321``;
* the raw element string, variable-length fields ended by the group separator GS
  (``\\x1d``), optionally after a symbology identifier such as ``]d2`` (GS1 DataMatrix).
  A terminal cannot always pass a GS through, so the visible stand-ins ``␝`` (U+241D),
  ``<GS>`` and ``^]`` are read as GS too.

It returns ``records.UdiIn`` (device identifier = GTIN, lot, serial, expiry, manufacture
date, and the raw text as scanned) or raises ``UdiError`` with a message a person can act
on.  A wrong GTIN check digit is refused (rule 25).  Expiry day "00" is the last day of
the month (GS1; biip applies it).

biip is imported inside ``parse_udi`` so that importing this module stays cheap.
"""

from __future__ import annotations

from devicelog.clinic.records import UdiIn

GS = "\x1d"
#: Visible stand-ins a terminal or a scanner setting may type for the group separator.
GS_STAND_INS = ("\u241d", "<GS>", "<gs>", "^]", "{GS}")


class UdiError(ValueError):
    """The text is not a GS1 UDI devicelog can use; ``str(error)`` says why."""


def normalise(text: str) -> str:
    """The scanned text with stand-ins turned into GS and surrounding blanks removed."""
    cleaned = text.strip().strip("\r\n")
    for stand_in in GS_STAND_INS:
        cleaned = cleaned.replace(stand_in, GS)
    return cleaned


def parse_udi(text: str) -> UdiIn:
    """Parse a scanned or typed GS1 UDI into its fields (rule 25)."""
    from biip import ParseError, parse
    from biip.gs1_messages import GS1Message

    cleaned = normalise(text)
    if not cleaned:
        raise UdiError("the UDI is empty")
    if len(cleaned) > 200:
        raise UdiError(f"the UDI is {len(cleaned)} characters long; at most 200 are accepted")
    try:
        if cleaned.startswith("("):
            message = GS1Message.parse_hri(cleaned)
        else:
            result = parse(cleaned)
            message = result.gs1_message
            if message is None:
                raise UdiError(
                    "not a GS1 UDI: expected (01)… with a 14-digit device identifier, "
                    "as printed under the barcode or typed by the scanner"
                )
    except ParseError as exc:
        raise UdiError(f"not a GS1 UDI: {exc}") from None
    except (ValueError, TypeError) as exc:  # biip's own errors are ParseError; be safe
        raise UdiError(f"not a GS1 UDI: {exc}") from None

    found: dict[str, object] = {}
    for element in message.element_strings:
        ai = element.ai.ai
        if ai == "01":
            if element.gtin_error:
                raise UdiError(f"device identifier (01) {element.value}: {_gtin_message(element.gtin_error)}")
            found["device_identifier"] = element.value
        elif ai == "17":
            if element.date is None:
                raise UdiError(f"expiry (17) {element.value!r} is not a date YYMMDD")
            found["expiry"] = element.date
        elif ai == "11":
            if element.date is None:
                raise UdiError(f"manufacture date (11) {element.value!r} is not a date YYMMDD")
            found["manufactured"] = element.date
        elif ai == "10":
            found["lot"] = element.value
        elif ai == "21":
            found["serial"] = element.value
    if "device_identifier" not in found:
        raise UdiError("the UDI has no device identifier (01); scan the barcode that starts with (01)")
    for name, limit in (("lot", 20), ("serial", 20)):
        value = found.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise UdiError(f"{name} {value!r} is longer than {limit} characters")
    # Keep the raw text as scanned, with a real GS in place of any stand-in.
    return UdiIn(raw=cleaned, **found)


def _gtin_message(error: str) -> str:
    if "check digit" in error:
        return f"wrong check digit ({error.split(':', 1)[-1].strip()}); rescan or retype the number"
    return error
