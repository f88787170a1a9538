"""Oral morphine milligram equivalents (clinical reference 5, rule 23).

Total oral MME uses the CDC 2022 conversion factors.  The intrathecal morphine dose
is shown beside it as a *reference* oral equivalent at the clinic's configured
ratio (``settings.oral_to_it_morphine_ratio``, default 300:1): observed ratios range
from 10:1 to 300:1, so the number is labelled "reference only, not for dosing"
wherever it appears and is never used to compute a dose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from devicelog.clinic.records import OpioidDose

#: Reference 5, "MME factors (CDC 2022)": oral mg × factor = oral MME mg.
CDC_2022_MME_FACTORS: dict[str, float] = {
    "codeine": 0.15,
    "hydrocodone": 1.0,
    "hydromorphone": 5.0,
    "methadone": 4.7,
    "morphine": 1.0,
    "oxycodone": 1.5,
    "oxymorphone": 3.0,
    "tapentadol": 0.4,
    "tramadol": 0.2,
}
#: Reference 5: transdermal fentanyl, mcg/h × 2.4 = oral MME mg/day.
FENTANYL_PATCH_MME_PER_MCG_PER_H = 2.4

#: Rule 23: the words that go with every intrathecal-to-oral figure.
REFERENCE_ONLY = "reference only, not for dosing"


def opioid_key(name: str) -> str:
    """The generic name a factor is looked up by: first word, lower case
    (``"Oxycodone ER"`` → ``oxycodone``, ``"morphine sulfate"`` → ``morphine``)."""
    words = name.strip().lower().replace("-", " ").split()
    return words[0] if words else ""


@dataclass(frozen=True)
class MmePart:
    opioid: str
    amount: str  # as given, with its unit: "40 mg/day", "25 mcg/h patch"
    factor: float
    mme_mg_per_day: float


@dataclass(frozen=True)
class OralMme:
    """Total oral MME with its working; ``complete`` is False when an opioid could not
    be converted (it is named in ``unconverted``, never silently dropped)."""

    total_mg_per_day: float
    parts: tuple[MmePart, ...]
    unconverted: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.unconverted

    @property
    def why(self) -> str:
        terms = [f"{p.opioid} {p.amount} × {p.factor:g} = {p.mme_mg_per_day:g} mg" for p in self.parts]
        text = " + ".join(terms) if terms else "no opioids"
        text += f" → {self.total_mg_per_day:g} mg/day oral MME (CDC 2022)"
        if self.unconverted:
            text += f"; NOT INCLUDED (no CDC 2022 factor): {', '.join(self.unconverted)}"
        return text


def oral_mme(opioids: Iterable[OpioidDose]) -> OralMme:
    """Reference 5 / rule 23: total oral MME in mg/day with the CDC 2022 factors.

    Transdermal fentanyl is ``mcg/h × 2.4``.  An opioid without a factor (e.g.
    buprenorphine, buccal fentanyl) is listed in ``unconverted``.
    """
    parts: list[MmePart] = []
    unconverted: list[str] = []
    for dose in opioids:
        key = opioid_key(dose.opioid)
        if dose.patch_mcg_per_h is not None:
            if key == "fentanyl":
                mme = dose.patch_mcg_per_h * FENTANYL_PATCH_MME_PER_MCG_PER_H
                parts.append(
                    MmePart(dose.opioid, f"{dose.patch_mcg_per_h:g} mcg/h patch", FENTANYL_PATCH_MME_PER_MCG_PER_H, round(mme, 4))
                )
            else:
                unconverted.append(f"{dose.opioid} {dose.patch_mcg_per_h:g} mcg/h patch")
            continue
        factor = CDC_2022_MME_FACTORS.get(key)
        if factor is None:
            unconverted.append(f"{dose.opioid} {dose.dose_mg_per_day:g} mg/day")
            continue
        parts.append(MmePart(dose.opioid, f"{dose.dose_mg_per_day:g} mg/day", factor, round(dose.dose_mg_per_day * factor, 4)))
    total = round(sum(p.mme_mg_per_day for p in parts), 4)
    return OralMme(total, tuple(parts), tuple(unconverted))


def it_morphine_oral_reference_mg_per_day(it_morphine_mg_per_day: float, oral_to_it_ratio: float) -> float:
    """Reference 5 / rule 23: intrathecal morphine × the configured oral:IT ratio.

    A reference figure to compare with oral MME, **never for dosing** (observed ratios
    vary from 10:1 to 300:1); show it with ``REFERENCE_ONLY``.
    """
    return it_morphine_mg_per_day * oral_to_it_ratio


def describe_it_reference(it_morphine_mg_per_day: float, oral_to_it_ratio: float) -> str:
    oral = it_morphine_oral_reference_mg_per_day(it_morphine_mg_per_day, oral_to_it_ratio)
    return (
        f"IT morphine {it_morphine_mg_per_day:g} mg/day × {oral_to_it_ratio:g} (oral:IT {oral_to_it_ratio:g}:1) "
        f"= {oral:g} mg/day oral morphine equivalent, {REFERENCE_ONLY}"
    )
