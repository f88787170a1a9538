"""The device and drug catalogue devicelog ships with (clinical reference sections 1-2).

The catalogue is data (``devicelog/data/catalogue.json``) validated by these models;
a clinic can extend it through the import document.  Nothing here touches the
database: the store copies these entries into its catalogue tables.
"""

from __future__ import annotations

import enum
import functools
import json
from importlib import resources
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from devicelog.clinic.records import DeviceKind, PowerSource, Record


class MrStatus(str, enum.Enum):
    conditional = "conditional"
    unsafe = "unsafe"
    unknown = "unknown"


class CatalogueEntry(Record):
    """A catalogue entry refuses what a record refuses (issue 19: a 50 MB drug name took
    28 s to import; NaN, text for a number, control characters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceModel(CatalogueEntry):
    """One implantable device model."""

    code: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9\-]*$", max_length=60)]
    maker: str
    model: str
    kind: DeviceKind
    power: PowerSource
    # pumps
    reservoir_ml: Annotated[float, Field(gt=0, le=100)] | None = None
    low_alarm_ml: Annotated[float, Field(ge=0, le=10)] | None = None  # default programmed alarm volume
    constant_flow: bool = False
    # batteries
    battery_life_years: Annotated[float, Field(gt=0, le=30)] | None = None  # maximum / typical life
    eri_to_eos_days: Annotated[int, Field(gt=0, le=730)] | None = None
    planned_replacement_months: Annotated[int, Field(gt=0, le=360)] | None = None  # after implant
    # PNS percutaneous leads
    lead_removal_day: Annotated[int, Field(gt=0, le=365)] | None = None
    mr_status: MrStatus = MrStatus.unknown
    mr_note: str = ""
    source: str = ""
    #: The public UDI device identifiers (GS1 GTIN-14, AI 01) of this model, as printed
    #: on its box: a scanned UDI names its model by these (issue 13.7).  Empty for the
    #: shipped models whose identifiers could not be checked against a public source
    #: (AccessGUDID); a clinic adds its own through its catalogue file.
    device_identifiers: tuple[Annotated[str, Field(pattern=r"^[0-9]{14}$")], ...] = ()

    @property
    def label(self) -> str:
        return f"{self.maker} {self.model}"

    @property
    def is_pump(self) -> bool:
        return self.kind is DeviceKind.intrathecal_pump

    @model_validator(mode="after")
    def _consistent(self) -> "DeviceModel":
        if self.is_pump and self.reservoir_ml is None:
            raise ValueError(f"{self.code}: a pump needs reservoir_ml")
        if not self.is_pump and (self.reservoir_ml is not None or self.constant_flow):
            raise ValueError(f"{self.code}: only pumps have a reservoir")
        if self.constant_flow and self.power is not PowerSource.none:
            raise ValueError(f"{self.code}: a constant-flow pump has no battery (rule 14)")
        if self.power is PowerSource.none and (self.eri_to_eos_days or self.planned_replacement_months):
            raise ValueError(f"{self.code}: a device without a battery has no ERI or planned replacement")
        for di in self.device_identifiers:
            if not gtin_check_digit_ok(di):
                raise ValueError(f"{self.code}: device identifier {di} has a wrong GS1 check digit")
        return self


def gtin_check_digit_ok(gtin: str) -> bool:
    """The GS1 check digit (mod 10, weights 3 and 1 from the right) of a GTIN."""
    if not gtin.isdigit() or len(gtin) < 2:
        return False
    body, check = gtin[:-1], int(gtin[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def model_of_identifier(models: "list[DeviceModel]", device_identifier: str | None) -> "DeviceModel | None":
    """The catalogue model whose public device identifiers include this one (None when
    no model lists it: an identifier the catalogue does not know says nothing)."""
    if not device_identifier:
        return None
    return next((m for m in models if device_identifier in m.device_identifiers), None)


def identifier_contradiction(models: "list[DeviceModel]", model_code: str, device_identifier: str | None) -> str | None:
    """Why a scanned device identifier cannot be a device of ``model_code``, or None.

    The identifier belongs to another model of the catalogue (a 40 mL pump's on a 20 mL
    model): the refill arithmetic depends on the reservoir size, so neither is taken
    for the other."""
    found = model_of_identifier(models, device_identifier)
    if found is None or found.code == model_code:
        return None
    chosen = next((m for m in models if m.code == model_code), None)
    chosen_label = chosen.label if chosen is not None else model_code
    return (f"device identifier {device_identifier} is the {found.label}, not the {chosen_label} chosen; "
            "choose the model of the device in hand (reservoir size and refill dates depend on it)")


class LimitKind(str, enum.Enum):
    """What a drug limit bounds (issue 18.2).  Amounts are in mg whatever the drug's
    display unit (mcg = mg × 1000); intervals in hours."""

    max_concentration = "max_concentration"  # mg/mL
    max_dose = "max_dose"  # mg/day, continuous dose
    max_step = "max_step"  # mg/day, the largest single increase
    min_step_interval = "min_step_interval"  # hours, the shortest time between increases

    @property
    def per(self) -> str:
        return {"max_concentration": "/mL", "max_dose": "/day", "max_step": "/day", "min_step_interval": ""}[self.value]


class DrugLimit(CatalogueEntry):
    """One limit of the drug-limit library: a number, what it bounds, where it comes
    from, and whether exceeding it is refused ("hard") or warned and overridable with a
    reason ("soft").

    ``region``: the product label's jurisdiction (``US``, ``EU``); None: every region.
    ``consensus``: a consensus guideline's number (PACC), applied only when the clinic's
    settings apply consensus limits.  ``ref``: a short name of the source, unique within
    the drug for one kind, e.g. ``pacc-2017``, ``label-us``.
    """

    kind: LimitKind
    value: Annotated[float, Field(gt=0, le=100_000)]
    severity: Literal["soft", "hard"]
    source: Annotated[str, Field(min_length=1, max_length=300)]
    ref: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9\-]*$", max_length=40)]
    region: Literal["US", "EU"] | None = None
    consensus: bool = False


class Drug(CatalogueEntry):
    """One intrathecal drug with its stability cap, its labelled strengths and its
    limits (reference 1.3 and 8; the drug-limit library of issue 18.2).

    Amounts are in mg; ``display_unit`` says how people read them (mcg = mg × 1000).
    ``max_concentration_mg_per_ml``, ``max_dose_mg_per_day`` and
    ``caution_dose_mg_per_day`` are the single maxima of catalogues written before the
    library: a clinic's catalogue that still has them gets them as soft limits whose
    source is the catalogue entry (:meth:`all_limits`); the shipped catalogue uses
    ``limits``.
    """

    code: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9\-]*$", max_length=40)]
    name: str
    display_unit: Annotated[str, Field(pattern=r"^(mg|mcg)$")] = "mg"
    stability_days: Annotated[int, Field(gt=0, le=365)] | None = None  # None: compounded, pharmacy BUD
    max_concentration_mg_per_ml: Annotated[float, Field(gt=0, le=100_000)] | None = None
    max_dose_mg_per_day: Annotated[float, Field(gt=0, le=100_000)] | None = None
    caution_dose_mg_per_day: Annotated[float, Field(gt=0, le=100_000)] | None = None
    is_ziconotide: bool = False
    is_opioid: bool = False
    source: str = ""
    #: Strengths on a product label (mg/mL): never a hard block (issue 18.2, Infumorph 25 mg/mL).
    labelled_concentrations_mg_per_ml: tuple[Annotated[float, Field(gt=0, le=100_000)], ...] = ()
    limits: Annotated[tuple[DrugLimit, ...], Field(max_length=40)] = ()
    #: A label's boxed warning shown wherever this drug's refills are (baclofen withdrawal).
    boxed_warning: Annotated[str, Field(max_length=1000)] = ""

    @model_validator(mode="after")
    def _limits_named_once(self) -> "Drug":
        keys = [(lim.kind, lim.ref) for lim in self.limits]
        dupes = sorted({f"{k.value} {r}" for k, r in keys if keys.count((k, r)) > 1})
        if dupes:
            raise ValueError(f"{self.code}: limit listed twice: {', '.join(dupes)}")
        return self

    @property
    def per_mg(self) -> float:
        """Display units per mg."""
        return 1000.0 if self.display_unit == "mcg" else 1.0

    def show(self, amount_mg: float, per: str = "") -> str:
        """Format an amount in the drug's display unit, e.g. ``2.4 mcg/day``."""
        value = round(amount_mg * self.per_mg, 6)  # mg → mcg without float dust (0.0192 → 19.2)
        return f"{value:.6g} {self.display_unit}{per}"

    def all_limits(self) -> tuple[DrugLimit, ...]:
        """The library limits and, for a catalogue written before the library, its single
        maxima as soft limits naming the catalogue entry as their source."""
        legacy = []
        where = f"clinic catalogue entry {self.code}" + (f" ({self.source})" if self.source else "")
        for kind, value, ref in (
            (LimitKind.max_concentration, self.max_concentration_mg_per_ml, "catalogue-max"),
            (LimitKind.max_dose, self.max_dose_mg_per_day, "catalogue-max"),
            (LimitKind.max_dose, self.caution_dose_mg_per_day, "catalogue-caution"),
        ):
            if value is not None:
                legacy.append(DrugLimit(kind=kind, value=value, severity="soft", source=where, ref=ref))
        return (*self.limits, *legacy)

    def is_labelled_strength(self, concentration_mg_per_ml: float) -> bool:
        return any(abs(concentration_mg_per_ml - c) <= 1e-9 for c in self.labelled_concentrations_mg_per_ml)

    def tightening_problem(self, current: "Drug") -> str | None:
        """Why this entry cannot replace ``current`` (the one in the database) as a clinic's
        tightening of its limits, or None when it can: every other field is the same,
        and every current limit is still there (same kind and source name) with a value
        no looser and a severity no softer; new limits may be added."""
        same = self.model_dump(exclude={"limits"}) == current.model_dump(exclude={"limits"})
        if not same:
            return "differs in more than its limits; give it a new code"
        mine = {(lim.kind, lim.ref): lim for lim in self.limits}
        for old in current.limits:
            new = mine.get((old.kind, old.ref))
            if new is None:
                return f"drops the limit {old.kind.value} {old.ref}; limits may be added or tightened, never removed"
            looser = new.value < old.value if old.kind is LimitKind.min_step_interval else new.value > old.value
            if looser or (old.severity == "hard" and new.severity == "soft") or new.region != old.region or new.consensus != old.consensus:
                return f"loosens the limit {old.kind.value} {old.ref}; limits may be added or tightened, never loosened"
        return None


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    device_models: list[DeviceModel]
    drugs: list[Drug]

    @model_validator(mode="after")
    def _unique(self) -> "Catalogue":
        for name, items in (("device_models", self.device_models), ("drugs", self.drugs)):
            codes = [i.code for i in items]
            dupes = sorted({c for c in codes if codes.count(c) > 1})
            if dupes:
                raise ValueError(f"{name}: duplicate code {', '.join(dupes)}")
        return self

    def device_model(self, code: str) -> DeviceModel:
        for m in self.device_models:
            if m.code == code:
                return m
        raise KeyError(code)

    def drug(self, code: str) -> Drug:
        for d in self.drugs:
            if d.code == code:
                return d
        raise KeyError(code)


@functools.cache
def shipped_catalogue() -> Catalogue:
    """The catalogue in ``devicelog/data/catalogue.json``."""
    text = resources.files("devicelog.data").joinpath("catalogue.json").read_text(encoding="utf-8")
    return Catalogue.model_validate(json.loads(text))
