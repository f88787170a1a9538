"""Reading what the quality report needs (issue 17, section 3), in a stream.

The report reads refills, their reviews (rule 26) and pump programming changes (from each pump's last fill
before the period, so the first refill of the period has the fill it is measured
against), wound checks up to 90 days after the period, and every reinterventions,
trial start and end and outcome up to the period's end.  Interrogations, the bulk of a
clinic's events, are never read, nor is anything after the period (but wound checks).

Devices are read in batches of :data:`BATCH` (Core: devices joined to their patients
and models, then the batch's wanted event rows, validated as ``queries._read_events``
does) and yielded as ``DeviceHistory`` one at a time, so memory holds one batch, not
the clinic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

from sqlalchemy import Text, and_, cast, func, or_
from sqlalchemy import select as sa_select

from devicelog.clinic.history import (
    DeviceHistory,
    DeviceInfo,
    PatientInfo,
    effective_events,
)
from devicelog.clinic.quality import SSI_WINDOW_DAYS, Period
from devicelog.clinic.records import DeviceKind, EventKind
from devicelog.store import queries

BATCH = 2000

_ALWAYS = (EventKind.refill_review.value, EventKind.reintervention.value, EventKind.trial_start.value, EventKind.trial_end.value, EventKind.outcome.value)
_PUMP = (EventKind.refill.value, EventKind.programming.value)


def _wanted(E, period: Period, last_fill_before, ziconotide_codes: Sequence[str]):
    """The event rows the report reads (see the module's docstring); amendments and the
    originals they amend are read whatever their date, so ``effective_events`` sees both.

    Older refills are read only when they hold ziconotide: whether a fill is a pump's
    *first* ziconotide fill (rule 5: first refill within 14 days) depends on them.  The
    test is a text match on the stored JSON (``"ziconotide"``), which may read a row too
    many (a note naming the drug), never one too few."""
    wound_until = period.end + dt.timedelta(days=SSI_WINDOW_DAYS + 1)
    since = func.coalesce(last_fill_before.c.since, period.start)
    amended = sa_select(E.c.amends_id).where(E.c.amends_id.is_not(None)).scalar_subquery()
    return or_(
        and_(E.c.kind.in_(_ALWAYS), E.c.occurred_on <= period.end),
        and_(E.c.kind == EventKind.wound_check.value, E.c.occurred_on >= period.start, E.c.occurred_on <= wound_until),
        and_(E.c.kind.in_(_PUMP), E.c.occurred_on >= since, E.c.occurred_on <= period.end),
        *(and_(E.c.kind == EventKind.refill.value, E.c.occurred_on < since, cast(E.c.data, Text).like(f'%"{code}"%')) for code in ziconotide_codes),
        E.c.amends_id.is_not(None),
        E.c.id.in_(amended),
    )


def quality_histories(session, period: Period, kinds: Sequence[DeviceKind] = ()) -> Iterator[DeviceHistory]:
    """Each device of ``kinds`` (all when empty) implanted by the period's end, with the
    events the quality report reads, in device id order."""
    D = queries._HISTORY_DEVICE_T.c
    P = queries._PATIENT_T.c
    E = queries._tables().EventRow.__table__
    models = {m.code: m for m in queries.device_models(session)}
    ziconotide_codes = sorted(code for code, drug in queries.drugs_by_code(session).items() if drug.is_ziconotide)
    codes = [code for code, m in models.items() if not kinds or m.kind in kinds]
    ids = [
        r[0]
        for r in session.execute(
            sa_select(D.id).where(D.model_code.in_(codes), D.implanted_on <= period.end).order_by(D.id)
        )
    ]
    last_fill_before = (
        sa_select(E.c.device_id, func.max(E.c.occurred_on).label("since"))
        .where(E.c.kind == EventKind.refill.value, E.c.occurred_on < period.start, E.c.amends_id.is_(None))
        .group_by(E.c.device_id)
        .subquery()
    )
    patient_columns = [c.label(f"p_{c.name}") for c in queries._PATIENT_T.c]
    patient_names = [f"p_{c.name}" for c in queries._PATIENT_T.c]
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        rows = session.execute(
            sa_select(*queries._HISTORY_DEVICE_T.c, *patient_columns)
            .join_from(queries._HISTORY_DEVICE_T, queries._PATIENT_T, P.id == D.patient_id)
            .where(D.id.in_(batch))
            .order_by(D.id)
        ).all()
        in_batch = E.c.device_id.in_(batch)
        event_ids = sa_select(E.c.id).select_from(E.outerjoin(last_fill_before, last_fill_before.c.device_id == E.c.device_id)).where(
            in_batch, _wanted(E, period, last_fill_before, ziconotide_codes)
        )
        events: dict[int, list] = {}
        for event in queries._read_events(session, E.c.id.in_(event_ids)):
            events.setdefault(event.device_id, []).append(event)
        patients: dict[int, PatientInfo] = {}
        for r in rows:
            values = r._asdict()
            patient = patients.get(values["patient_id"])
            if patient is None:
                patient = patients[values["patient_id"]] = PatientInfo.model_validate({n[2:]: values[n] for n in patient_names})
            device = {n: values[n] for n in queries._DEVICE_FIELDS}
            device["model"] = models[r.model_code]
            yield DeviceHistory(
                patient=patient,
                device=DeviceInfo.model_validate(device),
                events=tuple(effective_events(events.get(r.id, []))),
            )
