"""Clinic settings: a TOML file whose every value defaults to the clinical reference.

The defaults are the "Clinic defaults" table of the clinical reference
(``shared/domain.md``); the allowed ranges are its "allowed" column where it has
one, and otherwise a range wide enough for any clinic and narrow enough to catch
a typing slip.  A value outside its range is refused at start with the key, the
value and the range.

Path: ``--settings PATH``, else ``$DEVICELOG_SETTINGS``, else ``settings.toml`` in
the user's config directory if it exists, else the defaults.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from devicelog.clinic.records import DeviceKind

ENV_VAR = "DEVICELOG_SETTINGS"


class SettingsError(ValueError):
    """The settings file is unreadable or holds a value outside its allowed range."""


class WoundCheck(BaseModel):
    """One scheduled wound check after an implant or revision (rule 20)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    day: Annotated[int, Field(ge=1, le=365)]
    window_start_day: Annotated[int, Field(ge=0, le=365)]
    window_end_day: Annotated[int, Field(ge=1, le=400)]

    @model_validator(mode="after")
    def _window(self) -> "WoundCheck":
        if not self.window_start_day <= self.day <= self.window_end_day:
            raise ValueError(
                f"day {self.day} must lie in its window {self.window_start_day}-{self.window_end_day}"
            )
        return self


def _default_wound_checks() -> list[WoundCheck]:
    # Day 10 (window 7-14) is the reference's; the windows of days 30 and 90 are [GK].
    return [
        WoundCheck(day=10, window_start_day=7, window_end_day=14),
        WoundCheck(day=30, window_start_day=21, window_end_day=44),
        WoundCheck(day=90, window_start_day=75, window_end_day=104),
    ]


def _default_follow_up() -> dict[DeviceKind, int]:
    # Routine follow-up when nothing else brings the patient in [GK]: "visits monthly,
    # tapering to yearly" (reference 3).  Pumps are seen at every refill anyway.
    return {
        DeviceKind.intrathecal_pump: 180,
        DeviceKind.spinal_cord_stimulator: 180,
        DeviceKind.drg_stimulator: 180,
        DeviceKind.peripheral_nerve_stimulator: 30,
    }


class DiscrepancyLimit(BaseModel):
    """Refill discrepancy flagged above ``limit_ml`` for reservoirs of at least ``reservoir_ml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    reservoir_ml: Annotated[float, Field(gt=0, le=100)]
    limit_ml: Annotated[float, Field(gt=0, le=10)]


def _default_discrepancy_limits() -> list[DiscrepancyLimit]:
    # Maino et al. 2017: > 1 mL in a 20 mL pump, > 2 mL in a 40 mL pump.
    return [DiscrepancyLimit(reservoir_ml=20, limit_ml=1.0), DiscrepancyLimit(reservoir_ml=40, limit_ml=2.0)]


class Settings(BaseModel):
    """Every clinic-configurable number, with the reference's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clinic_name: Annotated[str, Field(max_length=120)] = "Device clinic"
    # Rule 4 / reference 6: book the refill this many days before the low-reservoir alarm.
    refill_margin_days: Annotated[int, Field(ge=3, le=10)] = 7
    # A due item is "due" (not "upcoming") when its date is this close.
    lead_time_days: Annotated[int, Field(ge=0, le=90)] = 14
    # Rule 8 / Maino 2017.
    discrepancy_limits: Annotated[list[DiscrepancyLimit], Field(min_length=1, max_length=10)] = Field(
        default_factory=_default_discrepancy_limits
    )
    # Rule 9: injected vs programmed or measured volume after a fill.  [GK] safe default.
    pocket_fill_tolerance_ml: Annotated[float, Field(gt=0, le=5)] = 0.5
    # Rule 5: a compounded admixture without a recorded pharmacy beyond-use date. [GK] safe default.
    compounded_bud_days_if_missing: Annotated[int, Field(ge=1, le=180)] = 30
    # Rule 5: ziconotide refill limits.
    ziconotide_first_refill_days: Annotated[int, Field(ge=1, le=14)] = 14
    ziconotide_diluted_days: Annotated[int, Field(ge=1, le=60)] = 40
    ziconotide_undiluted_days: Annotated[int, Field(ge=1, le=84)] = 84
    # Issue 18.2 / rule 6: the jurisdiction whose product labels' drug limits apply
    # (ziconotide at most 21.6 mcg/day EU, 19.2 mcg/day US).  ``ziconotide_region``, its
    # earlier name, is still read.
    region: Literal["EU", "US"] = "EU"
    # Issue 18.2: whether consensus-guideline limits (PACC 2017) are checked, as soft warnings.
    consensus_limits: bool = True
    # Issue 19: a drug concentration or daily dose more than this many times the highest
    # number the drug-limit library knows for that drug (a limit or a labelled strength)
    # is refused as a value no clinic can have (a typing slip: 1000 for 10), whatever
    # the overrides.  Not a clinical limit.
    implausible_factor: Annotated[float, Field(ge=2, le=10)] = 4
    # Rule 11: SynchroMed replacement planned at implant + 7 y - 6 months is per model
    # (catalogue); ERI to EOS likewise.  Rule 12: alarm task horizons.
    critical_alarm_days: Annotated[int, Field(ge=0, le=0)] = 0
    noncritical_alarm_days: Annotated[int, Field(ge=0, le=7)] = 7
    # Rules 11 and 28: after ERI a pump's replacement is due this many days before its
    # EOS (ERI + 90 days on a SynchroMed), leaving time to rebook a cancelled operation
    # before the pump stops [GK]; the latest safe date is EOS itself.
    eri_replacement_margin_days: Annotated[int, Field(ge=7, le=60)] = 30
    # Rule 18.
    impedance_open_ohm: Annotated[float, Field(ge=1000, le=20000)] = 4000
    impedance_short_ohm: Annotated[float, Field(ge=0, le=1000)] = 250
    # Rule 15.
    scs_trial_days_min: Annotated[int, Field(ge=0, le=30)] = 3
    scs_trial_days_max: Annotated[int, Field(ge=1, le=30)] = 8
    scs_trial_warn_days: Annotated[int, Field(ge=1, le=60)] = 21
    trial_success_relief_percent: Annotated[float, Field(ge=1, le=100)] = 50
    # Rule 20.
    wound_checks: Annotated[list[WoundCheck], Field(min_length=1, max_length=12)] = Field(
        default_factory=_default_wound_checks
    )
    # Rule 19: primary-cell IPG at ERI when the battery reading reaches this percent [GK].
    ipg_eri_battery_percent: Annotated[float, Field(ge=0, le=50)] = 10
    # Rule 19: a rechargeable IPG not charged for this many days past its interval [GK].
    recharge_grace_days: Annotated[int, Field(ge=0, le=30)] = 0
    # Routine follow-up interval per device kind [GK].
    follow_up_days: dict[DeviceKind, Annotated[int, Field(ge=7, le=730)]] = Field(
        default_factory=_default_follow_up
    )
    # Reference 5 / rule 23: reference only, never for dosing.
    oral_to_it_morphine_ratio: Annotated[float, Field(ge=10, le=500)] = 300
    # Issue 6: calendar reminder before each due item.
    calendar_reminder_days: Annotated[int, Field(ge=0, le=30)] = 7
    # Issue 6: print the PDF with this command (e.g. "lp"); empty means do not print.
    print_command: Annotated[str, Field(max_length=200)] = ""
    page_size: Literal["A4", "Letter"] = "A4"
    # Issue 16: a due list PDF longer than this is refused (pointing to csv or html).
    # A 30-day list of a 100,000-patient clinic (57,000 items) is about 7,900 pages;
    # its whole list, about 20,800 pages, is refused.
    due_pdf_max_pages: Annotated[int, Field(ge=1, le=100_000)] = 10_000
    # Issue 13 item 6 / issue 19: dates a clinic's record can have.  No date (birth, visit,
    # beyond-use, MRI, charge, record instant) is before ``earliest_date``; none is more
    # than ``planned_years_ahead`` years after today (a planned MRI, a beyond-use date).
    earliest_date: Annotated[dt.date, Field(ge=dt.date(1850, 1, 1), le=dt.date(2000, 1, 1))] = dt.date(1900, 1, 1)
    planned_years_ahead: Annotated[int, Field(ge=1, le=20)] = 5
    # A patient older than this on the day of registration is refused as a typing slip.
    max_age_years: Annotated[int, Field(ge=100, le=130)] = 120

    @model_validator(mode="before")
    @classmethod
    def _earlier_names(cls, values):
        if isinstance(values, dict) and "ziconotide_region" in values:
            values = dict(values)
            old = values.pop("ziconotide_region")
            if values.setdefault("region", old) != old:
                raise ValueError(f"region {values['region']!r} and ziconotide_region {old!r} disagree: keep region only")
        return values

    @field_validator("follow_up_days", mode="before")
    @classmethod
    def _follow_up_over_defaults(cls, value):
        # A file that sets one kind's interval keeps the defaults of the others, so no
        # device kind silently loses its routine follow-up.
        if isinstance(value, dict):
            return {**{k.value: v for k, v in _default_follow_up().items()}, **value}
        return value

    @model_validator(mode="after")
    def _order(self) -> "Settings":
        if self.scs_trial_days_min > self.scs_trial_days_max:
            raise ValueError("scs_trial_days_min is above scs_trial_days_max")
        if self.impedance_short_ohm >= self.impedance_open_ohm:
            raise ValueError("impedance_short_ohm must be below impedance_open_ohm")
        return self

    def discrepancy_limit_ml(self, reservoir_ml: float) -> float:
        """Rule 8: the flag threshold for a reservoir.

        The limit of the largest listed reservoir size not above this one; a reservoir
        smaller than every listed size takes the smallest size's limit.  A 30 mL pump
        therefore gets the 20 mL limit (1.0 mL): the stricter one, which is the safe side.
        """
        limits = sorted(self.discrepancy_limits, key=lambda d: d.reservoir_ml)
        chosen = limits[0]
        for d in limits:
            if d.reservoir_ml <= reservoir_ml + 1e-9:
                chosen = d
        return chosen.limit_ml


def default_settings_path() -> Path:
    from platformdirs import user_config_path

    return user_config_path("devicelog") / "settings.toml"


def _describe(error: ValidationError) -> str:
    lines = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(file)"
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"  {where}{shown}: {e['msg']}")
    return "\n".join(lines)


def parse_settings(text: str, source: str = "settings") -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{source}: not valid TOML: {exc}") from None
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(f"{source}: refused:\n{_describe(exc)}") from None


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the clinic settings; with no file, the reference defaults."""
    explicit = path or os.environ.get(ENV_VAR)
    candidate = Path(explicit) if explicit else default_settings_path()
    if not candidate.exists():
        if explicit:
            raise SettingsError(f"settings file {candidate} does not exist")
        return Settings()
    if candidate.is_dir():
        raise SettingsError(f"settings file {candidate} is a folder: give the TOML file inside it")
    try:
        text = candidate.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"settings file {candidate} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"settings file {candidate} is not UTF-8 text (byte {exc.start}): not a TOML file") from None
    return parse_settings(text, str(candidate))
