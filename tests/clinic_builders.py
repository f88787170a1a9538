"""Hand-built device histories for the forecast tests (no database).

``Story`` collects events for one device; each ``add`` gets the next id and a
``recorded_at`` one minute after the previous event, so same-day events keep the
order they were written in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from devicelog.clinic.catalogue import shipped_catalogue
from devicelog.clinic.history import DeviceHistory, DeviceInfo, PatientInfo
from devicelog.clinic.records import (
    Alarm,
    AlarmCode,
    DeviceStatus,
    DrugConcentration,
    Event,
    GoalsOfCare,
    ImplantType,
    InterrogationData,
    PatientStatus,
    ProgrammingData,
    PumpMode,
    PumpProgram,
    RefillData,
    ReinterventionData,
    ReinterventionKind,
    WoundCheckData,
)
from devicelog.settings import Settings

CATALOGUE = shipped_catalogue()
SETTINGS = Settings()
BASE_TIME = dt.datetime(2024, 1, 1, 8, 0, tzinfo=dt.timezone.utc)


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def patient(
    *,
    goals: GoalsOfCare = GoalsOfCare.active_treatment,
    status: PatientStatus = PatientStatus.active,
    died_on: dt.date | None = None,
) -> PatientInfo:
    return PatientInfo(
        id=1,
        mrn="MRN-001",
        name="Ada Test",
        birth_date=d("1950-03-04"),
        goals_of_care=goals,
        status=status,
        died_on=died_on,
    )


def device(
    model: str = "synchromed-ii-20",
    implanted_on: str = "2025-01-06",
    *,
    status: DeviceStatus = DeviceStatus.active,
    implant_type: ImplantType = ImplantType.permanent,
    recharge_interval_days: float | None = None,
) -> DeviceInfo:
    return DeviceInfo(
        id=10,
        serial="SN-10",
        model=CATALOGUE.device_model(model),
        implanted_on=d(implanted_on),
        status=status,
        implant_type=implant_type,
        recharge_interval_days=recharge_interval_days,
    )


def simple_program(
    dose_mg_per_day: float,
    drug: str = "morphine",
    concentration_mg_per_ml: float = 10.0,
    *,
    extra: list[tuple[str, float]] | None = None,
    bolus_ml: float = 0.0,
    bolus_max_per_day: int = 0,
) -> PumpProgram:
    drugs = [DrugConcentration(drug=drug, concentration_mg_per_ml=concentration_mg_per_ml)]
    drugs += [DrugConcentration(drug=c, concentration_mg_per_ml=v) for c, v in (extra or [])]
    return PumpProgram(
        mode=PumpMode.simple_continuous,
        drugs=drugs,
        dose_mg_per_day=dose_mg_per_day,
        bolus_ml=bolus_ml,
        bolus_max_per_day=bolus_max_per_day,
    )


def refill(
    program: PumpProgram,
    *,
    after_ml: float = 20.0,
    added_ml: float | None = None,
    withdrawn_ml: float = 0.0,
    measured_after_ml: float | None = None,
    bolus_since_ml: float = 0.0,
    bud: str | None = None,
    low_alarm_ml: float | None = None,
    pocket_fill_reason: str | None = None,
) -> RefillData:
    return RefillData(
        volume_withdrawn_ml=withdrawn_ml,
        volume_added_ml=after_ml if added_ml is None else added_ml,
        reservoir_volume_after_ml=after_ml,
        measured_after_ml=measured_after_ml,
        program=program,
        bolus_volume_since_last_fill_ml=bolus_since_ml,
        admixture_bud=None if bud is None else d(bud),
        low_alarm_ml=low_alarm_ml,
        pocket_fill_reason=pocket_fill_reason,
    )


def interrogation(**kwargs) -> InterrogationData:
    if "alarms" in kwargs:
        kwargs["alarms"] = [a if isinstance(a, Alarm) else Alarm(code=AlarmCode(a)) for a in kwargs["alarms"]]
    return InterrogationData(**kwargs)


def programming(program: PumpProgram, reservoir_volume_ml: float | None = None) -> ProgrammingData:
    return ProgrammingData(pump_program=program, reservoir_volume_ml=reservoir_volume_ml, reason="dose change")


def reintervention(kind: str) -> ReinterventionData:
    return ReinterventionData(reintervention=ReinterventionKind(kind), reason="test")


def wound(**kwargs) -> WoundCheckData:
    return WoundCheckData(**kwargs)


@dataclass
class Story:
    """One device's record, written event by event."""

    device: DeviceInfo = field(default_factory=device)
    patient: PatientInfo = field(default_factory=patient)
    events: list[Event] = field(default_factory=list)

    def add(self, on: str, data) -> "Story":
        n = len(self.events) + 1
        self.events.append(
            Event(
                id=100 + n,
                device_id=self.device.id,
                occurred_on=d(on),
                author="nurse",
                recorded_at=BASE_TIME + dt.timedelta(minutes=n),
                data=data,
            )
        )
        return self

    @property
    def history(self) -> DeviceHistory:
        return DeviceHistory(patient=self.patient, device=self.device, events=tuple(self.events))


def codes(forecast) -> list[str]:
    return sorted(i.code for i in forecast.items)


def item(forecast, code: str):
    found = [i for i in forecast.items if i.code == code]
    assert len(found) == 1, f"expected one {code!r} item, got {[i.code for i in forecast.items]}"
    return found[0]
