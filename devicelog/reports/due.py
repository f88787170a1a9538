"""The due list as text, CSV and JSON (issue 3.4, issue 6.3).

Every format is written from a ``DueList`` (``devicelog.store.due``), redacted or not,
through ``item_record``: one dict per item with the field names documented in the
README ("Due list fields").  Those names are a promise to spreadsheets and scripts:
add fields, never rename them.

- **text**: a table that wraps to the terminal width (80 columns when piped), plain
  (no colour codes) when not written to a terminal.
- **csv**: one item per row, a header, ISO dates, UTF-8 *with* a byte-order mark.
  Excel opens a BOM-less UTF-8 file as the local code page and mangles "µ", "—" and
  accented names; LibreOffice, Numbers, Google Sheets and Python's ``utf-8-sig`` read
  the BOM and drop it.  Rows end in CRLF (RFC 4180).
- **json**: the list with its range, the items (each with its why), the suppressed
  items with their reasons, and the forecast's notes.  ``devicelog due`` on SQLite
  writes it from the due table without a ``DueList``: SQLite formats each item
  (:func:`json_from_table` says why); a test holds its bytes equal to
  :func:`render_json`'s.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import TYPE_CHECKING, Any, BinaryIO, Iterable, Iterator, TextIO

if TYPE_CHECKING:  # imported where used: the JSON of a stored list needs none of it (json_from_table)
    from devicelog.store.due import DueEntry, DueList, DueRows

#: The CSV / JSON item fields, in column order.
FIELDS: tuple[str, ...] = (
    "status",
    "due_on",
    "latest_safe_on",
    "days_until_due",
    "severity",
    "what",
    "why",
    "patient_name",
    "patient_mrn",
    "device_kind",
    "device_model",
    "device_serial",
    "code",
    "rule",
    "item_key",
)

JSON_FORMAT = "devicelog.due-list/1"
CSV_ENCODING = "utf-8-sig"


def item_record(entry: DueEntry, as_of: dt.date) -> dict[str, Any]:
    """One item as plain values (dates ISO strings; no latest safe date is None)."""
    i = entry.item
    return {
        "status": entry.status,
        "due_on": i.due_on.isoformat(),
        "latest_safe_on": i.latest_safe_on.isoformat() if i.latest_safe_on else None,
        "days_until_due": (i.due_on - as_of).days,
        "severity": i.severity,
        "what": i.what,
        "why": i.why,
        "patient_name": i.patient_name,
        "patient_mrn": i.patient_mrn,
        "device_kind": i.device_kind.value,
        "device_model": i.device_model,
        "device_serial": i.device_serial,
        "code": i.code,
        "rule": i.rule,
        "item_key": i.key,
    }


def records(dl: DueList) -> list[dict[str, Any]]:
    return [item_record(e, dl.as_of) for e in dl.entries]


def when_text(entry: DueEntry, as_of: dt.date) -> str:
    """"overdue by 3 days", "today", "in 5 days"."""
    days = (entry.item.due_on - as_of).days
    if days < 0:
        return f"overdue by {-days} day{'s' if days != -1 else ''}"
    if days == 0:
        return "due today"
    return f"in {days} day{'s' if days != 1 else ''}"


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
    overdue = sum(1 for e in dl.entries if e.status == "overdue")
    lines = [f"{n} item{'s' if n != 1 else ''} listed, {overdue} overdue."] if n else [dl.empty_text()]
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
    """A table; ``width`` defaults to the terminal's (80 when ``out`` is not a terminal).

    Without colour (a file, a pipe: ``-o``) the rows are laid out by :func:`plain_table`,
    which writes what rich's ``Table`` writes, a thousand rows at a time.  Rich lays
    out ~2 ms a row and holds the whole table: 11 s for the 5,700 items of a
    10,000-patient clinic, ~2 min for 57,000.  On a colour terminal rich draws it
    (the colours are its own), a chunk of rows at a time."""
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
    console.print(Text(title(dl), style="bold"))
    console.print(Text(subtitle(dl)))
    console.print()
    if dl.entries:
        if color:
            _rich_table(console, dl)
        else:
            for chunk in plain_table(console, dl):
                out.write(chunk)
    for line in foot_lines(dl):
        console.print(Text(line))


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


def _text_table(rows_fixed_width: int | None = None):
    """The table's columns; ``rows_fixed_width`` fixes the Due column's width (to the
    widest Due cell of the whole list) so that chunks of rows line up as one table."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_lines=False, pad_edge=False, expand=True, header_style="bold")
    table.add_column("Due", no_wrap=True, min_width=10, width=rows_fixed_width)
    table.add_column("Patient", ratio=2, overflow="fold")
    table.add_column("Device", ratio=3, overflow="fold")
    table.add_column("What and why", ratio=5, overflow="fold")
    return table


def _widest_due(dl: DueList) -> int:
    from rich.cells import cell_len

    return max(10, max(cell_len(line) for e in dl.entries for line in _due_text(e, dl.as_of).plain.split("\n")))


def _row_cells(e: DueEntry, as_of: dt.date):
    from rich.text import Text

    i = e.item
    what = Text(i.what, style="bold")
    what.append("\n" + i.why, style="dim")
    return _due_text(e, as_of), f"{i.patient_name}\n{i.patient_mrn}", f"{i.device_model}\nSN {i.device_serial}", what


def _rich_table(console, dl: DueList) -> None:
    """Rich's own table, a chunk of rows per ``Table`` (the Due column fixed to the widest
    cell of the whole list): the edges between chunks are cut so it reads as one."""
    due_width = _widest_due(dl)
    entries = dl.entries
    for start in range(0, len(entries), TEXT_ROWS_PER_CHUNK):
        table = _text_table(due_width)
        table.show_header = start == 0
        for n in range(start, min(start + TEXT_ROWS_PER_CHUNK, len(entries))):
            if n:
                table.add_row("", "", "", "")
            table.add_row(*_row_cells(entries[n], dl.as_of))
        with console.capture() as capture:
            console.print(table)
        lines = capture.get().splitlines(keepends=True)
        if start:
            lines = lines[1:]  # the top edge: only the first chunk has one
        if start + TEXT_ROWS_PER_CHUNK < len(entries):
            lines = lines[:-1]  # the bottom edge: only the last chunk has one
        console.file.write("".join(lines))


def plain_table(console, dl: DueList) -> Iterator[str]:
    """The text table without colour, as rich's ``Table`` writes it (a test holds the two
    equal), in chunks of :data:`TEXT_ROWS_PER_CHUNK` rows.

    Column widths are rich's own (``Table._calculate_column_widths`` on a table whose
    Due column is as wide as the widest Due cell; the other columns share the rest by
    ratio, whatever their text).  Each cell line is wrapped by rich's ``divide_line``
    (words, long ones folded) and cut or padded to the column: what ``Text.wrap`` does
    with left justification.  SIMPLE_HEAD box, no edge padding: a space at each edge,
    one between columns, one of padding each side of a cell except at the edges."""
    from rich._wrap import divide_line
    from rich.cells import cell_len, set_cell_size
    from rich.control import strip_control_codes

    due_width = _widest_due(dl)
    table = _text_table(due_width)
    widths = table._calculate_column_widths(console, console.options.update_width(console.width - table._extra_width))
    pads = [(0, 1)] + [(1, 1)] * (len(widths) - 2) + [(1, 0)]
    inner = [w - left - right for w, (left, right) in zip(widths, pads)]
    total = sum(widths) + len(widths) - 1 + 2

    def expand_tabs(line: str) -> str:  # rich's Text.expand_tabs, tab size 8
        out = ""
        for part in line.split("\t")[:-1]:
            out += part + " "
            out += " " * (-cell_len(out) % 8)
        return out + line.rsplit("\t", 1)[-1]

    def cell_lines(text: str, w: int) -> list[str]:
        out: list[str] = []
        for line in strip_control_codes(text).split("\n"):
            if "\t" in line:
                line = expand_tabs(line)
            cuts = divide_line(line, w, fold=True)
            for a, b in zip([0, *cuts], [*cuts, len(line)]):
                out.append(set_cell_size(line[a:b], w))
        return out

    def row(cells: list[str], bottom: bool = False) -> list[str]:
        columns = [cell_lines(text, w) for text, w in zip(cells, inner)]
        height = max(len(c) for c in columns)
        if bottom:  # rich aligns the header's cells to the bottom
            columns = [[" " * w] * (height - len(c)) + c for c, w in zip(columns, inner)]
        out = []
        for k in range(height):
            parts = []
            for c, w, (left, right) in zip(columns, inner, pads):
                parts.append(" " * left + (c[k] if k < len(c) else " " * w) + " " * right)
            out.append(" " + " ".join(parts) + " \n")
        return out

    blank = " " * total + "\n"
    lines = [blank, *row(["Due", "Patient", "Device", "What and why"], bottom=True), " " + "─" * (total - 2) + " \n"]
    for n, e in enumerate(dl.entries):
        i = e.item
        due = f"{i.due_on.isoformat()}\n" + when_text(e, dl.as_of).replace("overdue by ", "overdue by\n")
        if i.latest_safe_on:
            due += f"\nsafe by\n{i.latest_safe_on.isoformat()}"
        if n:
            lines.append(blank)
        lines += row([due, f"{i.patient_name}\n{i.patient_mrn}", f"{i.device_model}\nSN {i.device_serial}", f"{i.what}\n{i.why}"])
        if (n + 1) % TEXT_ROWS_PER_CHUNK == 0:
            yield "".join(lines)
            lines = []
    lines.append(blank)
    yield "".join(lines)


def text(dl: DueList, *, width: int = 80) -> str:
    buf = io.StringIO()
    render_text(dl, buf, width=width, color=False)
    return buf.getvalue()


# ------------------------------------------------------------------------ csv


def render_csv(dl: DueList, out: TextIO) -> None:
    """Header and one row per item; ``out`` should be opened with ``CSV_ENCODING``
    and ``newline=""`` (``write_csv`` does).  Rows are written as they are made (no
    list of records: at 57,000 items the records alone were ~85 MB)."""
    import csv

    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for e in dl.entries:
        writer.writerow({k: "" if v is None else v for k, v in item_record(e, dl.as_of).items()})


def write_csv(dl: DueList, out: BinaryIO, *, rows_per_chunk: int = 1000) -> None:
    """The CSV file's bytes (BOM, CRLF) written to a binary file ``rows_per_chunk`` rows
    at a time: memory is a chunk, not the list's text (what ``-o`` should call)."""
    import csv

    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\r\n")
    writer.writeheader()
    out.write(buf.getvalue().encode(CSV_ENCODING))  # the BOM, once
    for start in range(0, len(dl.entries), rows_per_chunk):
        buf.seek(0)
        buf.truncate()
        for e in dl.entries[start : start + rows_per_chunk]:
            writer.writerow({k: "" if v is None else v for k, v in item_record(e, dl.as_of).items()})
        out.write(buf.getvalue().encode("utf-8"))


def csv_bytes(dl: DueList) -> bytes:
    """The whole CSV file as bytes (``write_csv`` into memory)."""
    out = io.BytesIO()
    write_csv(dl, out)
    return out.getvalue()


# ------------------------------------------------------------------------ json


def document(dl: DueList) -> dict[str, Any]:
    """The JSON document (documented in the README, "Due list fields")."""
    from devicelog.store.due import DueEntry

    return _document(
        clinic_name=dl.clinic_name,
        as_of=dl.as_of,
        until=dl.until,
        kinds=[k.value for k in dl.kinds],
        redacted=dl.redacted,
        count=len(dl.entries),
        overdue_count=sum(1 for e in dl.entries if e.status == "overdue"),
        items=records(dl),
        suppressed_by_reason=dl.suppressed_by_reason(),
        suppressed=[
            {**item_record(DueEntry(s.item, "upcoming"), dl.as_of), "status": "suppressed", "reason": s.reason}
            for s in dl.suppressed
        ],
        notes=[
            _note_record(
                n.patient_name,
                n.patient_mrn,
                n.device_serial,
                n.device_model,
                n.warning.level,
                n.warning.code,
                n.warning.rule,
                n.warning.message,
            )
            for n in dl.notes
        ],
    )


def _document(
    *, clinic_name, as_of, until, kinds, redacted, count, overdue_count, items, suppressed_by_reason, suppressed, notes
) -> dict[str, Any]:
    """The document's fields in their order (``document`` and ``json_from_table``)."""
    return {
        "format": JSON_FORMAT,
        "clinic_name": clinic_name,
        "as_of": as_of.isoformat(),
        "until": until.isoformat() if until else None,
        "within_days": None if until is None else (until - as_of).days,
        "kinds": kinds,
        "redacted": redacted,
        "count": count,
        "overdue_count": overdue_count,
        "items": items,
        "suppressed_count": len(suppressed),
        "suppressed_by_reason": [{"reason": r, "count": c} for r, c in suppressed_by_reason],
        "suppressed": suppressed,
        "notes": notes,
    }


def _note_record(name, mrn, serial, model, level, code, rule, message) -> dict[str, Any]:
    return {
        "patient_name": name,
        "patient_mrn": mrn,
        "device_model": model,
        "device_serial": serial,
        "level": level,
        "code": code,
        "rule": rule,
        "message": message,
    }


def render_json(dl: DueList, out: TextIO) -> None:
    """``document(dl)`` written as it is produced: the list's fields one per line, then
    each item, suppressed item and note on a line of its own, in chunks, so a
    50,000-item list streams out instead of being built as one string.  The items are
    formatted by :func:`items_json` (the bulk of the document); the rest by JSON's C
    encoder."""
    _render_json(dl, out, len(dl.entries), [e.status for e in dl.entries], items_json(dl.entries, dl.as_of))


def render_json_rows(due: DueRows, out: TextIO) -> None:
    """``render_json`` of a stored list whose items are still rows (``store.due.DueRows``),
    the same document without making an object per item (:func:`rows_json`)."""
    _render_json(due.head, out, len(due.rows), due.statuses, rows_json(due.rows, due.statuses, due.head.as_of))


def _render_json(dl: DueList, out: TextIO, count: int, statuses: list[str], item_lines: Iterable[str]) -> None:
    from dataclasses import replace

    doc = document(replace(dl, entries=()))
    doc["count"] = count
    doc["overdue_count"] = statuses.count("overdue")
    _write_document(out, doc, {"items": ("    " + line for line in item_lines)})


def _write_document(out: TextIO, doc: dict[str, Any], lines: dict[str, Iterable[str]]) -> None:
    """``doc`` one field a line; an array of objects one object a line (indented by 4),
    the arrays named in ``lines`` from those lines (JSON texts, indented already)."""
    encode = _fast_encoder()
    out.write("{")
    for n, (key, value) in enumerate(doc.items()):
        out.write("\n" if n == 0 else ",\n")
        if key in lines:
            _write_array(out, encode(key), lines[key])
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            _write_array(out, encode(key), ("    " + encode(v) for v in value))
        else:
            out.write(f"  {encode(key)}: {encode(value)}")
    out.write("\n}\n")


class TableJSON:
    """A due list's JSON document read from the due table, ready to write (:func:`json_from_table`)."""

    def __init__(self, doc: dict[str, Any], items: list[bytes], suppressed: list[str]):
        self.doc, self.items, self.suppressed = doc, items, suppressed

    @property
    def count(self) -> int:
        return len(self.items)

    def write(self, out: TextIO) -> None:
        _write_document(out, self.doc, {"items": self.items, "suppressed": self.suppressed})


def json_from_table(conn, *, as_of: dt.date, settings, within_days: int | None = None, kinds: Iterable = ()) -> TableJSON | None:
    """What ``render_json(due_list(conn, ...), out)`` writes, read straight from the
    maintained due table on SQLite (``conn`` a SQLAlchemy ``Connection``); None when it cannot be (not SQLite, or the table is
    not fresh for ``settings``): the caller takes the ``store.due`` path, which computes
    the forecasts then.

    Why: at 100,000 patients this list has 57,000 items (42 MB).  Making each an object
    in Python, or even reading each row's 19 values and formatting them, was most of
    ``devicelog due --format json``.  Here SQLite formats each item's JSON text as it
    reads the row and sorts the texts in the list's order
    (``store.forecasts.read_range_json``); Python adds the head, the counts, the
    suppressed reasons and the notes, and writes the lines in chunks.  Nothing here
    imports the forecast vocabulary (``store.due``, ``clinic.due``, ``clinic.history``,
    the catalogue), which was a third of the command's start.  The freshness check is
    ``store.due``'s own (``forecasts.is_fresh``), in the same read transaction as the
    rows: a stale table is never served.  A test holds the bytes equal to
    ``render_json`` for every range, kind filter and status, with quotes, control and
    non-ASCII characters in names.
    """
    from devicelog.store import forecasts

    if within_days is not None and not 0 <= within_days <= forecasts.MAX_WITHIN_DAYS:
        raise ValueError(f"within_days = {within_days}: must be 0 to {forecasts.MAX_WITHIN_DAYS} days")
    if conn.dialect.name != "sqlite":
        return None
    if not forecasts.is_fresh(conn, settings):
        return None
    kind_values = [getattr(k, "value", k) for k in dict.fromkeys(kinds or ())]
    until = None if within_days is None else as_of + dt.timedelta(days=within_days)
    lead = as_of + dt.timedelta(days=settings.lead_time_days)
    items, overdue, suppressed = forecasts.read_range_json(
        conn, fields=FIELDS, as_of=as_of, lead=lead, until=until, kinds=kind_values, indent="    "
    )
    suppressed_items = [r[0] for r in suppressed]
    if None in items or None in suppressed_items:
        return None  # a value SQLite could not format (a due date not ISO text): store.due meets it
    reasons: dict[str, int] = {}
    for r in suppressed:
        reasons[r[1]] = reasons.get(r[1], 0) + 1
    doc = _document(
        clinic_name=settings.clinic_name,
        as_of=as_of,
        until=until,
        kinds=kind_values,
        redacted=False,
        count=len(items),
        overdue_count=overdue,
        items=None,
        # DueList.suppressed_by_reason's order: most frequent first, then by reason.
        suppressed_by_reason=sorted(reasons.items(), key=lambda rc: (-rc[1], rc[0])),
        suppressed=suppressed_items,
        notes=[_note_record(*r) for r in forecasts.read_notes(conn, kinds=kind_values)],
    )
    return TableJSON(doc, items, suppressed_items)


_ITEM_TEMPLATE = "{" + ", ".join(f'"{name}": %s' for name in FIELDS) + "}"


def items_json(entries: Iterable[DueEntry], as_of: dt.date) -> Iterator[str]:
    """Each entry as ``json.dumps(item_record(entry, as_of), ensure_ascii=False)`` writes
    it, formatted straight from the item: strings through JSON's own C escaper, the
    record's fields in ``FIELDS`` order.  Building a dict per item and encoding it was
    two thirds of ``devicelog due --format json`` at 57,000 items (bench/); this is
    three times faster.  A test holds every line equal to ``item_record``."""
    from json.encoder import encode_basestring as q

    template = _ITEM_TEMPLATE
    for e in entries:
        i = e.item
        safe = i.latest_safe_on
        yield template % (
            q(e.status),
            q(i.due_on.isoformat()),
            "null" if safe is None else q(safe.isoformat()),
            (i.due_on - as_of).days,
            q(i.severity),
            q(i.what),
            q(i.why),
            q(i.patient_name),
            q(i.patient_mrn),
            q(i.device_kind.value),
            q(i.device_model),
            q(i.device_serial),
            q(i.code),
            q(i.rule),
            q(i.key),
        )


def rows_json(rows: list[tuple], statuses: list[str], as_of: dt.date) -> Iterator[str]:
    """:func:`items_json` of rows of the due table (``store.forecasts.read_range``: the
    ``DueItem`` fields in order, the device kind as its value, dates as ISO text or
    dates), without making the items.  A test holds it equal to ``items_json``."""
    from json.encoder import encode_basestring as q

    template = _ITEM_TEMPLATE
    days: dict = {}  # due date -> days from as_of (a list has a few hundred dates)
    for r, status in zip(rows, statuses):
        due_on, safe = r[9], r[10]
        if due_on not in days:
            d = dt.date.fromisoformat(due_on) if isinstance(due_on, str) else due_on
            days[due_on] = ((d - as_of).days, q(d.isoformat()))
        n_days, due_json = days[due_on]
        source = r[14]
        yield template % (
            q(status),
            due_json,
            "null" if safe is None else q(safe if isinstance(safe, str) else safe.isoformat()),
            n_days,
            q(r[11]),
            q(r[7]),
            q(r[13]),
            q(r[2]),
            q(r[1]),
            q(r[6]),
            q(r[5]),
            q(r[4]),
            q(r[8]),
            q(r[12]),
            q(f"{r[3]}:{r[8]}:{'' if source is None else source}"),
        )


def _fast_encoder():
    """``json.dumps(value, ensure_ascii=False)`` with ", " and ": ", from one C encoder made
    once (``JSONEncoder.encode`` makes a new one per call, which costs more than the
    encoding of a due item)."""
    import json.encoder as je

    plain = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    if je.c_make_encoder is None:
        return plain
    c = je.c_make_encoder(None, None, je.encode_basestring, None, ": ", ", ", False, False, True)

    def encode(value) -> str:
        if isinstance(value, (dict, list)):
            return "".join(c(value, 0))
        return plain(value)

    return encode


def _write_array(out: TextIO, key_json: str, lines_json: Iterable[str], chunk: int = 1000) -> None:
    """``key_json: [`` then each line (a JSON text, indented) on a line of its own,
    written ``chunk`` at a time (a list is cut into chunks, not walked line by line)."""
    out.write(f"  {key_json}: [")
    if isinstance(lines_json, list):
        # UTF-8 bytes (forecasts.read_range_json's items) are decoded a chunk at a time.
        raw = bool(lines_json) and isinstance(lines_json[0], bytes)
        for start in range(0, len(lines_json), chunk):
            part = lines_json[start : start + chunk]
            out.write((",\n" if start else "\n") + (b",\n".join(part).decode("utf-8") if raw else ",\n".join(part)))
        out.write("\n  ]" if lines_json else "]")
        return
    lines: list[str] = []
    wrote = False
    for line in lines_json:
        lines.append(line)
        if len(lines) == chunk:
            out.write((",\n" if wrote else "\n") + ",\n".join(lines))
            wrote = True
            lines.clear()
    if lines:
        out.write((",\n" if wrote else "\n") + ",\n".join(lines))
        wrote = True
    out.write("\n  ]" if wrote else "]")
