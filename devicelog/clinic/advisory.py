"""Safety notices (advisories, recalls) and the devices they concern (issue 18, section 1).

Pure: no database, no textual.  A notice is read from disk in one of two forms
(:func:`read_notice`):

* devicelog's own small format, JSON (:class:`AdvisoryIn`, schema
  ``schemas/advisory.schema.json``) or CSV (one row per rule value, see
  :func:`from_csv`);
* an openFDA device recall file (``device/recall`` results, :func:`from_openfda`): its
  ``code_info`` is free text mixing serials, lots and GS1 UDI strings; it is read as far
  as it can be (:func:`parse_code_info`, GS1 through ``clinic.udi``/biip) and every part
  that could not be read is kept in the notice's ``unparsed`` and reported, never dropped.

Matching (:func:`match_device`), as tiers, the best one found wins:

1. exact serial or UDI serial (21) listed in the notice;
2. lot (10) listed in the notice;
3. the notice's model and the device's manufacture date, from the UDI's (11) field where
   it was scanned, inside the notice's manufacture-date range;
4. "possible": the device is of the notice's model and nothing recorded rules it out (the
   notice names the model only; its lots or date range cannot be compared because the
   device's lot or manufacture date was not scanned; or part of the notice could not be
   read).

A notice's serials, lots and model-and-date range each widen it (a device matching any
one is affected).  A notice that names models or device identifiers (GS1 (01)) concerns
only devices of those models: its serials and lots are compared within them.
Serials and lots are compared whole, ignoring case ("L1" never matches "L10").

Severity follows the notice's class (:data:`SEVERITY_BY_CLASS`): class I → critical,
class II → high, class III → routine.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from devicelog.clinic.records import MultiLine, Record

#: FDA recall class → due item severity (docs/advisories.md).  Class I: "a reasonable
#: probability that use will cause serious adverse health consequences or death".
SEVERITY_BY_CLASS: dict[str, str] = {"I": "critical", "II": "high", "III": "routine"}
#: The actions an acknowledgement records (issue 18: patient informed, alarm education,
#: interrogation, replacement planned).
ACTIONS: dict[str, str] = {
    "patient_informed": "patient informed",
    "alarm_education": "alarm education",
    "interrogation": "interrogation",
    "replacement_planned": "replacement planned",
    "no_action_needed": "reviewed: no action needed",
}
TIER_LABELS: dict[int, str] = {
    1: "serial or UDI",
    2: "lot",
    3: "model and manufacture date",
    4: "possible (model only)",
}

#: The tiers in a table column or a one-line summary.
TIER_SHORT: dict[int, str] = {1: "serial/UDI", 2: "lot", 3: "model+date", 4: "possible"}

Code = Annotated[str, Field(min_length=1, max_length=60)]
Gtin = Annotated[str, Field(pattern=r"^\d{14}$")]


class MatchRules(Record):
    """What devices a notice concerns.  Each list widens the notice; see the module docstring."""

    models: list[Code] = Field(default_factory=list, description="catalogue model codes, e.g. synchromed-ii-40")
    device_identifiers: list[Gtin] = Field(default_factory=list, description="GS1 (01) device identifiers (GTIN-14)")
    serials: list[Code] = Field(default_factory=list, description="device serial numbers (21)")
    lots: list[Code] = Field(default_factory=list, description="lot numbers (10)")
    manufactured_from: dt.date | None = Field(default=None, description="first manufacture date concerned (UDI (11))")
    manufactured_to: dt.date | None = Field(default=None, description="last manufacture date concerned (UDI (11))")

    @model_validator(mode="after")
    def _consistent(self) -> "MatchRules":
        if not (self.models or self.device_identifiers or self.serials or self.lots):
            raise ValueError("the notice names no model, device identifier, serial or lot: it could match no device")
        if (self.manufactured_from or self.manufactured_to) and not (self.models or self.device_identifiers):
            raise ValueError("a manufacture-date range needs the models (or device identifiers) it applies to")
        if self.manufactured_from and self.manufactured_to and self.manufactured_from > self.manufactured_to:
            raise ValueError(f"manufactured_from {self.manufactured_from} is after manufactured_to {self.manufactured_to}")
        return self


class AdvisoryIn(Record):
    """A safety notice as devicelog keeps it (the devicelog JSON format is this model)."""

    title: Annotated[str, Field(min_length=1, max_length=200)]
    issued_on: dt.date = Field(description="the notice's date")
    source: Annotated[str, Field(min_length=1, max_length=200)] = Field(description="who issued it (maker, FDA, Health Canada)")
    reference: Annotated[str, Field(max_length=60)] = Field(default="", description="the notice's number, e.g. FDA recall event")
    recommended_action: Annotated[str, Field(min_length=1), MultiLine()] = Field(description="what the notice asks clinics to do")
    notice_class: Literal["I", "II", "III"] = Field(description="recall class I, II or III (sets the due item's severity)")
    rules: MatchRules
    unparsed: list[Annotated[str, Field(max_length=2000)]] = Field(
        default_factory=list, description="text of the notice that could not be read into rules (kept and reported)"
    )
    form: Literal["devicelog", "openfda"] = "devicelog"

    @property
    def severity(self) -> str:
        return SEVERITY_BY_CLASS[self.notice_class]


class NoticeError(ValueError):
    """A notice file devicelog cannot read: ``problems`` are (field, value, message)."""

    def __init__(self, problems: list[tuple[str, Any, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" for f, _, m in problems))


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class DeviceFacts:
    """What matching reads of a device (registered or still on the form)."""

    serial: str
    model_code: str
    model_identifiers: tuple[str, ...] = ()
    udi_di: str | None = None
    udi_lot: str | None = None
    udi_serial: str | None = None
    udi_manufactured: dt.date | None = None

    @classmethod
    def of(cls, device) -> "DeviceFacts":
        """From a ``history.DeviceInfo`` (its ``model`` a catalogue ``DeviceModel``)."""
        return cls(
            serial=device.serial,
            model_code=device.model.code,
            model_identifiers=tuple(device.model.device_identifiers),
            udi_di=device.udi_di,
            udi_lot=device.udi_lot,
            udi_serial=device.udi_serial,
            udi_manufactured=device.udi_manufactured,
        )


@dataclass(frozen=True)
class Match:
    tier: int
    evidence: str

    @property
    def label(self) -> str:
        return TIER_LABELS[self.tier]

    @property
    def possible(self) -> bool:
        return self.tier == 4


def _fold(value: str | None) -> str:
    return (value or "").strip().casefold()


def match_device(notice: AdvisoryIn, device: DeviceFacts) -> Match | None:
    """The best tier at which ``notice`` concerns ``device``, with the evidence; None: not affected."""
    rules = notice.rules
    di_rules = set(rules.device_identifiers)
    by_model = device.model_code in rules.models
    by_di = bool(device.udi_di and device.udi_di in di_rules) or bool(di_rules & set(device.model_identifiers))
    scoped = bool(rules.models or rules.device_identifiers)
    of_model = by_model or by_di
    if scoped and not of_model:
        return None
    model_words = (
        f"model {device.model_code} named by the notice" if by_model else f"device identifier (01) {device.udi_di or ', '.join(sorted(di_rules & set(device.model_identifiers)))} named by the notice"
    )
    serials = {_fold(s): s for s in rules.serials}
    for own, what in ((device.serial, "serial"), (device.udi_serial, "UDI serial (21)")):
        if own and _fold(own) in serials:
            return Match(1, f"{what} {own} is listed in the notice" + (f"; {model_words}" if scoped else ""))
    lots = {_fold(s): s for s in rules.lots}
    if device.udi_lot and _fold(device.udi_lot) in lots:
        return Match(2, f"lot (10) {device.udi_lot} is listed in the notice" + (f"; {model_words}" if scoped else ""))
    if not of_model:
        return None
    low, high = rules.manufactured_from, rules.manufactured_to
    ranged = low is not None or high is not None
    span = f"{low or 'any date'} to {high or 'any date'}"
    made = device.udi_manufactured
    if ranged and made is not None and (low is None or made >= low) and (high is None or made <= high):
        return Match(3, f"{model_words}; manufactured {made} (UDI (11)), inside {span}")
    if ranged and made is None:
        return Match(4, f"possible: {model_words}; the notice covers manufacture dates {span} and this device's "
                     "manufacture date is not recorded (no UDI with (11) scanned)")
    if not ranged and not rules.serials and not rules.lots:
        return Match(4, f"possible: {model_words}; the notice names no serial, lot or manufacture date")
    if rules.lots and not device.udi_lot:
        return Match(4, f"possible: {model_words}; the notice lists lots and this device's lot is not recorded "
                     "(no UDI with (10) scanned)")
    if notice.unparsed:
        return Match(4, f"possible: {model_words}; part of the notice could not be read "
                     f"({len(notice.unparsed)} passage(s), see the notice)")
    return None


# --------------------------------------------------------------------------- reading files


def read_notice(text: str, *, name: str = "", models: list[str] | None = None, notice_class: str | None = None,
                catalogue=()) -> tuple[AdvisoryIn, list[str]]:
    """A notice from a file's text: (the notice, what was read with doubt or not at all).

    JSON with a top-level ``results`` list is an openFDA recall file; other JSON is the
    devicelog format; text whose first line is a CSV header is the devicelog CSV format.
    ``models`` and ``notice_class`` (the command's ``--model``, ``--class``) complete
    an openFDA notice.  ``catalogue``: the device models, to recognise a model by its
    device identifier or name.  Raises :class:`NoticeError`.
    """
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise NoticeError([("file", name, "is empty")])
    if stripped.startswith("{") or stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise NoticeError([("file", name, f"is not valid JSON ({exc.msg}, line {exc.lineno})")]) from None
        if isinstance(data, dict) and "results" in data:
            return from_openfda(data, models=models, notice_class=notice_class, catalogue=catalogue)
        _own_format_names_them(models, notice_class)
        return _validated(data), []
    _own_format_names_them(models, notice_class)
    return from_csv(stripped), []


def _own_format_names_them(models, notice_class) -> None:
    if models or notice_class:
        raise NoticeError([("--model/--class", ", ".join([*(models or []), notice_class or ""]).strip(", "),
                            "are for openFDA files; a devicelog notice names its models and class itself")])


def _validated(data: Any) -> AdvisoryIn:
    from pydantic import ValidationError

    try:
        return AdvisoryIn.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"]) or "(notice)"
            problems.append((where, e.get("input") if not isinstance(e.get("input"), dict) else None,
                             e["msg"].removeprefix("Value error, ")))
        raise NoticeError(problems) from None


#: CSV columns: the notice's fields repeat on every row (the first row's count); each row
#: adds at most one value to each rule column.
CSV_COLUMNS = ("title", "issued_on", "source", "reference", "recommended_action", "notice_class",
               "model", "device_identifier", "serial", "lot", "manufactured_from", "manufactured_to")
_RULE_COLUMNS = {"model": "models", "device_identifier": "device_identifiers", "serial": "serials", "lot": "lots"}


def from_csv(text: str) -> AdvisoryIn:
    """The devicelog CSV format: a header of :data:`CSV_COLUMNS` (any order; rule columns
    optional), the notice's fields on the first row, one rule value per cell."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise NoticeError([("header", ", ".join(unknown), f"unknown column(s); the columns are {', '.join(CSV_COLUMNS)}")])
    rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if not rows:
        raise NoticeError([("file", "", "has a header but no rows")])
    first = rows[0]
    data: dict[str, Any] = {k: first.get(k, "") for k in ("title", "issued_on", "source", "reference", "recommended_action", "notice_class")}
    data = {k: v for k, v in data.items() if v != "" or k == "reference"}
    for n, row in enumerate(rows[1:], start=3):
        for k in data:
            if row.get(k) and row[k] != first.get(k):
                raise NoticeError([(f"line {n}: {k}", row[k], f"differs from the first row's {first.get(k)!r}; one notice per file")])
    rules: dict[str, Any] = {v: [] for v in _RULE_COLUMNS.values()}
    for row in rows:
        for column, key in _RULE_COLUMNS.items():
            if row.get(column) and row[column] not in rules[key]:
                rules[key].append(row[column])
    for key in ("manufactured_from", "manufactured_to"):
        if first.get(key):
            rules[key] = first[key]
    data["rules"] = rules
    return _validated(data)


# --------------------------------------------------------------------------- openFDA


#: The openFDA ``device/recall`` fields devicelog reads (api.fda.gov/device/recall.json).
#: ``classification`` ("Class I") is the enforcement report's field; the recall endpoint
#: often lacks it (its ``openfda.device_class`` is the *device's* risk class, not the
#: recall's, and is never read as one).
OPENFDA_FIELDS = ("res_event_number", "product_res_number", "cfres_id", "product_description", "code_info", "product_code",
                  "recalling_firm", "reason_for_recall", "action", "event_date_initiated", "event_date_posted",
                  "recall_status", "classification", "k_numbers", "pma_numbers", "root_cause_description")


@dataclass
class CodeInfo:
    """What :func:`parse_code_info` read of a ``code_info`` text."""

    serials: list[str] = field(default_factory=list)
    lots: list[str] = field(default_factory=list)
    device_identifiers: list[str] = field(default_factory=list)
    model_numbers: list[str] = field(default_factory=list)
    manufactured_from: dt.date | None = None
    manufactured_to: dt.date | None = None
    unparsed: list[str] = field(default_factory=list)
    udi_problems: list[str] = field(default_factory=list)


_HRI = re.compile(r"(?:\(\d{2,4}\)[^\s(),;]+)+")
_RAW_UDI = re.compile(r"(?<![\w])(?:\]d2)?01\d{14}(?:1[0-7]\d{6}|10[^\s,;]+|21[^\s,;]+)*[^\s,;]*")
_LABEL = re.compile(
    r"(?P<label>serial\s*(?:numbers?|nos?\.?|#)?|s/n|sn|lots?\s*(?:numbers?|nos?\.?|#|codes?)?|batch(?:es)?"
    r"|models?\s*(?:numbers?|nos?\.?|#)?|catalog(?:ue)?\s*(?:numbers?|nos?\.?|#)?|ref\.?|part\s*(?:numbers?|#)?"
    r"|udi[- ]?di|gtin|primary\s+di|device\s+identifiers?)\s*[:#]?\s*",
    re.IGNORECASE,
)
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-/.]*$")
_MONTHS = {m: i for i, m in enumerate(("january", "february", "march", "april", "may", "june", "july", "august",
                                      "september", "october", "november", "december"), start=1)}
_DATE = r"(?:\d{4}-\d{2}-\d{2}|(?:%s)\s+\d{4})" % "|".join(_MONTHS)
_MADE = re.compile(rf"(?:manufactured|made|produced|distributed)\s+(?:between|from)\s+(?P<a>{_DATE})\s+(?:and|to|through|until)\s+(?P<b>{_DATE})",
                   re.IGNORECASE)
_FILLER = re.compile(r"^(?:and|&|or|the|all|affected|numbers?|nos?\.?|includ(?:es|ing)|[,;:.\-–—()\s])*$", re.IGNORECASE)


def _as_date(text: str, end: bool) -> dt.date:
    text = text.strip()
    if re.match(r"^\d{4}-\d{2}-\d{2}$", text):
        return dt.date.fromisoformat(text)
    month, year = text.split()
    m, y = _MONTHS[month.lower()], int(year)
    if not end:
        return dt.date(y, m, 1)
    # the last day of the month: protects the patient (a wider range, never a narrower one)
    return dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1)


def parse_code_info(text: str) -> CodeInfo:
    """Read serials, lots, GS1 UDIs, model numbers and a manufacture-date range out of an
    openFDA ``code_info`` text; everything else is returned in ``unparsed``, as written."""
    from devicelog.clinic.udi import UdiError, parse_udi

    found = CodeInfo()
    rest = text or ""

    def take(span: tuple[int, int]) -> None:
        nonlocal rest
        rest = rest[: span[0]] + " \x00 " + rest[span[1]:]

    for pattern in (_HRI, _RAW_UDI):
        while (m := pattern.search(rest)) is not None:
            raw = m.group(0).rstrip(".")
            take(m.span())
            try:
                udi = parse_udi(raw)
            except UdiError as exc:
                found.unparsed.append(raw)
                found.udi_problems.append(f"{raw}: {exc}")
                continue
            found.device_identifiers.append(udi.device_identifier)
            if udi.serial:
                found.serials.append(udi.serial)
            if udi.lot:
                found.lots.append(udi.lot)
    if (m := _MADE.search(rest)) is not None:
        found.manufactured_from, found.manufactured_to = _as_date(m.group("a"), False), _as_date(m.group("b"), True)
        take(m.span())
    # Labelled lists: "Serial numbers: A1, A2 and A3; Lot 42".  A list runs to the next
    # label, a ";" or a sentence end; its values are codes holding a digit.
    labels = list(_LABEL.finditer(rest))
    consumed: list[tuple[int, int]] = []
    for n, m in enumerate(labels):
        end = labels[n + 1].start() if n + 1 < len(labels) else len(rest)
        stop = re.search(r";|\.\s+(?=[A-Z])|\n|\x00", rest[m.end():end])
        if stop is not None:
            end = m.end() + stop.start()
        body = rest[m.end():end]
        label = m.group("label").lower()
        kind = ("serial" if label.startswith(("serial", "s/n", "sn")) else
                "lot" if label.startswith(("lot", "batch")) else
                "di" if label.startswith(("udi", "gtin", "primary", "device")) else "model")
        values, left = [], []
        for token in re.split(r"\s*(?:,|\band\b|&|\s)\s*", body):
            token = token.strip().rstrip(".")
            if not token:
                continue
            if _CODE.match(token) and any(ch.isdigit() for ch in token):
                values.append(token)
            else:
                left.append(token)
        if not values:
            continue  # the label stays in the rest: reported as unparsed
        if left and not _FILLER.match(" ".join(left)):
            found.unparsed.append(" ".join(left))
        for value in values:
            if kind == "serial":
                found.serials.append(value)
            elif kind == "lot":
                found.lots.append(value)
            elif kind == "di":
                if re.fullmatch(r"\d{14}", value):
                    try:
                        parse_udi(f"(01){value}")
                        found.device_identifiers.append(value)
                    except UdiError as exc:
                        found.unparsed.append(value)
                        found.udi_problems.append(f"{value}: {exc}")
                else:
                    found.unparsed.append(value)
            else:
                found.model_numbers.append(value)
        consumed.append((m.start(), end))
    for start, end in reversed(consumed):
        rest = rest[:start] + " \x00 " + rest[end:]
    for piece in re.split(r"\x00|;|\n", rest):
        piece = piece.strip(" \t.,;:")
        if piece and not _FILLER.match(piece):
            found.unparsed.append(piece)
    for name in ("serials", "lots", "device_identifiers", "model_numbers"):
        setattr(found, name, list(dict.fromkeys(getattr(found, name))))
    return found


def from_openfda(data: dict, *, models: list[str] | None = None, notice_class: str | None = None,
                 catalogue=()) -> tuple[AdvisoryIn, list[str]]:
    """One notice from an openFDA device recall file (all its ``results``, one recall
    event: their ``code_info`` and products read together).  Returns the notice and
    the report lines: what was read, what could not be, and how the models were found.
    """
    results = data.get("results")
    if not isinstance(results, list) or not results or not all(isinstance(r, dict) for r in results):
        raise NoticeError([("results", None, "an openFDA recall file holds a non-empty list of recalls under 'results'")])
    events = sorted({str(r.get("res_event_number", "")) for r in results} - {""})
    if len(events) > 1:
        raise NoticeError([("results.res_event_number", ", ".join(events),
                            "the file holds several recall events; save one event per file (search res_event_number)")])
    first = results[0]
    report: list[str] = []
    codes = CodeInfo()
    for n, r in enumerate(results):
        info = parse_code_info(str(r.get("code_info") or ""))
        for name in ("serials", "lots", "device_identifiers", "model_numbers", "unparsed", "udi_problems"):
            getattr(codes, name).extend(v for v in getattr(info, name) if v not in getattr(codes, name))
        if info.manufactured_from and codes.manufactured_from is None:
            codes.manufactured_from, codes.manufactured_to = info.manufactured_from, info.manufactured_to
    # The class: the enforcement report's "classification" where present, else --class.
    classes = sorted({str(r["classification"]).strip() for r in results if r.get("classification")})
    found_class = None
    if classes:
        m = re.fullmatch(r"(?:class\s*)?(I{1,3})", classes[0], re.IGNORECASE)
        found_class = m.group(1).upper() if m and len(classes) == 1 else None
        if found_class is None:
            raise NoticeError([("results.classification", ", ".join(classes), "is not one class I, II or III")])
    if notice_class and found_class and notice_class != found_class:
        raise NoticeError([("--class", notice_class, f"the file says class {found_class}")])
    chosen_class = notice_class or found_class
    if chosen_class is None:
        raise NoticeError([("results.classification", None,
                            "the file gives no recall class (openFDA device/recall often lacks it): "
                            "give --class I, II or III from the FDA recall page")])
    # The models: --model, else those whose device identifiers the code_info names,
    # else those whose name the product description holds.
    chosen_models = list(models or [])
    catalogue = list(catalogue)
    if chosen_models:
        report.append(f"models: {', '.join(chosen_models)} (given with --model)")
    else:
        by_di = [m.code for m in catalogue if set(m.device_identifiers) & set(codes.device_identifiers)]
        if by_di:
            chosen_models = by_di
            report.append(f"models: {', '.join(by_di)} (by the device identifiers in code_info)")
        else:
            text = " ".join(str(r.get("product_description") or "") for r in results).casefold()
            by_name = [m.code for m in catalogue if _name_in(m, text)]
            # "SynchroMed II …, Model 8637-20": of the models named, those whose number is given too.
            numbered = [c for c in by_name if (n := _model_number(next(m for m in catalogue if m.code == c))) and n in text]
            by_name = numbered or by_name
            if by_name:
                chosen_models = by_name
                report.append(f"models: {', '.join(by_name)} (their names appear in product_description: check them)")
            else:
                report.append("models: none recognised in the file; give --model CODE to match by model")
    date = first.get("event_date_initiated") or first.get("event_date_posted") or ""
    reference = str(first.get("res_event_number") or first.get("product_res_number") or "")
    reason = str(first.get("reason_for_recall") or "").strip()
    action = str(first.get("action") or "").strip()
    description = str(first.get("product_description") or "").strip()
    action_text = (action or "see the recall notice") + (f"\n\nReason for recall: {reason}" if reason else "")
    if len(action_text) > 2000:  # a record's longest text: say so, never cut silently
        action_text = action_text[:1990].rstrip() + " […]"
        report.append("action and reason_for_recall were cut to 2,000 characters: read the rest on the FDA recall page")
    notice = {
        "title": " ".join(f"{first.get('recalling_firm') or 'FDA'} recall {reference}: {description}".split())[:200],
        "issued_on": _openfda_date(str(date)),
        "source": " ".join((f"openFDA device recall {reference}" + (f" ({first.get('recall_status')})" if first.get("recall_status") else "")).split())[:200],
        "reference": " ".join(reference.split())[:60],
        "recommended_action": action_text,
        "notice_class": chosen_class,
        "rules": {
            "models": chosen_models,
            "device_identifiers": codes.device_identifiers,
            "serials": codes.serials,
            "lots": codes.lots,
            "manufactured_from": codes.manufactured_from.isoformat() if codes.manufactured_from else None,
            "manufactured_to": codes.manufactured_to.isoformat() if codes.manufactured_to else None,
        },
        "unparsed": [" ".join(u.split()) for u in codes.unparsed],
        "form": "openfda",
    }
    report.append(f"code_info read: {len(codes.serials)} serial(s), {len(codes.lots)} lot(s), "
                  f"{len(codes.device_identifiers)} device identifier(s)"
                  + (f", manufactured {codes.manufactured_from} to {codes.manufactured_to}" if codes.manufactured_from else ""))
    if codes.model_numbers:
        report.append(f"model/catalogue numbers read but not matched on (devicelog matches catalogue models): "
                      f"{', '.join(codes.model_numbers)}")
    for problem in codes.udi_problems:
        report.append(f"UDI not read: {problem}")
    for piece in codes.unparsed:
        report.append(f"NOT READ from code_info: {piece!r}")
    return _validated(notice), report


def _name_in(model, text: str) -> bool:
    """The catalogue model's maker-free name, e.g. "synchromed ii" for "SynchroMed II 8637-20",
    as whole words (so "SynchroMed II" does not find "SynchroMed III")."""
    name = model.model.casefold()
    if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text):
        return True
    base = re.sub(r"\s+\(.*\)$|\s+[\d\-]+(?:\s*ml)?$", "", name).strip()
    return bool(base) and re.search(rf"(?<!\w){re.escape(base)}(?!\w)", text) is not None


def _model_number(model) -> str:
    """The number a catalogue model name ends with ("8637-20"), or ""."""
    m = re.search(r"\s(\d[\d\-]*)(?:\s*ml)?$", model.model.casefold())
    return m.group(1) if m else ""


def _openfda_date(text: str) -> str:
    """openFDA writes "2019-08-01" (or "20190801" in older files)."""
    if re.fullmatch(r"\d{8}", text):
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text


# --------------------------------------------------------------------------- due items


@dataclass(frozen=True)
class AdvisoryFlag:
    """A recorded match of a notice to a device, as the forecast and the screens read it."""

    advisory_id: int
    title: str
    reference: str
    source: str
    notice_class: str
    recommended_action: str
    tier: int
    evidence: str
    matched_on: dt.date
    acknowledged_on: dt.date | None = None
    acknowledged_by: str | None = None
    actions: tuple[str, ...] = ()
    note: str = ""

    @property
    def severity(self) -> str:
        return SEVERITY_BY_CLASS[self.notice_class]

    @property
    def tier_short(self) -> str:
        return TIER_SHORT[self.tier]

    @property
    def line(self) -> str:
        """One line for the device screen."""
        state = (f"acknowledged {self.acknowledged_on} by {self.acknowledged_by}: "
                 f"{', '.join(ACTIONS.get(a, a) for a in self.actions)}" if self.acknowledged_on else "NOT ACKNOWLEDGED")
        return (f"Safety notice {self.advisory_id} (class {self.notice_class}, match: {TIER_LABELS[self.tier]}): "
                f"{self.title} · {state}")


def advisory_item_code(advisory_id: int) -> str:
    return f"advisory_{advisory_id}"


def advisory_items(history) -> list:
    """One due item per notice matched to this in-service device and not yet acknowledged
    (issue 18): due the day the match was recorded (import, or the device's registration),
    severity from the notice's class (:data:`SEVERITY_BY_CLASS`), its why the notice's
    recommended action and the match's evidence.  It stays until an acknowledgement
    records what was done (``devicelog advisory ack``)."""
    from devicelog.clinic.due import make_item

    items = []
    for flag in history.advisories:
        if flag.acknowledged_on is not None:
            continue
        action = " ".join(flag.recommended_action.split())
        possible = " (possible match: check the device)" if flag.tier == 4 else ""
        items.append(
            make_item(
                history,
                what=f"Safety notice {flag.advisory_id}{possible}: {flag.title}"[:200],
                code=advisory_item_code(flag.advisory_id),
                due_on=flag.matched_on,
                severity=flag.severity,
                rule="safety notice",
                why=f"{action} — {flag.source}{' ' + flag.reference if flag.reference and flag.reference not in flag.source else ''}, "
                f"class {flag.notice_class} → {flag.severity}; match {flag.tier} ({TIER_LABELS[flag.tier]}): {flag.evidence}; "
                f"matched {flag.matched_on}; stays until acknowledged (devicelog advisory ack {flag.advisory_id} "
                f"{history.device.serial} --done …)",
            )
        )
    return items
