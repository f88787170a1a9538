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
from typing import Annotated

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
        return self


class Drug(CatalogueEntry):
    """One intrathecal drug with its stability cap and dose warnings (reference 1.3).

    Amounts are in mg; ``display_unit`` says how people read them (mcg = mg × 1000).
    """

    code: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9\-]*$", max_length=40)]
    name: str
    display_unit: Annotated[str, Field(pattern=r"^(mg|mcg)$")] = "mg"
    stability_days: Annotated[int, Field(gt=0, le=365)] | None = None  # None: compounded, pharmacy BUD
    max_concentration_mg_per_ml: Annotated[float, Field(gt=0)] | None = None
    max_dose_mg_per_day: Annotated[float, Field(gt=0)] | None = None  # PACC maximum: warning
    caution_dose_mg_per_day: Annotated[float, Field(gt=0)] | None = None  # label caution: warning
    is_ziconotide: bool = False
    is_opioid: bool = False
    source: str = ""

    @property
    def per_mg(self) -> float:
        """Display units per mg."""
        return 1000.0 if self.display_unit == "mcg" else 1.0

    def show(self, amount_mg: float, per: str = "") -> str:
        """Format an amount in the drug's display unit, e.g. ``2.4 mcg/day``."""
        value = round(amount_mg * self.per_mg, 6)  # mg → mcg without float dust (0.0192 → 19.2)
        return f"{value:.6g} {self.display_unit}{per}"


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
