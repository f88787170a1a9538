"""The due list as text, CSV and JSON (issue 3.4, issue 6.3).

One path for each format: the list's entries (``devicelog.store.due.DueEntry``, read
from the due table or computed) → one :class:`DueRecord` per item → one writer per
format.  The record's field names are documented in the README ("Due list fields");
they are a promise to spreadsheets and scripts: add fields, never rename them.

- **text**: rich's ``Table``, wrapped to the terminal width (80 columns when piped),
  plain (no colour codes) when not written to a terminal.  Every text from the
  database is shown through ``reports.safe.visible``: an escape sequence in a name
  cannot act on the terminal.
- **csv**: one record per row, a header, ISO dates, UTF-8 *with* a byte-order mark.
  Excel opens a BOM-less UTF-8 file as the local code page and mangles "µ", "—" and
  accented names; LibreOffice, Numbers, Google Sheets and Python's ``utf-8-sig`` read
  the BOM and drop it.  Rows end in CRLF (RFC 4180).  Every text cell goes through
  ``reports.safe.csv_cell``: a name that starts a formula is shown, never run.
- **json**: the list with its range, the items (each with its why), the suppressed
  items with their reasons, and the forecast's notes; one field of the list a line,
  one item a line.  orjson writes each record (a dataclass) straight to JSON.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from devicelog.reports.safe import csv_cell, visible

if TYPE_CHECKING:
    from devicelog.store.due import DueEntry, DueList


@dataclass
class DueRecord:
    """One due item as the CSV row and the JSON object show it (fields in column order).

    A plain dataclass: orjson writes one with a ``__dict__`` about four times faster
    than a slotted one, and a frozen one costs ten times as much to make."""

    status: str
    due_on: dt.date
    latest_safe_on: dt.date | None
    days_until_due: int
    severity: str
    what: str
    why: str
    patient_name: str
    patient_mrn: str
    device_kind: str
    device_model: str
    device_serial: str
    code: str
    rule: str
    item_key: str

    @classmethod
    def of(cls, entry: DueEntry, as_of: dt.date, status: str | None = None) -> DueRecord:
        i = entry.item
        return cls(
            status or (entry.ack.word if entry.ack is not None else entry.status),
            i.due_on,
            i.latest_safe_on,
            (i.due_on - as_of).days,
            i.severity,
            i.what,
            why_text(entry),
            i.patient_name,
            i.patient_mrn,
            i.device_kind.value,
            i.device_model,
            i.device_serial,
            i.code,
            i.rule,
            i.key,
        )

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON values (dates as ISO text)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in FIELDS}
        out["due_on"] = self.due_on.isoformat()
        out["latest_safe_on"] = self.latest_safe_on.isoformat() if self.latest_safe_on else None
        return out

    def csv_row(self) -> list[Any]:
        """The CSV cells: text made safe for a spreadsheet, dates ISO, no date empty."""
        return [
            csv_cell(v) if isinstance(v, str) else ("" if v is None else v)
            for v in (getattr(self, name) for name in FIELDS)
        ]


#: The CSV / JSON item fields, in column order.
FIELDS: tuple[str, ...] = tuple(f.name for f in fields(DueRecord))

JSON_FORMAT = "devicelog.due-list/1"
CSV_ENCODING = "utf-8-sig"
#: Items formatted and written together by the CSV and JSON writers.
ROWS_PER_CHUNK = 1000


def item_record(entry: DueEntry, as_of: dt.date) -> dict[str, Any]:
    """One item as JSON values (what the JSON document holds for it)."""
    return DueRecord.of(entry, as_of).as_dict()


def records(dl: DueList) -> list[dict[str, Any]]:
    return [item_record(e, dl.as_of) for e in dl.entries]


def when_text(entry: DueEntry, as_of: dt.date) -> str:
    """"overdue by 3 days", "today", "in 5 days"; an acknowledged or snoozed item
    (listed with ``--show-acknowledged``) says so first."""
    days = (entry.item.due_on - as_of).days
    if days < 0:
        words = f"overdue by {-days} day{'s' if days != -1 else ''}"
    elif days == 0:
        words = "due today"
    else:
        words = f"in {days} day{'s' if days != 1 else ''}"
    return f"{ack_word(entry)} · {words}" if entry.ack is not None else words


def ack_word(entry: DueEntry) -> str:
    """"ACKNOWLEDGED", "SNOOZED to 2026-12-20", or "" for an active item."""
    a = entry.ack
    if a is None:
        return ""
    return "ACKNOWLEDGED" if a.kind == "acknowledge" else f"SNOOZED to {a.until}"


def why_text(entry: DueEntry) -> str:
    """The item's why, and for an acknowledged or snoozed item who did it, when and why."""
    if entry.ack is None:
        return entry.item.why
    return f"{entry.item.why} — {entry.ack.text()}"


def active_overdue(dl: DueList) -> int:
    """Overdue items that are active (an acknowledged one listed, marked, is not counted)."""
    return sum(1 for e in dl.entries if e.status == "overdue" and e.ack is None)


def title(dl: DueList) -> str:
    name = dl.clinic_name or "Device clinic"
    return f"{name}: due list"


def subtitle(dl: DueList) -> str:
    parts = [f"as of {dl.as_of.isoformat()}", dl.range_text(), dl.kinds_text()]
    if dl.redacted:
        parts.append("REDACTED copy")
    return " · ".join(parts)


def foot_lines(dl: DueList) -> list[str]:
    """The lines every printed format ends with: count, suppressed items, notes."""
    n = len(dl.entries)
    overdue = active_overdue(dl)
    lines = [f"{n} item{'s' if n != 1 else ''} listed, {overdue} overdue."] if n else [dl.empty_text()]
    if dl.hidden:
        lines.append(dl.hidden_text())
    if dl.suppressed:
        lines.append(dl.suppressed_text())
    for note in dl.notes:
        word = "Note" if note.warning.level == "note" else "Warning"
        lines.append(
            f"{word} for {note.patient_name} ({note.patient_mrn}), {note.device_model} SN {note.device_serial}: "
            f"{note.warning.message}"
            + ("" if note.warning.rule in note.warning.message else f" ({note.warning.rule})")
        )
    return lines


# ------------------------------------------------------------------------ text


def render_text(dl: DueList, out: TextIO, *, width: int | None = None, color: bool | None = None) -> None:
    """A table; ``width`` defaults to the terminal's (80 when ``out`` is not a terminal),
    colour only on a terminal (or when ``color`` says so)."""
    from rich.console import Console
    from rich.text import Text

    is_tty = hasattr(out, "isatty") and out.isatty()
    if width is None:
        import shutil

        width = shutil.get_terminal_size((80, 24)).columns if is_tty else 80
    color = is_tty if color is None else color
    console = Console(
        file=out,
        width=max(width, 40),
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
        soft_wrap=False,
    )
    console.print(Text(visible(title(dl)), style="bold"))
    console.print(Text(visible(subtitle(dl))))
    console.print()
    if dl.entries:
        _draw_table(console, dl, color)
    for line in foot_lines(dl):
        console.print(Text(visible(line)))


#: Rows laid out and written together by the text table.
TEXT_ROWS_PER_CHUNK = 1000


def _due_text(e: DueEntry, as_of: dt.date):
    """The Due cell: date, when (overdue in bold red), and the latest safe date."""
    from rich.text import Text

    i = e.item
    due = Text(i.due_on.isoformat() + "\n")
    when_words = when_text(e, as_of).replace("overdue by ", "overdue by\n")
    due.append(when_words, style="bold red" if e.status == "overdue" else "")
    if i.latest_safe_on:
        due.append(f"\nsafe by\n{i.latest_safe_on.isoformat()}")
    return due


def _row_cells(e: DueEntry, as_of: dt.date):
    """A row's cells; every database text shown through ``visible``."""
    from rich.text import Text

    i = e.item
    what = Text(visible(i.what), style="bold")
    what.append("\n" + visible(i.why), style="dim")
    return (
        _due_text(e, as_of),
        Text(visible(f"{i.patient_name}\n{i.patient_mrn}")),
        Text(visible(f"{i.device_model}\nSN {i.device_serial}")),
        what,
    )


def column_widths(width: int, due_width: int) -> tuple[int, int, int, int]:
    """The four columns' text widths in a table ``width`` wide: Due as wide as its
    widest cell, the rest shared 2 : 3 : 5 by Patient, Device and What and why (a space
    at each edge and two between columns)."""
    rest = max(width - due_width - 8, 10)
    patient, device = rest * 2 // 10, rest * 3 // 10
    return due_width, patient, device, rest - patient - device


def _draw_table(console, dl: DueList, color: bool) -> None:
    """The table, drawn with rich's ``Text``: each cell wrapped to its column
    (``Text.wrap``, words folded when wider than the column), the cells' lines set side
    by side, a blank line between rows; written :data:`TEXT_ROWS_PER_CHUNK` rows at a
    time.  (Rich's ``Table`` lays out about ten times slower: minutes for the 57,000
    items of a 30-day list at 100,000 patients.)"""
    from rich.cells import cell_len
    from rich.text import Text

    entries, as_of = dl.entries, dl.as_of
    due_width = max(10, max(cell_len(line) for e in entries for line in _due_text(e, as_of).plain.split("\n")))
    widths = column_widths(console.width, due_width)
    blank = [Text(" " * w) for w in widths]

    def row(cells) -> list:
        """The row's lines, each a list of one padded ``Text`` per column."""
        wrapped = [cell.wrap(console, w, justify="left", overflow="fold") for cell, w in zip(cells, widths)]
        height = max(len(c) for c in wrapped)
        return [[c[k] if k < len(c) else Text(" " * w) for c, w in zip(wrapped, widths)] for k in range(height)]

    def emit(lines: list) -> None:
        if color:
            console.print(Text("\n").join(Text.assemble(" ", *_between(parts), " ") for parts in lines), soft_wrap=True)
        else:
            console.file.write("".join(" " + "  ".join(p.plain for p in parts) + " \n" for parts in lines))

    head = [Text(name, style="bold") for name in ("Due", "Patient", "Device", "What and why")]
    lines = [*row(head), [Text("─" * w) for w in widths]]
    for n, e in enumerate(entries):
        if n:
            lines.append(blank)
        lines += row(_row_cells(e, as_of))
        if (n + 1) % TEXT_ROWS_PER_CHUNK == 0:
            emit(lines)
            lines = []
    if lines:
        emit(lines)


def _between(parts: list) -> list:
    """The cells of a line with two spaces between them."""
    out: list = []
    for n, part in enumerate(parts):
        out += [part] if n == 0 else ["  ", part]
    return out


def text(dl: DueList, *, width: int = 80) -> str:
    buf = io.StringIO()
    render_text(dl, buf, width=width, color=False)
    return buf.getvalue()


# ------------------------------------------------------------------------ csv


def _csv_chunks(dl: DueList) -> Iterable[str]:
    """The CSV text (no BOM): the header, then :data:`ROWS_PER_CHUNK` rows at a time."""
    import csv

    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(FIELDS)
    as_of, entries = dl.as_of, dl.entries
    for start in range(0, len(entries), ROWS_PER_CHUNK):
        writer.writerows(DueRecord.of(e, as_of).csv_row() for e in entries[start : start + ROWS_PER_CHUNK])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.tell():
        yield buf.getvalue()


def render_csv(dl: DueList, out: TextIO) -> None:
    """Header and one row per item to a text file (opened with ``newline=""``)."""
    out.writelines(_csv_chunks(dl))


def write_csv(dl: DueList, out: BinaryIO) -> None:
    """The CSV file's bytes (BOM, CRLF) to a binary file, a chunk of rows at a time
    (what ``-o`` should call)."""
    out.write("".encode(CSV_ENCODING))  # the BOM, once
    out.writelines(chunk.encode("utf-8") for chunk in _csv_chunks(dl))


def csv_bytes(dl: DueList) -> bytes:
    """The whole CSV file as bytes (``write_csv`` into memory)."""
    out = io.BytesIO()
    write_csv(dl, out)
    return out.getvalue()


# ------------------------------------------------------------------------ json


def _note_record(n) -> dict[str, Any]:
    return {
        "patient_name": n.patient_name,
        "patient_mrn": n.patient_mrn,
        "device_model": n.device_model,
        "device_serial": n.device_serial,
        "level": n.warning.level,
        "code": n.warning.code,
        "rule": n.warning.rule,
        "message": n.warning.message,
    }


def _suppressed_record(s, as_of: dt.date) -> dict[str, Any]:
    from devicelog.store.due import DueEntry

    return {**DueRecord.of(DueEntry(s.item, "upcoming"), as_of, "suppressed").as_dict(), "reason": s.reason}


def _ack_record(entry, as_of: dt.date) -> dict[str, Any]:
    """An acknowledged or snoozed item (listed in ``acknowledged`` whether or not the
    items show it), with the record that hides it."""
    a = entry.ack
    return {**DueRecord.of(entry, as_of).as_dict(), "acknowledged_by": a.author,
            "acknowledged_at": a.recorded_at.isoformat(), "reason": a.reason,
            "until": a.until.isoformat() if a.until else None}


def document(dl: DueList) -> dict[str, Any]:
    """The JSON document (documented in the README, "Due list fields") as JSON values:
    what reading :func:`render_json`'s output gives."""
    return _document(dl, records(dl))


def _document(dl: DueList, items: Iterable[Any]) -> dict[str, Any]:
    """The document's fields in their order, with ``items`` (records or their dicts)."""
    as_of, until = dl.as_of, dl.until
    return {
        "format": JSON_FORMAT,
        "clinic_name": dl.clinic_name,
        "as_of": as_of.isoformat(),
        "until": until.isoformat() if until else None,
        "within_days": dl.within_days,
        "kinds": [k.value for k in dl.kinds],
        "redacted": dl.redacted,
        "count": len(dl.entries),
        "overdue_count": active_overdue(dl),
        "items": items,
        "acknowledged_count": dl.hidden_counts()[0],
        "snoozed_count": dl.hidden_counts()[1],
        "acknowledged": [_ack_record(h, as_of) for h in dl.hidden],
        "suppressed_count": len(dl.suppressed),
        "suppressed_by_reason": [{"reason": r, "count": c} for r, c in dl.suppressed_by_reason()],
        "suppressed": [_suppressed_record(s, as_of) for s in dl.suppressed],
        "notes": [_note_record(n) for n in dl.notes],
    }


#: The document's arrays, written one object a line.
_ARRAYS = ("items", "acknowledged", "suppressed", "notes")


def render_json(dl: DueList, out: TextIO) -> None:
    """:func:`document` written one field a line and each object of its arrays on a
    line of its own, the items made and written :data:`ROWS_PER_CHUNK` at a time (a
    50,000-item list streams out instead of being built as one string).  orjson
    writes each :class:`DueRecord` as it is (a dataclass; dates as ISO text)."""
    import orjson

    doc = _document(dl, (DueRecord.of(e, dl.as_of) for e in dl.entries))
    out.write("{")
    for n, (key, value) in enumerate(doc.items()):
        out.write("\n" if n == 0 else ",\n")
        if key in _ARRAYS:
            _write_array(out, key, value)
        else:
            out.write(f'  "{key}": {orjson.dumps(value).decode()}')
    out.write("\n}\n")


def _write_array(out: TextIO, key: str, values: Iterable[Any]) -> None:
    """``"key": [`` then each value's JSON on a line of its own, indented by 4, written
    :data:`ROWS_PER_CHUNK` values at a time."""
    from itertools import islice

    import orjson

    dumps = orjson.dumps
    out.write(f'  "{key}": [')
    values = iter(values)
    wrote = False
    while chunk := list(islice(values, ROWS_PER_CHUNK)):
        out.write((",\n    " if wrote else "\n    ") + b",\n    ".join(map(dumps, chunk)).decode())
        wrote = True
    out.write("\n  ]" if wrote else "]")
