"""The import/export document: a whole clinic as one JSON file.

Shape (``schemas/document.schema.json`` is generated from :class:`Document`)::

    {"format": "devicelog", "version": 1,
     "catalogue": {"device_models": [...], "drugs": [...]},   # entries beyond the shipped catalogue
     "patients": [PatientIn + author, recorded_at],
     "devices":  [DeviceIn + author, recorded_at],             # patient by MRN, replacement by serial
     "events":   [EventIn + ref, amends, amendment_reason, voided, recorded_at]}

Devices name their patient by MRN, events their device by serial, and an amendment
names the event it corrects by that event's ``ref`` (an id that only means something
inside the document).

Import goes through the same records and the same checks as a person at the
keyboard (``services.add_patients`` / ``add_devices``: ``add_patient`` / ``add_device``
for a batch, with their checks and audit changes, a query per 500 keys instead of per
row; ``check_event``; the checks of ``amend_event`` / ``void_event``), replayed in clinical order inside one
transaction: every refusal is collected with its JSON path
(``$.events[12].data.volume_added_ml = -3: …``) and if there is any, the whole
import is rolled back.  Export writes the whole database in the same shape, in an
order that depends only on the content (never on row ids), so export → import into
an empty database → export gives the same bytes.

Memory (issue 8: peak RSS ≤ 300 MB; a 10,000-patient document is 190 MB of JSON):
neither direction holds the clinic.  Export streams rows in export order, sorted by
the database, and writes each item as it comes (:func:`write_document`).  Import
reads the file once, item by item (:class:`DocumentReader`: the standard library's
C decoder, no dependency), validating each item and putting its text in a private
temporary SQLite file (:class:`_Spool`).  A hand-written document may give its
sections in any order (events before devices), and the replay needs an order no file
has (clinical order, amendments by when they were recorded) and checks across the
whole document (refs), so a second pass over the file would not do: the spool sorts
and joins on disk, and works for standard input too.  The replay validates each item
again from its text, writes events and their audit entries in batches as they pass
(a refusal anywhere still rolls the whole transaction back), lets rows go from the
session in batches, and refreshes the due table once per device at the end.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import re
from dataclasses import dataclass
from typing import IO, Annotated, Any, Callable, Iterable, Iterator, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from devicelog import services
from devicelog.clinic.advisory import AdvisoryIn
from devicelog.clinic.catalogue import DeviceModel, Drug, shipped_catalogue
from devicelog.clinic.records import (
    DeviceIn,
    DeviceStatus,
    EventIn,
    EventKind,
    PatientIn,
    Record,
    RefillReviewData,
)
from devicelog.services import InputError, Problem
from devicelog.settings import Settings
from devicelog.store import queries, tables

FORMAT = "devicelog"
VERSION = 1

Author = Annotated[str, Field(min_length=1, max_length=80)]
Ref = Annotated[str, Field(min_length=1, max_length=40)]


# --------------------------------------------------------------------------- the document


class DocPatient(PatientIn):
    """A patient; ``author`` and ``recorded_at`` default to the importing user and now."""

    author: Author | None = None
    recorded_at: AwareDatetime | None = None


class DocDevice(DeviceIn):
    """A device of a patient (by MRN); ``status`` is its status now, after its events."""

    author: Author | None = None
    recorded_at: AwareDatetime | None = None


class DocEvent(EventIn):
    """An event of a device (by serial); an amendment names the event it corrects by
    ``ref``, and a refill review (rule 26) the refill it reviews, in ``reviews``."""

    ref: Ref | None = None
    amends: Ref | None = None
    amendment_reason: Annotated[str, Field(max_length=500)] | None = None
    voided: bool = False
    recorded_at: AwareDatetime | None = None
    reviews: Ref | None = None

    @model_validator(mode="after")
    def _amendment(self) -> "DocEvent":
        if self.voided and self.amends is None:
            raise ValueError("voided: only an amendment (with amends) can void an event")
        if self.amendment_reason is not None and self.amends is None:
            raise ValueError("amendment_reason: only an amendment (with amends) has a reason")
        review = isinstance(self.data, RefillReviewData)
        if review and self.reviews is None:
            raise ValueError("reviews: a refill review names the refill it reviews by that refill's ref")
        if review and self.data.refill_event_id is not None:
            raise ValueError(
                f"data.refill_event_id {self.data.refill_event_id}: a document names the refill by ref, in reviews"
            )
        if not review and self.reviews is not None:
            raise ValueError(f"reviews {self.reviews!r}: only a refill review (data.kind refill_review) names a refill")
        return self


class DocDueAck(BaseModel):
    """A due item acknowledged, snoozed or withdrawn (issue 14.2), in the order recorded.

    The item is named by its device's serial, its code and the ref of the event it came
    from (``source_event``; none for an item no event gave rise to): its key in the
    database it is imported into.  ``fingerprint`` is the item's as acknowledged
    (``clinic.acks.fingerprint``); a withdrawal names the record it takes back by ref."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ref: Ref
    device_serial: Annotated[str, Field(min_length=1, max_length=40)]
    code: Annotated[str, Field(min_length=1, max_length=60)]
    source_event: Ref | None = None
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    kind: Literal["acknowledge", "snooze", "withdraw"]
    until: dt.date | None = None
    withdraws: Ref | None = None
    what: Annotated[str, Field(max_length=500)] = ""
    due_on: dt.date | None = None
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    author: Author
    recorded_at: AwareDatetime

    @model_validator(mode="after")
    def _kind(self) -> "DocDueAck":
        if (self.kind == "snooze") != (self.until is not None):
            raise ValueError("until: a snooze, and only a snooze, has an until date")
        if (self.kind == "withdraw") != (self.withdraws is not None):
            raise ValueError("withdraws: a withdrawal, and only a withdrawal, names the record it takes back")
        return self


class DocCatalogue(BaseModel):
    """Device models and drugs to add to the catalogue before the records that use them."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    device_models: list[DeviceModel] = []
    drugs: list[Drug] = []


class DocAdvisoryMatch(Record):
    """A device a safety notice concerns, as recorded (issue 18)."""

    device_serial: Annotated[str, Field(min_length=1, max_length=40)]
    tier: Annotated[int, Field(ge=1, le=4)]
    evidence: Annotated[str, Field(min_length=1)]
    matched_on: dt.date
    author: Author
    recorded_at: AwareDatetime


class DocAdvisoryAction(Record):
    """What was done about a safety notice for one device (its acknowledgement)."""

    device_serial: Annotated[str, Field(min_length=1, max_length=40)]
    done_on: dt.date
    actions: list[Annotated[str, Field(min_length=1, max_length=40)]]
    note: str = ""
    author: Author
    recorded_at: AwareDatetime


class DocAdvisory(AdvisoryIn):
    """A safety notice with its recorded matches and acknowledgements (issue 18)."""

    author: Author
    recorded_at: AwareDatetime
    matches: list[DocAdvisoryMatch] = []
    acknowledgements: list[DocAdvisoryAction] = []


class Document(Record):
    """The devicelog import/export document, version 1."""

    format: Literal["devicelog"]
    version: Literal[1]
    catalogue: DocCatalogue = DocCatalogue()
    #: Safety notices (issue 18), after the catalogue; their devices are named by serial
    #: and must be in the database or the document.  Absent from a document without any.
    advisories: list[DocAdvisory] = []
    patients: list[DocPatient] = []
    devices: list[DocDevice] = []
    events: list[DocEvent] = []
    due_acks: list[DocDueAck] = []


# --------------------------------------------------------------------------- JSON paths


def json_path(prefix: str, field: str | Iterable[Any] = "") -> str:
    """``$.events[12]`` + ``data.program.drugs.0.drug`` -> ``$.events[12].data.program.drugs[0].drug``."""
    parts = field.split(".") if isinstance(field, str) else list(field)
    path = prefix
    for p in parts:
        if p == "" or p is None:
            continue
        if isinstance(p, int) or (isinstance(p, str) and p.isdigit()):
            path += f"[{p}]"
        else:
            path += f".{p}"
    return path


_KINDS = {k.value for k in EventKind}


def _validation_problems(error: ValidationError, prefix: str) -> list[Problem]:
    found = []
    for e in error.errors():
        loc = list(e["loc"])
        # A discriminated union puts the chosen tag into the location: data.refill.volume_ml.
        loc = [p for i, p in enumerate(loc) if not (i > 0 and loc[i - 1] == "data" and p in _KINDS)]
        message = e["msg"].removeprefix("Value error, ")
        found.append(Problem(json_path(prefix, loc), e.get("input"), message))
    return found


def _prefixed(problems: Iterable[Problem], prefix: str) -> list[Problem]:
    return [Problem(json_path(prefix, p.field), p.value, p.message) for p in problems]


# --------------------------------------------------------------------------- reading


def _json_error(source: str, text: str, pos: int, lineno: int, colno: int, msg: str, at_eof: bool) -> InputError:
    # Past the last character, or a string never closed: the text ends inside the document.
    at_end = at_eof and (pos >= len(text.rstrip()) or msg.startswith("Unterminated string"))
    why = (
        "the file ends in the middle of the document (truncated?)"
        if at_end
        else f"not valid JSON at line {lineno}, column {colno}: {msg}"
    )
    return InputError([Problem("$", None, f"{source}: {why}")])


class _Unreadable(ValueError):
    """A JSON value devicelog refuses to read (issue 19): a key given twice in one object,
    NaN or Infinity, a number of more than ``MAX_NUMBER_CHARS`` characters."""


#: The longest number a document may hold, in characters (a 5,000-digit one made int() raise).
MAX_NUMBER_CHARS = 40


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:  # json keeps the last: "name": "Zoe Silva", "name": "Evil Twin" → Evil Twin
            raise _Unreadable(f"the key {key!r} is given twice in one object")
        found[key] = value
    return found


def _number(convert):
    def parse(text: str):
        if len(text) > MAX_NUMBER_CHARS:
            raise _Unreadable(f"a number of {len(text):,} characters (at most {MAX_NUMBER_CHARS})")
        return convert(text)

    return parse


def _constant(name: str):
    raise _Unreadable(f"{name} is not a number a record can hold")


#: The decoder of every document: the standard library's, refusing what ``_Unreadable`` says.
DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_int=_number(int), parse_float=_number(float),
                           parse_constant=_constant)


def _unreadable_why(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "values nested too deeply"
    return str(exc)


def parse_text(text: str, source: str = "the file") -> Any:
    """JSON text to values; a truncated or non-JSON file is refused with where it broke.
    A UTF-8 byte-order mark at the start is read as nothing."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InputError([Problem("$", None, f"{source} is empty; expected a devicelog JSON document")])
    try:
        return DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise _json_error(source, text, exc.pos, exc.lineno, exc.colno, exc.msg, True) from None
    except (_Unreadable, RecursionError) as exc:
        raise InputError([Problem("$", None, f"{source}: not read: {_unreadable_why(exc)}")]) from None


_NOT_SPACE = re.compile(r"[^ \t\n\r]")
#: The sections read item by item; any other top-level value is small and read whole.
SECTIONS = ("patients", "devices", "events")


class DocumentReader:
    """Reads a document from a text stream one top-level item at a time.

    Why not ``json.load``: a 10,000-patient clinic is a 190 MB document, about 1.3 GB
    as Python objects, and a 100,000-patient one ten times that.  The reader walks
    the top-level object itself (``{``, keys, ``:``, ``,``, ``[``) and hands every
    value (each item of ``patients`` / ``devices`` / ``events``, and any other
    top-level value whole) to the standard library's C decoder
    (``JSONDecoder.raw_decode``) over a window of the text that is read in 1 MB
    chunks, so memory holds one chunk and one item, the values are exactly what
    ``json.load`` gives, and it runs at ``json.load`` speed (a streaming parser
    such as ijson builds items in Python or needs a pass per section).  Works on a
    pipe (standard input): the file is read once.

    :meth:`entries` yields ``("item", section, index, value, text)`` for the items of
    the three sections (``text`` is the item's own JSON), ``("value", key, value)``
    for any other top-level value (and for a section that is not a list), and
    ``("duplicate", key)`` for a key given twice.  Broken JSON raises ``InputError``
    with the line and column, or "truncated" when the text ends inside the document.
    """

    CHUNK = 1 << 20

    def __init__(self, stream: IO[str], source: str = "the file", on_read: Callable[[int], None] = None):
        self.stream = stream
        self.source = source
        self.on_read = on_read or _noop
        self.buf = ""
        self.pos = 0  # next character to read, in buf
        self.offset = 0  # characters of the stream before buf[0]
        self.lines = 0  # newlines before buf[0]
        self.last_newline = -1  # absolute position of the last newline before buf[0]
        self.eof = False
        self.size = self.CHUNK
        self.decode = DECODER.raw_decode

    # ---- the window
    def _fill(self) -> bool:
        """Read another chunk (dropping what was consumed); False at the end of the stream."""
        if self.eof:
            return False
        chunk = self.stream.read(self.size)
        if not chunk:
            self.eof = True
            return False
        self.on_read(len(chunk))
        dropped = self.buf[: self.pos]
        newlines = dropped.count("\n")
        if newlines:
            self.lines += newlines
            self.last_newline = self.offset + dropped.rfind("\n")
        self.offset += self.pos
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def _peek(self) -> str:
        """The next character that is not white space ('' at the end of the stream)."""
        while True:
            found = _NOT_SPACE.search(self.buf, self.pos)
            if found is not None:
                self.pos = found.start()
                return self.buf[self.pos]
            self.pos = len(self.buf)
            if not self._fill():
                return ""

    def _value(self) -> tuple[Any, str]:
        """Decode the value at the reader's position: (value, its JSON text)."""
        size = self.size
        try:
            while True:
                try:
                    value, end = self.decode(self.buf, self.pos)
                except json.JSONDecodeError as exc:
                    if self._fill():  # the value may go on in the next chunk
                        self.size *= 2  # a large value: read more at a time
                        continue
                    raise self._at_end(exc.pos, exc.msg) from None
                except (_Unreadable, RecursionError) as exc:
                    raise self._at_end(self.pos, f"the value here is refused: {_unreadable_why(exc)}") from None
                if end == len(self.buf) and self._fill():
                    continue  # a number at the window's end may go on
                text = self.buf[self.pos : end]
                self.pos = end
                return value, text
        finally:
            self.size = size

    def _at_end(self, pos: int, msg: str) -> InputError:
        """A JSON error with the whole stream read (so "truncated" can be told apart)."""
        before = self.buf.count("\n", 0, pos)
        lineno = self.lines + before + 1
        nl = self.buf.rfind("\n", 0, pos)
        colno = pos - nl if nl >= 0 else self.offset + pos - self.last_newline
        return _json_error(self.source, self.buf, pos, lineno, colno, msg, self.eof)

    def _expect(self, allowed: str, msg: str) -> str:
        c = self._peek()
        if c == "" or c not in allowed:
            raise self._at_end(self.pos, msg)
        self.pos += 1
        return c

    # ---- the document
    def entries(self) -> Iterator[tuple]:
        if not self.buf:
            self._fill()
        if self.buf.startswith("\ufeff"):  # a UTF-8 byte-order mark: read as nothing
            self.pos = 1
        first = self._peek()
        if first == "":
            raise InputError([Problem("$", None, f"{self.source} is empty; expected a devicelog JSON document")])
        if first != "{":
            if first in '["-0123456789tfn':
                raise InputError([Problem("$", None, _NOT_AN_OBJECT)])
            raise self._at_end(self.pos, "Expecting value")
        self.pos += 1
        seen: set[str] = set()
        if self._peek() == "}":
            self.pos += 1
        else:
            while True:
                if self._peek() != '"':
                    raise self._at_end(self.pos, "Expecting property name enclosed in double quotes")
                key, _ = self._value()
                self._expect(":", "Expecting ':' delimiter")
                if key in seen:
                    yield ("duplicate", key)
                seen.add(key)
                if key in SECTIONS and self._peek() == "[":
                    self.pos += 1
                    yield ("value", key, [])
                    index = 0
                    if self._peek() == "]":
                        self.pos += 1
                    else:
                        while True:
                            if self._peek() == "":
                                raise self._at_end(self.pos, "Expecting value")
                            value, text = self._value()
                            yield ("item", key, index, value, text)
                            index += 1
                            if self._expect(",]", "Expecting ',' delimiter") == "]":
                                break
                else:
                    if self._peek() == "":
                        raise self._at_end(self.pos, "Expecting value")
                    value, _ = self._value()
                    yield ("value", key, value)
                if self._expect(",}", "Expecting ',' delimiter") == "}":
                    break
        if self._peek() != "":
            raise self._at_end(self.pos, "Extra data")


_NOT_AN_OBJECT = 'a devicelog document is a JSON object {"format": "devicelog", ...}'


def _dict_entries(raw: Any) -> Iterator[tuple]:
    """:meth:`DocumentReader.entries` of an already parsed document."""
    if not isinstance(raw, dict):
        raise InputError([Problem("$", None, _NOT_AN_OBJECT)])
    for key, value in raw.items():
        if key in SECTIONS and isinstance(value, list):
            yield ("value", key, [])
            for index, item in enumerate(value):
                yield ("item", key, index, item, None)
        else:
            yield ("value", key, value)


def _check_header(raw: Any) -> None:
    if not isinstance(raw, dict):
        raise InputError([Problem("$", None, _NOT_AN_OBJECT)])
    problems = []
    if raw.get("format") != FORMAT:
        problems.append(Problem("$.format", raw.get("format"), f"must be {FORMAT!r}: this is not a devicelog document"))
    elif raw.get("version") != VERSION:
        problems.append(
            Problem("$.version", raw.get("version"), f"this devicelog reads version {VERSION} documents only")
        )
    unknown = sorted(set(raw) - set(Document.model_fields))
    for key in unknown:
        problems.append(Problem(f"$.{key}", None, "unknown top-level field"))
    for key in SECTIONS:
        if key in raw and not isinstance(raw[key], list):
            problems.append(Problem(f"$.{key}", None, "must be a list"))
    if "catalogue" in raw and not isinstance(raw["catalogue"], dict):
        problems.append(Problem("$.catalogue", None, "must be an object"))
    if problems:
        raise InputError(problems)


# --------------------------------------------------------------------------- import


@dataclass(frozen=True)
class ImportSummary:
    patients: int
    devices: int
    events: int
    catalogue_entries: int


def _noop(_n: int = 1) -> None:
    return None


def import_document(
    session: Session,
    raw: Any,
    *,
    author: str,
    today: dt.date,
    tick: Callable[[int], None] = _noop,
    audit_action: str = "import",
    settings: Settings | None = None,
) -> ImportSummary:
    """Add a parsed document to the database in ``session``; ``InputError`` lists every refusal.

    Call inside ``store.db.write_session`` so that a refusal rolls everything back.
    The session is flushed and its objects let go (expunged) as the import goes, so that
    it does not hold the clinic.  ``tick(n)`` is called as items are checked (twice per item: validation, then writing).
    The due table (``store.forecasts``) is refreshed at the end, in bulk, for every
    device the document added or gave events to.
    """
    return _run_import(session, _dict_entries(raw), author=author, today=today, read_tick=tick,
                       phase=lambda total: tick, audit_action=audit_action, settings=settings)


def import_stream(
    session: Session,
    stream: IO[str],
    *,
    author: str,
    today: dt.date,
    source: str = "the file",
    phases: Callable[[str, float], Callable[[float], None]] | None = None,
    size: int | None = None,
    audit_action: str = "import",
    settings: Settings | None = None,
) -> ImportSummary:
    """Read a document from a text stream and add it, like :func:`import_document`.

    ``phases(label, total)`` (optional) is called at the start of each phase and
    returns that phase's ``tick``: reading (``total`` = ``size``, the stream's length
    in characters if known, ticked in characters read), then writing (``total`` =
    the number of items, ticked per item).
    """
    phases = phases or (lambda label, total: _noop)
    read_tick = phases(f"Reading {source}", size or 0)
    reader = DocumentReader(stream, source, on_read=read_tick)
    return _run_import(session, reader.entries(), author=author, today=today, read_tick=_noop,
                       phase=lambda total: phases(f"Importing {source}", total), audit_action=audit_action,
                       settings=settings)


def _run_import(session: Session, entries, *, author, today, read_tick, phase, audit_action, settings=None) -> ImportSummary:
    from devicelog.store import forecasts

    spool = _Spool()
    try:
        return _import(session, spool, entries, author=author, today=today, read_tick=read_tick, phase=phase,
                       audit_action=audit_action, settings=settings or Settings())
    finally:
        spool.close()
        session.info.pop(forecasts.DEFER_KEY, None)


class _Spool:
    """The document's items, validated, in a private temporary SQLite file.

    Import must replay the items in an order the file does not have (clinical order:
    devices and events by date, amendments by when they were recorded), check refs
    across the whole document, and may meet the sections in any order (a hand-written
    file may put events before devices).  Holding 360,000 validated events in memory
    took 3.7 GB; instead each item's JSON text goes here with the few values the
    order and the cross-checks need, and SQLite sorts and joins on disk
    (``sqlite3.connect("")``: a private file SQLite deletes on close; its page cache
    is 16 MB).  The replay validates each item again from its text (cheaper than
    keeping the objects, and the same input gives the same record).
    """

    BATCH = 2000

    def __init__(self) -> None:
        import sqlite3

        self.db = sqlite3.connect("", isolation_level=None)
        self.db.execute("PRAGMA cache_size = -16000")
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA synchronous = OFF")
        self.db.execute("BEGIN")
        self.db.executescript(
            """
            CREATE TABLE patients (idx INTEGER PRIMARY KEY, valid INTEGER, mrn TEXT, body TEXT);
            CREATE TABLE devices (idx INTEGER PRIMARY KEY, valid INTEGER, serial TEXT, implanted_on TEXT,
                                  repl INTEGER, instant TEXT, status TEXT, body TEXT);
            CREATE TABLE events (idx INTEGER PRIMARY KEY, valid INTEGER, ref TEXT, amends TEXT, serial TEXT,
                                 occurred_on TEXT, instant TEXT, body TEXT, reviews TEXT);
            """
        )
        self.pending: dict[str, list[tuple]] = {name: [] for name in SECTIONS}
        self.counts = dict.fromkeys(SECTIONS, 0)

    def add(self, section: str, row: tuple) -> None:
        rows = self.pending[section]
        rows.append(row)
        self.counts[section] += 1
        if len(rows) >= self.BATCH:
            self.flush(section)

    def flush(self, section: str | None = None) -> None:
        for name in (section,) if section else SECTIONS:
            rows = self.pending[name]
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                self.db.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
                rows.clear()

    def finish(self) -> None:
        """All items are in: index what the cross-checks and the replay look up."""
        self.flush()
        self.db.executescript(
            """
            CREATE INDEX events_ref ON events (ref);
            CREATE TABLE first_ref AS SELECT ref, MIN(idx) AS idx FROM events WHERE valid AND ref IS NOT NULL GROUP BY ref;
            CREATE UNIQUE INDEX first_ref_ref ON first_ref (ref);
            CREATE TABLE last_serial AS SELECT serial, MAX(idx) AS idx FROM devices WHERE valid GROUP BY serial;
            CREATE UNIQUE INDEX last_serial_serial ON last_serial (serial);
            """
        )

    def rows(self, sql: str, params: tuple = ()) -> Iterator[tuple]:
        """A query's rows, fetched in chunks (the caller may query meanwhile)."""
        cursor = self.db.execute(sql, params)
        while True:
            chunk = cursor.fetchmany(1000)
            if not chunk:
                return
            yield from chunk

    def close(self) -> None:
        self.db.close()  # (again is harmless)


_FAR_KEY = "9999-12-31T23:59:59.999999"


def _instant_key(value: dt.datetime | None) -> str:
    """A sortable text for an instant (UTC), the latest for none: the replay's tie-break."""
    if value is None:
        return _FAR_KEY
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")


def _body(item: Any, text: str | None, model: BaseModel) -> str:
    if text is not None:
        return text
    try:
        return json.dumps(item, ensure_ascii=False)
    except (TypeError, ValueError):  # Python values (dates...) in a parsed document
        return json.dumps(model.model_dump(mode="json"), ensure_ascii=False)


def _spool_item(spool: _Spool, section: str, i: int, item: Any, text: str | None, problems: list[Problem],
                dates: Callable[[BaseModel], list[Problem]] = lambda valid: []) -> None:
    """Validate one item through its record model and its ``dates`` (every date, including
    ``recorded_at``, in the clinic's range: an instant near the end of the calendar cannot
    even be turned to UTC), and keep it (or its key, when refused)."""
    model = {"patients": DocPatient, "devices": DocDevice, "events": DocEvent}[section]
    try:
        valid = model.model_validate(item)
        refused = _prefixed(dates(valid), f"$.{section}[{i}]")
    except ValidationError as exc:
        valid, refused = None, _validation_problems(exc, f"$.{section}[{i}]")
    if refused:
        problems += refused
        key = {"patients": "mrn", "devices": "serial", "events": "ref"}[section]
        raw_key = item.get(key) if isinstance(item, dict) and isinstance(item.get(key), str) else None
        if section == "patients":
            spool.add(section, (i, 0, raw_key, None))
        elif section == "devices":
            spool.add(section, (i, 0, raw_key, None, None, None, None, None))
        else:
            spool.add(section, (i, 0, raw_key, None, None, None, None, None, None))
        return
    body = _body(item, text, valid)
    if section == "patients":
        spool.add(section, (i, 1, valid.mrn, body))
    elif section == "devices":
        spool.add(section, (i, 1, valid.serial, valid.implanted_on.isoformat(), int(valid.replaces_serial is not None),
                            _instant_key(valid.recorded_at), valid.status.value, body))
    else:
        spool.add(section, (i, 1, valid.ref, valid.amends, valid.device_serial, valid.occurred_on.isoformat(),
                            _instant_key(valid.recorded_at), body, valid.reviews))


class _Lookups(services.Lookups):
    """``services.Lookups`` that keeps at most ``limit`` device rows: past that it flushes
    the session and lets the rows go (a later lookup reads the device again, with the
    status the import gave it), so the session's identity map stays small."""

    def __init__(self, limit: int = 20_000) -> None:
        super().__init__()
        self.limit = limit

    def device(self, session: Session, serial: str) -> tables.Device | None:
        if serial not in self.devices and len(self.devices) >= self.limit:
            session.flush()
            for row in self.devices.values():
                if row in session:
                    session.expunge(row)
            self.devices.clear()
        return super().device(session, serial)

    def remember(self, row: tables.Device) -> None:
        if len(self.devices) < self.limit:
            self.devices[row.serial] = row


#: Rows written (and audited) at a time.
WRITE_BATCH = 5000
#: Events whose devices' due rows are refreshed at a time, at the end of an import.
REFRESH_EVENTS = 20_000


def _import(session: Session, spool: _Spool, entries, *, author: str, today: dt.date, read_tick, phase,
            audit_action: str, settings: Settings) -> ImportSummary:
    from devicelog.store import audit, forecasts

    # 1. Read: every item through its record model, into the spool; other top-level values kept.
    header: dict[str, Any] = {}
    duplicates: list[Problem] = []
    found: dict[str, list[Problem]] = {name: [] for name in SECTIONS}
    for entry in entries:
        if entry[0] == "item":
            _, section, i, item, text = entry
            _spool_item(spool, section, i, item, text, found[section],
                        lambda valid: services.date_problems(valid, today=today, settings=settings))
            read_tick(1)
        elif entry[0] == "value":
            header[entry[1]] = entry[2]
        else:
            duplicates.append(Problem(f"$.{entry[1]}", None, "is given more than once"))
    _check_header(header)
    if duplicates:
        raise InputError(duplicates)
    spool.finish()
    db = spool.db
    problems: list[Problem] = []
    catalogue = None
    try:
        catalogue = DocCatalogue.model_validate(header.get("catalogue", {}))
    except ValidationError as exc:
        problems += _validation_problems(exc, "$.catalogue")
    advisories: list[DocAdvisory] = []
    if not isinstance(header.get("advisories", []), list):
        problems.append(Problem("$.advisories", None, "must be a list"))
    else:
        for i, item in enumerate(header.get("advisories", [])):
            try:
                advisories.append(DocAdvisory.model_validate(item))
            except ValidationError as exc:
                problems += _validation_problems(exc, f"$.advisories[{i}]")
    for name in SECTIONS:
        problems += found[name]
    del found
    tick = phase(sum(spool.counts.values()))

    # 2. Refs: unique, and every amendment names an original in the document.
    for i, ref, first in spool.rows(
        "SELECT e.idx, e.ref, f.idx FROM events e JOIN first_ref f ON f.ref = e.ref "
        "WHERE e.valid AND e.idx <> f.idx ORDER BY e.idx"
    ):
        problems.append(Problem(f"$.events[{i}].ref", ref, f"is also the ref of $.events[{first}]"))
    refused_refs = {r for (r,) in db.execute("SELECT DISTINCT ref FROM events WHERE NOT valid AND ref IS NOT NULL")}
    for i, amends, target, target_amends in spool.rows(
        "SELECT a.idx, a.amends, f.idx, t.amends FROM events a LEFT JOIN first_ref f ON f.ref = a.amends "
        "LEFT JOIN events t ON t.idx = f.idx WHERE a.valid AND a.amends IS NOT NULL ORDER BY a.idx"
    ):
        if target is None and amends not in refused_refs:
            problems.append(Problem(f"$.events[{i}].amends", amends, "no event in the document has this ref"))
        elif target is not None and target_amends is not None:
            problems.append(Problem(f"$.events[{i}].amends", amends, "names an amendment; amend the original event instead"))
    # Rule 26: every refill review names an event of the document (that it is a refill of
    # the same device, dated before, is checked in step 5).
    review_target: dict[int, int] = {}  # doc index of a review -> doc index of the refill it names
    for i, reviews, target in spool.rows(
        "SELECT r.idx, r.reviews, f.idx FROM events r LEFT JOIN first_ref f ON f.ref = r.reviews "
        "WHERE r.valid AND r.reviews IS NOT NULL ORDER BY r.idx"
    ):
        if target is None and reviews not in refused_refs:
            problems.append(Problem(f"$.events[{i}].reviews", reviews, "no event in the document has this ref"))
        elif target is not None:
            review_target[i] = target
    # The events an amendment or a review names: kept (device id, checked event, new row id) for step 5.
    targets = {
        t for (t,) in db.execute(
            "SELECT DISTINCT f.idx FROM events a JOIN first_ref f ON f.ref = a.amends WHERE a.valid AND a.amends IS NOT NULL"
        )
    }
    targets |= set(review_target.values())
    # Issue 14.2: acknowledgements and snoozes, and the events their items came from.
    doc_acks, ack_sources = _read_acks(header.get("due_acks"), db, problems)
    targets |= set(ack_sources.values())

    # 3. Catalogue additions.
    catalogue_before = forecasts.catalogue_hash(session)
    session.info[forecasts.DEFER_KEY] = set()  # the use cases below leave the due table to the end
    added_catalogue = 0
    session.info.pop("devicelog.catalogue_tightened", None)
    if catalogue is not None:
        changes: list[tuple[str, Any]] = []
        added_catalogue = _add_catalogue(session, catalogue, problems, changes)
        if not problems:
            _audit_rows(session, audit_action, author, changes)

    # 4. Patients, in document order, through services.add_patients (add_patient's check
    #    and audit, WRITE_BATCH patients per query, flush and run of audit entries).
    added_patients = 0
    refused_mrns: set[str] = set()
    accepted_mrns: set[str] = set()
    batch: list[tuple[int, DocPatient]] = []

    def write_patients() -> None:
        nonlocal added_patients, problems
        if not batch:
            return
        results = services.add_patients(
            session=session,
            patients=[(PatientIn(**p.model_dump(exclude={"author", "recorded_at"})), p.author or author) for _, p in batch],
            today=today,
            settings=settings,
        )
        rows = []
        for (i, p), result in zip(batch, results):
            tick(1)
            if not isinstance(result, tables.Patient):
                problems += _prefixed(result, f"$.patients[{i}]")
                refused_mrns.add(p.mrn)
                continue
            if p.recorded_at is not None:
                result.recorded_at = p.recorded_at.astimezone(dt.timezone.utc)
            added_patients += 1
            accepted_mrns.add(p.mrn)
            rows.append(result)
        session.flush()
        if not problems:
            _audit_rows(session, audit_action, author, [("patient", row) for row in rows])
        for row in rows:
            session.expunge(row)
        batch.clear()

    for i, body in spool.rows("SELECT idx, body FROM patients WHERE valid ORDER BY idx"):
        batch.append((i, DocPatient.model_validate(json.loads(body))))
        if len(batch) >= WRITE_BATCH:
            write_patients()
    write_patients()
    refused_mrns |= {m for (m,) in db.execute("SELECT mrn FROM patients WHERE NOT valid AND mrn IS NOT NULL")}
    refused_mrns -= accepted_mrns  # a refused duplicate leaves the first one standing
    del accepted_mrns

    # 5. Devices and original events replayed in clinical order (a device on its implant
    #    day before that day's events; an event on or before its device's implant day just
    #    after the device), then amendments and voids in the order they were recorded.
    device_ids: dict[int, int] = {}  # doc index -> new device id
    unchecked_serials = {s for (s,) in db.execute("SELECT serial FROM devices WHERE NOT valid AND serial IS NOT NULL")}
    lookups = _Lookups()  # devices, models and drug codes read once for the whole import
    touched: set[int] = set()  # devices given events
    kept: dict[int, tuple[int, EventIn]] = {}  # amended events that passed: doc index -> (device id, event)
    id_of: dict[int, int] = {}  # amended events written: doc index -> row id
    pending: list[tuple[int, dict]] = []
    written = 0
    skipped = 0
    now = tables.utcnow()
    E = tables.EventRow.__table__

    def write_events() -> None:
        nonlocal written
        if pending and not problems:
            conn = session.connection()
            rows = [row for _, row in pending]
            ids = conn.execute(E.insert().returning(E.c.id, sort_by_parameter_order=True), rows).scalars().all()
            for (i, row), new_id in zip(pending, ids):
                if i in targets:
                    id_of[i] = new_id
            audit.append(
                session,
                action=audit_action,
                author=author,
                changes=[audit.Change("event", new_id, None, event_audit_values({"id": new_id, **row})) for row, new_id in zip(rows, ids)],
            )
            written += len(rows)
        pending.clear()

    def event_row(device_id: int, event: EventIn, e: DocEvent, amends_id: int | None) -> dict:
        return {
            "device_id": device_id,
            "kind": event.data.kind,
            "occurred_on": event.occurred_on,
            "author": e.author,
            "recorded_at": e.recorded_at.astimezone(dt.timezone.utc) if e.recorded_at else now,
            "data": event.data.model_dump(mode="json"),
            "amends_id": amends_id,
            "amendment_reason": e.amendment_reason.strip() if e.amends is not None else None,
            "voided": e.voided,
        }

    def review_refill_id(i: int, e: DocEvent) -> int | None:
        """The row id of the refill review ``i`` names (rule 26), written first if it is
        still pending; None (with the problem, or skipped) when it cannot be had."""
        nonlocal skipped
        target = review_target[i]
        where = f"$.events[{i}]"
        if target not in kept:
            if problems:
                skipped += 1  # most likely the refill was refused, and reported
            else:
                problems.append(Problem(f"{where}.reviews", e.reviews, "names no refill dated on or before this review"))
            return None
        _, refill = kept[target]
        if refill.data.kind != "refill":
            problems.append(Problem(f"{where}.reviews", e.reviews, f"names a {refill.data.kind.replace('_', ' ')}, not a refill"))
            return None
        if refill.device_serial != e.device_serial:
            problems.append(Problem(f"{where}.reviews", e.reviews, f"names a refill of device {refill.device_serial!r}, not {e.device_serial!r}"))
            return None
        if target not in id_of and not problems:
            write_events()
        return id_of.get(target)  # None once the import is refused: nothing more is written

    timeline = """
        SELECT d.implanted_on AS day, 1 AS prio, d.repl AS repl, d.instant AS instant, d.idx AS idx, 0 AS what, d.body
        FROM devices d WHERE d.valid
        UNION ALL
        SELECT CASE WHEN d.implanted_on >= e.occurred_on THEN d.implanted_on ELSE e.occurred_on END,
               CASE WHEN d.implanted_on >= e.occurred_on THEN 2 ELSE 0 END, 0, e.instant, e.idx, 1, e.body
        FROM events e LEFT JOIN last_serial l ON l.serial = e.serial LEFT JOIN devices d ON d.idx = l.idx
        WHERE e.valid AND e.amends IS NULL
        ORDER BY day, prio, repl, instant, idx, what
    """
    devices: list[tuple[int, DocDevice, DeviceIn]] = []

    def write_devices() -> None:
        """The devices met since the last event, through services.add_devices: in the
        timeline, the devices implanted on a day come together (after that day's other
        events, before their own), so they are checked and written a day's run at a time."""
        nonlocal problems
        if not devices:
            return
        results = services.add_devices(
            session=session,
            devices=[
                (device, d.author or author, d.recorded_at.astimezone(dt.timezone.utc) if d.recorded_at else None)
                for _, d, device in devices
            ],
            today=today,
            settings=settings,
        )
        for (i, d, _), result in zip(devices, results):
            if not isinstance(result, tables.Device):
                problems += _prefixed(result, f"$.devices[{i}]")
                unchecked_serials.add(d.serial)
                continue
            device_ids[i] = result.id
            lookups.remember(result)  # its events need not read it again
        devices.clear()

    for _day, _prio, _repl, _instant, i, what, body in spool.rows(timeline):
        tick(1)
        if what == 0:
            d = DocDevice.model_validate(json.loads(body))
            if d.patient_mrn in refused_mrns:
                skipped += 1
                unchecked_serials.add(d.serial)
                continue
            values = d.model_dump(exclude={"author", "recorded_at"})
            if values["status"] in (DeviceStatus.explanted, DeviceStatus.replaced):
                values["status"] = DeviceStatus.active  # its events below bring it to its present status
            devices.append((i, d, DeviceIn(**values)))
            if len(devices) >= WRITE_BATCH:
                write_devices()
            continue
        write_devices()
        e = DocEvent.model_validate(json.loads(body))
        if e.device_serial in unchecked_serials:
            skipped += 1
            continue
        if isinstance(e.data, RefillReviewData):
            if i not in review_target:
                continue  # its reviews ref names nothing: reported in step 2
            refill_id = review_refill_id(i, e)
            if refill_id is None:
                continue
            e = e.model_copy(update={"data": e.data.model_copy(update={"refill_event_id": refill_id})})
        event = _event_in(e)
        device, refused = services.check_event(session=session, event=event, today=today, lookups=lookups, settings=settings)
        if refused:
            problems += _prefixed(refused, f"$.events[{i}]")
            continue
        # An explant or lead removal ends the device's service, as when it is recorded by hand,
        # so a later refill on it is refused.  (The audit entry is the device's final row, below.)
        services._apply_to_device(session, device, event)
        touched.add(device.id)
        if i in targets:
            kept[i] = (device.id, event)
        if not problems:
            pending.append((i, event_row(device.id, event, e, None)))
            if len(pending) >= WRITE_BATCH:
                write_events()
    write_devices()
    write_events()

    # Amendments and voids, in the order they were recorded: the checks of services.amend_event
    # and void_event (a reason; the same kind; the event's own checks but the device's status).
    for i, body, target in spool.rows(
        "SELECT a.idx, a.body, f.idx FROM events a LEFT JOIN first_ref f ON f.ref = a.amends "
        "WHERE a.valid AND a.amends IS NOT NULL ORDER BY a.instant, a.idx"
    ):
        tick(1)
        e = DocEvent.model_validate(json.loads(body))
        if target is None or target not in kept:
            skipped += target is not None or e.amends in refused_refs  # the original was refused and reported
            continue
        device_id, original = kept[target]
        where = f"$.events[{i}]"
        if e.device_serial != original.device_serial:
            problems.append(Problem(f"{where}.device_serial", e.device_serial, f"the amended event is on device {original.device_serial!r}"))
            continue
        if not (e.amendment_reason or "").strip():
            what = "say why the entry is void" if e.voided else "an amendment must say why"
            problems.append(Problem(f"{where}.amendment_reason", e.amendment_reason, what))
            continue
        if e.data.kind != original.data.kind:
            problems.append(Problem(f"{where}.data.kind", e.data.kind, f"the amended event is a {original.data.kind}"))
            continue
        if isinstance(e.data, RefillReviewData):  # an amended review keeps the refill it reviews
            if review_target.get(i) != review_target.get(target):
                problems.append(Problem(f"{where}.reviews", e.reviews, "an amended review names the refill its original names"))
                continue
            e = e.model_copy(update={"data": e.data.model_copy(update={"refill_event_id": original.data.refill_event_id})})
        if e.voided:
            event = original  # a void keeps the original's date and values (services.void_event)
        else:
            event = _event_in(e)
            _, refused = services.check_event(session=session, event=event, today=today, lookups=lookups, settings=settings)
            refused = [p for p in refused if p.field != "device_serial"]  # a since-explanted device may be amended
            if refused:
                problems += _prefixed(refused, where)
                continue
        if i in targets:
            kept[i] = (device_id, event)
        touched.add(device_id)
        if not problems:
            pending.append((i, event_row(device_id, event, e, id_of.get(target))))
            if len(pending) >= WRITE_BATCH:
                write_events()
    write_events()
    del kept

    # 6. Each device's present status: its events decide explanted/replaced; the document may
    #    say explanted or replaced without such an event (recorded so when it was added).
    #    Then every added device is audited as it finally is.
    wanted_status = {}
    for i, status in spool.rows("SELECT idx, status FROM devices WHERE valid ORDER BY idx"):
        if i in device_ids:
            wanted_status[device_ids[i]] = (i, status)
    ids = sorted(wanted_status)
    session.flush()
    lookups.devices.clear()
    for start in range(0, len(ids), WRITE_BATCH):
        rows = session.execute(select(tables.Device).where(tables.Device.id.in_(ids[start : start + WRITE_BATCH]))).scalars().all()
        for row in rows:
            i, wanted = wanted_status[row.id]
            if wanted != row.status:
                if row.status in (DeviceStatus.explanted.value, DeviceStatus.replaced.value):
                    problems.append(
                        Problem(f"$.devices[{i}].status", wanted, f"contradicts the device's record, which makes it {row.status}")
                    )
                    continue
                row.status = wanted
                session.add(row)
        session.flush()
        if not problems:
            _audit_rows(session, audit_action, author, [("device", row) for row in sorted(rows, key=lambda r: r.id)])
        for row in rows:
            session.expunge(row)
    del wanted_status
    _write_acks(session, doc_acks, ack_sources, id_of, problems, author=author, audit_action=audit_action)
    del id_of

    if problems:
        if skipped:
            problems.append(
                Problem("$", None, f"{skipped} more items were not checked because the patient, device or event they depend on was refused")
            )
        raise InputError(problems)

    touched |= _import_advisories(session, advisories, audit_action)

    spool.close()  # before the due table's refresh, which needs memory of its own
    # The due table, in this same transaction: every device added or given events.
    if session.info.pop("devicelog.catalogue_tightened", False):
        # A drug's limits tightened (issue 18.2): every pump's warnings may change, so
        # every device is refreshed below and the table stays in step with the catalogue.
        touched |= set(session.execute(select(tables.Device.__table__.c.id)).scalars())
        added_catalogue = added_catalogue or 1
    if added_catalogue:
        forecasts.catalogue_added(session, catalogue_before)
    touched |= set(device_ids.values())
    touched |= session.info.pop(forecasts.DEFER_KEY, set())  # devices the use cases above changed
    session.flush()
    for chunk in _refresh_chunks(session, touched):
        forecasts.refresh_devices(session, chunk)
        session.flush()
        session.expunge_all()
        gc.collect()
    return ImportSummary(added_patients, len(device_ids), written, added_catalogue)


def _import_advisories(session: Session, advisories: list["DocAdvisory"], audit_action: str) -> set[int]:
    """The document's safety notices with their matches and acknowledgements, as recorded
    (audited like every imported row); returns the devices whose due items they change."""
    from devicelog.store import audit

    if not advisories:
        return set()
    D = tables.Device.__table__
    serials = {m.device_serial for a in advisories for m in [*a.matches, *a.acknowledgements]}
    ids = dict(session.execute(select(D.c.serial, D.c.id).where(D.c.serial.in_(sorted(serials)))).all())
    problems = [
        Problem(f"$.advisories[{i}].{part}[{j}].device_serial", x.device_serial, "no device has this serial")
        for i, a in enumerate(advisories) for part, xs in (("matches", a.matches), ("acknowledgements", a.acknowledgements))
        for j, x in enumerate(xs) if x.device_serial not in ids
    ]
    if problems:
        raise InputError(problems)
    touched: set[int] = set()
    for a in advisories:
        values = a.model_dump(exclude={"author", "recorded_at", "matches", "acknowledgements"})
        values["rules"] = a.rules.model_dump(mode="json")
        row = tables.AdvisoryRow(**values, author=a.author, recorded_at=a.recorded_at)
        session.add(row)
        session.flush()
        rows: list = [row]
        for m in a.matches:
            rows.append(tables.AdvisoryMatchRow(advisory_id=row.id, device_id=ids[m.device_serial], tier=m.tier, evidence=m.evidence,
                                                matched_on=m.matched_on, author=m.author, recorded_at=m.recorded_at))
        for x in a.acknowledgements:
            rows.append(tables.AdvisoryActionRow(advisory_id=row.id, device_id=ids[x.device_serial], done_on=x.done_on,
                                                 actions=list(x.actions), note=x.note, author=x.author, recorded_at=x.recorded_at))
        session.add_all(rows[1:])
        session.flush()
        touched |= {r.device_id for r in rows[1:]}
        _audit_rows(session, audit_action, a.author, [(r.__tablename__, r) for r in rows])
    return touched


def _advisories_part(session: Session) -> list[dict]:
    """Every safety notice with its matches and acknowledgements, in import order (the
    order of their content: date imported, then title), devices by serial."""
    A, M, X, D = (tables.AdvisoryRow.__table__, tables.AdvisoryMatchRow.__table__, tables.AdvisoryActionRow.__table__,
                  tables.Device.__table__)
    out = []
    for r in session.execute(select(A).order_by(A.c.recorded_at, A.c.title, A.c.id)):
        item = {
            "title": r.title, "issued_on": r.issued_on.isoformat(), "source": r.source, "reference": r.reference,
            "recommended_action": r.recommended_action, "notice_class": r.notice_class, "rules": r.rules,
            "unparsed": list(r.unparsed or []), "form": r.form, "author": r.author, "recorded_at": _utc(r.recorded_at),
            "matches": [
                {"device_serial": m.serial, "tier": m.tier, "evidence": m.evidence, "matched_on": m.matched_on.isoformat(),
                 "author": m.author, "recorded_at": _utc(m.recorded_at)}
                for m in session.execute(select(M, D.c.serial).join(D, D.c.id == M.c.device_id)
                                         .where(M.c.advisory_id == r.id).order_by(D.c.serial))
            ],
            "acknowledgements": [
                {"device_serial": x.serial, "done_on": x.done_on.isoformat(), "actions": list(x.actions), "note": x.note,
                 "author": x.author, "recorded_at": _utc(x.recorded_at)}
                for x in session.execute(select(X, D.c.serial).join(D, D.c.id == X.c.device_id)
                                         .where(X.c.advisory_id == r.id).order_by(X.c.recorded_at, D.c.serial))
            ],
        }
        out.append(item)
    return out


def _read_acks(raw: Any, db, problems: list[Problem]) -> tuple[list[tuple[int, DocDueAck]], dict[int, int]]:
    """The document's acknowledgements, validated, and the doc index of each one's source event."""
    if raw is None:
        return [], {}
    if not isinstance(raw, list):
        problems.append(Problem("$.due_acks", None, "must be a list"))
        return [], {}
    found: list[tuple[int, DocDueAck]] = []
    sources: dict[int, int] = {}
    seen: set[str] = set()
    for i, item in enumerate(raw):
        try:
            a = DocDueAck.model_validate(item)
        except ValidationError as exc:
            problems += _validation_problems(exc, f"$.due_acks[{i}]")
            continue
        if a.ref in seen:
            problems.append(Problem(f"$.due_acks[{i}].ref", a.ref, "is also the ref of an earlier record"))
        if a.withdraws is not None and a.withdraws not in seen:
            problems.append(Problem(f"$.due_acks[{i}].withdraws", a.withdraws, "no earlier record in due_acks has this ref"))
        seen.add(a.ref)
        if a.source_event is not None:
            row = db.execute("SELECT idx FROM first_ref WHERE ref = ?", (a.source_event,)).fetchone()
            if row is None:
                problems.append(Problem(f"$.due_acks[{i}].source_event", a.source_event, "no event in the document has this ref"))
                continue
            sources[i] = row[0]
        found.append((i, a))
    return found, sources


def _write_acks(session: Session, doc_acks, sources: dict[int, int], id_of: dict[int, int], problems: list[Problem],
                *, author: str, audit_action: str) -> None:
    """Append the acknowledgements (``store.acks``), their item keys in this database's ids."""
    from devicelog.store import acks, audit

    if not doc_acks:
        return
    D = tables.Device.__table__
    serials = sorted({a.device_serial for _, a in doc_acks})
    device_of = dict(session.execute(select(D.c.serial, D.c.id).where(D.c.serial.in_(serials))).all())
    id_of_ref: dict[str, int] = {}
    changes = []
    for i, a in doc_acks:
        device_id = device_of.get(a.device_serial)
        if device_id is None:
            problems.append(Problem(f"$.due_acks[{i}].device_serial", a.device_serial, "no device has this serial"))
            continue
        source_id = id_of.get(sources[i]) if i in sources else None
        if problems or (i in sources and source_id is None):
            continue  # refused already: nothing more is written
        values = {
            "device_id": device_id, "item_key": f"{device_id}:{a.code}:{'' if source_id is None else source_id}",
            "fingerprint": a.fingerprint, "kind": a.kind, "until": a.until,
            "withdraws_id": id_of_ref.get(a.withdraws) if a.withdraws else None, "what": a.what, "due_on": a.due_on,
            "reason": a.reason, "author": a.author, "recorded_at": a.recorded_at,
        }
        new_id = acks.insert(session, values)
        id_of_ref[a.ref] = new_id
        row = session.execute(select(acks.due_ack).where(acks.due_ack.c.id == new_id)).first()
        changes.append(audit.Change("due_ack", new_id, None, audit.row_values(row)))
    if changes and not problems:
        audit.append(session, action=audit_action, author=author, changes=changes)


def _acks_part(session: Session, event_refs: dict[int, str]) -> Iterator[dict]:
    """Every acknowledgement, snooze and withdrawal in the order recorded, named by
    serial, code and source event ref (``DocDueAck``)."""
    from devicelog.store import acks

    D = tables.Device.__table__
    serial_of = dict(session.execute(select(D.c.id, D.c.serial)).all())
    ref_of: dict[int, str] = {}
    for n, a in enumerate(acks.records(session), start=1):
        ref_of[a.id] = f"a{n}"
        _, code, source = a.item_key.split(":", 2)
        item = {"ref": f"a{n}", "device_serial": serial_of[a.device_id], "code": code}
        if source:
            item["source_event"] = event_refs[int(source)]
        item |= {"fingerprint": a.fingerprint, "kind": a.kind}
        if a.until is not None:
            item["until"] = a.until.isoformat()
        if a.withdraws_id is not None:
            item["withdraws"] = ref_of[a.withdraws_id]
        item |= {"what": a.what, "due_on": a.due_on.isoformat() if a.due_on else None, "reason": a.reason,
                 "author": a.author, "recorded_at": _utc(a.recorded_at)}
        yield item


def ack_source_event_ids(session: Session) -> set[int]:
    """The events the acknowledged items came from (their refs are needed in the export)."""
    from devicelog.store import acks

    return {int(k.rsplit(":", 1)[1]) for (k,) in session.execute(select(acks.due_ack.c.item_key)) if not k.endswith(":")}


def _refresh_chunks(session: Session, device_ids: Iterable[int]) -> Iterator[list[int]]:
    """The devices to refresh, in chunks of at most REFRESH_EVENTS events (or one device).

    Each device's due rows depend on that device alone, so refreshing by chunks gives the
    same table.  ``refresh_devices`` loads the histories of 500 devices at a time, and the
    replay gives the oldest devices (the longest histories) the first ids: one call for a
    10,000-patient import peaked 280 MB above the import; chunks by events keep it near
    REFRESH_EVENTS validated events (about 1 KB each)."""
    E = tables.EventRow.__table__
    ids = sorted(device_ids)
    chunk: list[int] = []
    events = 0
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        counts = dict(
            session.execute(select(E.c.device_id, func.count()).where(E.c.device_id.in_(part)).group_by(E.c.device_id)).all()
        )
        for device_id in part:
            n = counts.get(device_id, 0)
            if chunk and events + n > REFRESH_EVENTS:
                yield chunk
                chunk, events = [], 0
            chunk.append(device_id)
            events += n
    if chunk:
        yield chunk


def _event_in(e: DocEvent) -> EventIn:
    return EventIn.model_construct(device_serial=e.device_serial, occurred_on=e.occurred_on, author=e.author, data=e.data)


def _add_catalogue(session: Session, catalogue: DocCatalogue, problems: list[Problem], changes: list) -> int:
    added = 0
    for name, items, row_type, model in (
        ("device_models", catalogue.device_models, tables.DeviceModelRow, DeviceModel),
        ("drugs", catalogue.drugs, tables.DrugRow, Drug),
    ):
        seen = {}
        for i, entry in enumerate(items):
            where = f"$.catalogue.{name}[{i}]"
            if entry.code in seen:
                problems.append(Problem(f"{where}.code", entry.code, f"is also the code of $.catalogue.{name}[{seen[entry.code]}]"))
                continue
            seen[entry.code] = i
            existing = session.get(row_type, entry.code)
            if existing is not None:
                current = model.model_validate(existing.model_dump())
                if current == entry:
                    continue
                # Issue 18.2: a clinic adds or tightens a drug's limits under its code.
                why = entry.tightening_problem(current) if model is Drug else "differs; give it a new code"
                if why is not None:
                    problems.append(Problem(f"{where}.code", entry.code, f"is already in the catalogue and this entry {why}"))
                    continue
                from devicelog.store import audit

                before = audit.row_values(existing)
                existing.limits = [lim.model_dump(mode="json") for lim in entry.limits]
                session.add(existing)
                changes.append((row_type.__tablename__, existing, before))
                session.info["devicelog.catalogue_tightened"] = True
                continue
            row = row_type(**entry.model_dump(mode="json"))
            session.add(row)
            changes.append((row_type.__tablename__, row))
            added += 1
    session.flush()
    return added


def _audit_rows(session: Session, action: str, author: str, changes: list[tuple[str, Any]]) -> None:
    """Audit ORM rows as they now are (the import's entry: their final values)."""
    from devicelog.store import audit

    audit.append(
        session,
        action=action,
        author=author,
        changes=[
            audit.Change(table, row.code if table in ("drug", "device_model") else row.id, before[0] if before else None,
                         audit.row_values(row))
            for table, row, *before in changes
        ],
    )


def event_audit_values(row: dict) -> dict:
    """``audit.row_values(row)`` for an event row whose ``data`` is already plain JSON, faster.

    The audit trail needs every one of hundreds of thousands of rows; walking ``data``
    again is the slow part of ``row_values``.  A test checks both give the same values.
    """
    return {
        **row,
        "occurred_on": row["occurred_on"].isoformat(),
        "recorded_at": row["recorded_at"].astimezone(dt.timezone.utc).isoformat(),
    }


def import_text(engine: Engine, text: str, *, author: str, today: dt.date, source: str = "the file", tick=_noop) -> ImportSummary:
    """Import a document given as text in one transaction (nothing is written on any refusal)."""
    import io

    from devicelog.store.db import write_session

    with write_session(engine) as session:
        return import_stream(session, io.StringIO(text), author=author, today=today, source=source)


def count_items(raw: Any) -> int:
    """How many ticks :func:`import_document` will report for a parsed document."""
    if not isinstance(raw, dict):
        return 0
    n = sum(len(raw.get(k) or []) for k in SECTIONS if isinstance(raw.get(k), list))
    return 2 * n


# --------------------------------------------------------------------------- export


def _utc(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _drop_none(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


#: Rows fetched from the database at a time while exporting.
EXPORT_CHUNK = 2000


def _text_order(session: Session, column):
    """Order text by code point, as Python does, whatever the server's collation."""
    return column.collate("C") if session.get_bind().dialect.name == "postgresql" else column


def _stream(session: Session, query) -> Iterator:
    """Rows of a query fetched in chunks (a server-side cursor on PostgreSQL), never all at once."""
    return session.execute(query.execution_options(yield_per=EXPORT_CHUNK))


def _catalogue_part(session: Session) -> dict:
    shipped = shipped_catalogue()
    shipped_models = {m.code: m for m in shipped.device_models}
    shipped_drugs = {d.code: d for d in shipped.drugs}
    cat = queries.catalogue(session)
    return {
        "device_models": [
            m.model_dump(mode="json") for m in sorted(cat.device_models, key=lambda m: m.code) if shipped_models.get(m.code) != m
        ],
        "drugs": [d.model_dump(mode="json") for d in sorted(cat.drugs, key=lambda d: d.code) if shipped_drugs.get(d.code) != d],
    }


def _patients_part(session: Session) -> Iterator[dict]:
    P = tables.Patient.__table__
    for r in _stream(session, select(P).order_by(_text_order(session, P.c.mrn))):
        yield _drop_none(
            {
                "mrn": r.mrn,
                "name": r.name,
                "birth_date": r.birth_date.isoformat(),
                "goals_of_care": r.goals_of_care,
                "status": r.status,
                "died_on": r.died_on.isoformat() if r.died_on else None,
                "author": r.author or None,
                "recorded_at": _utc(r.recorded_at),
            }
        )


def _devices_part(session: Session) -> Iterator[dict]:
    P, D = tables.Patient.__table__, tables.Device.__table__
    replaced = D.alias("replaced")
    query = (
        select(D, P.c.mrn.label("patient_mrn"), replaced.c.serial.label("replaces_serial"))
        .join(P, P.c.id == D.c.patient_id)
        .outerjoin(replaced, replaced.c.replaced_by_id == D.c.id)
        .order_by(_text_order(session, P.c.mrn), D.c.implanted_on, _text_order(session, D.c.serial))
    )
    for r in _stream(session, query):
        udi = None
        if r.udi_raw:
            udi = _drop_none(
                {
                    "raw": r.udi_raw,
                    "device_identifier": r.udi_di,
                    "lot": r.udi_lot,
                    "serial": r.udi_serial,
                    "expiry": r.udi_expiry.isoformat() if r.udi_expiry else None,
                    "manufactured": r.udi_manufactured.isoformat() if r.udi_manufactured else None,
                }
            )
        yield _drop_none(
            {
                "patient_mrn": r.patient_mrn,
                "model": r.model_code,
                "serial": r.serial,
                "implanted_on": r.implanted_on.isoformat(),
                "implant_type": r.implant_type,
                "site": r.site,
                "status": r.status,
                "udi": udi,
                "replaces_serial": r.replaces_serial,
                "recharge_interval_days": r.recharge_interval_days,
                "author": r.author or None,
                "recorded_at": _utc(r.recorded_at),
            }
        )


def _ordered_events(session: Session, with_data: bool) -> Iterator:
    """Every event row in export order: when it was recorded, its device's serial, its
    date, originals before amendments, then (for rows equal in all that) its values'
    JSON and its id.  The database sorts by the first four; the rare runs equal in all
    four are sorted here, so memory holds one such run, not the table."""
    E, D = tables.EventRow.__table__, tables.Device.__table__
    amended = E.c.amends_id.isnot(None)
    columns = [E.c.id, E.c.recorded_at, D.c.serial, E.c.occurred_on, E.c.amends_id]
    if with_data:
        columns += [E.c.author, E.c.data, E.c.amendment_reason, E.c.voided]
    query = (
        select(*columns)
        .join(D, D.c.id == E.c.device_id)
        .order_by(E.c.recorded_at, _text_order(session, D.c.serial), E.c.occurred_on, amended, E.c.id)
    )

    def tie_key(r, data) -> tuple:
        if data.get("kind") == "refill_review":  # a row id means nothing in another database
            data = {k: v for k, v in data.items() if k != "refill_event_id"}
        return (json.dumps(data, sort_keys=True), r.id)

    run: list = []
    for r in _stream(session, query):
        if run and (r.recorded_at, r.serial, r.occurred_on, r.amends_id is None) != (
            run[0].recorded_at, run[0].serial, run[0].occurred_on, run[0].amends_id is None
        ):
            yield from _sorted_run(session, run, with_data, tie_key)
            run = []
        run.append(r)
    yield from _sorted_run(session, run, with_data, tie_key)


def _sorted_run(session: Session, run: list, with_data: bool, tie_key) -> list:
    if len(run) < 2:
        return run
    if with_data:
        return sorted(run, key=lambda r: tie_key(r, r.data))
    E = tables.EventRow.__table__
    data = dict(session.execute(select(E.c.id, E.c.data).where(E.c.id.in_([r.id for r in run]))).all())
    return sorted(run, key=lambda r: tie_key(r, data[r.id]))


def _events_part(session: Session, refs: dict[int, str] | None = None) -> Iterator[dict]:
    """Every event as a document item; ``refs`` (event id -> ref), when given, gets the
    ref of each event whose id is a key of it already (the items acknowledged came from)."""
    E = tables.EventRow.__table__
    wanted = set(refs or ())
    # An amendment names its original by ref ("e" + the original's place in the export).
    # Amendments are nearly always recorded after their original, so the original's ref
    # is known when the amendment is written; when one is not, a first pass over the
    # order (without the values) numbers the originals that are amended.
    original = E.alias("original")
    early = session.execute(
        select(func.count())
        .select_from(E.join(original, original.c.id == E.c.amends_id))
        .where(E.c.recorded_at <= original.c.recorded_at)
    ).scalar()
    ref_of: dict[int, str] = {}
    amended_ids = {i for (i,) in session.execute(select(E.c.amends_id).where(E.c.amends_id.isnot(None)).distinct())}
    # Rule 26: a review names its refill by ref too (its data's refill_event_id is a row id).
    reviews = session.execute(select(E.c.id, E.c.recorded_at, E.c.data).where(E.c.kind == "refill_review")).all()
    reviewed_ids = {r.data["refill_event_id"] for r in reviews}
    if reviewed_ids:
        recorded = dict(session.execute(select(E.c.id, E.c.recorded_at).where(E.c.id.in_(sorted(reviewed_ids)))).all())
        early = early or any(recorded[r.data["refill_event_id"]] >= r.recorded_at for r in reviews)
        amended_ids |= reviewed_ids
    del reviews
    if early:
        for n, r in enumerate(_ordered_events(session, with_data=False), start=1):
            if r.id in amended_ids:
                ref_of[r.id] = f"e{n}"
    for n, r in enumerate(_ordered_events(session, with_data=True), start=1):
        ref = f"e{n}"
        if r.id in amended_ids:
            ref_of[r.id] = ref
        if r.id in wanted:
            refs[r.id] = ref
        item = {
            "ref": ref,
            "device_serial": r.serial,
            "occurred_on": r.occurred_on.isoformat(),
            "author": r.author,
            "recorded_at": _utc(r.recorded_at),
            "data": r.data,
        }
        if r.data.get("kind") == "refill_review":
            data = dict(r.data)
            item["data"] = data
            item["reviews"] = ref_of[data.pop("refill_event_id")]
        if r.amends_id is not None:
            item["amends"] = ref_of[r.amends_id]
            item["amendment_reason"] = r.amendment_reason
            if r.voided:
                item["voided"] = True
        yield item


def write_document(session: Session, out: IO[str], tick=_noop) -> dict[str, int]:
    """Write the whole database as a document to ``out``: one item per line; returns how
    many items each section has (``{"patients": 60, "devices": 82, "events": 2143}``).

    Streams: rows are read in chunks (``_stream``) in the export order, which the
    database sorts, and each item is written as it comes, so memory holds a chunk of
    rows, not the clinic (a 10,000-patient export held 1.3 GB when built whole).
    The order depends only on the content, never on row ids, so export -> import into
    an empty database -> export gives the same bytes.
    """
    from devicelog.reports.safe import json_text

    encode = json.JSONEncoder(ensure_ascii=False, sort_keys=False, separators=(", ", ": ")).encode

    def dumps(value) -> str:  # C1 controls and bidi overrides as \uXXXX: printed, the document runs nothing
        return json_text(encode(value))

    out.write('{"format": "devicelog", "version": 1,\n')
    out.write(f'"catalogue": {dumps(_catalogue_part(session))},\n')
    notices = _advisories_part(session)
    if notices:  # a document without safety notices is written as before
        out.write('"advisories": [' + ",\n".join(dumps(n) for n in notices) + "],\n")
    counts: dict[str, int] = {}
    event_refs: dict[int, str] = dict.fromkeys(ack_source_event_ids(session), "")
    for name, items, last in (
        ("patients", _patients_part(session), False),
        ("devices", _devices_part(session), False),
        ("events", _events_part(session, event_refs), False),
        ("due_acks", _acks_part(session, event_refs), True),
    ):
        out.write(f'"{name}": [')
        n = 0
        for n, item in enumerate(items, start=1):
            out.write("\n" if n == 1 else ",\n")
            out.write(dumps(item))
            tick(1)
        out.write("\n]" if n else "]")
        out.write("\n}\n" if last else ",\n")
        counts[name] = n
    return counts


def export_text(engine: Engine) -> str:
    import io

    from devicelog.store.db import read_session

    buffer = io.StringIO()
    with read_session(engine) as session:
        write_document(session, buffer)
    return buffer.getvalue()


def holds_clinical_data(session: Session) -> bool:
    """True when the database has any patient, device or event."""
    for t in (tables.Patient, tables.Device, tables.EventRow):
        if session.execute(select(func.count()).select_from(t.__table__)).scalar():
            return True
    return False
