"""Safety notices in the database (issue 18, section 1): import, match, acknowledge, read.

Each write is one transaction of the caller (``store.db.write_session``), audited
(``store.audit``: the tables are in ``AUDITED_TABLES``), and refreshes the stored due
table (``store.forecasts.refresh_devices``) of every device whose items it changes:

* :func:`import_notice`: the notice, and one ``advisory_match`` row per device it
  concerns (``clinic.advisory.match_device``), explanted devices included (listed apart,
  no due item);
* :func:`match_new_devices`: called by ``services.add_devices`` for devices registered
  after a notice was imported, so a later registration gets its match and due item;
* :func:`acknowledge`: what was done for one device; its due item disappears.

Matches are recorded, not recomputed on every read: the report says what devicelog
found and when, the audit trail holds it, and the forecast reads it like any record.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import select

from devicelog.clinic.advisory import ACTIONS, AdvisoryFlag, AdvisoryIn, DeviceFacts, Match, match_device
from devicelog.problems import InputError, Problem


def _t():
    from devicelog.store import tables

    return tables


def notice_of(row) -> AdvisoryIn:
    """The stored notice as its record (read as stored: ``STORED``)."""
    from devicelog.clinic.records import STORED

    return AdvisoryIn.model_validate(
        {
            "title": row.title, "issued_on": row.issued_on, "source": row.source, "reference": row.reference,
            "recommended_action": row.recommended_action, "notice_class": row.notice_class, "rules": row.rules,
            "unparsed": list(row.unparsed or []), "form": row.form,
        },
        context=STORED,
    )


def notices(session) -> list:
    """Every advisory row, by id."""
    A = _t().AdvisoryRow.__table__
    return list(session.execute(select(A).order_by(A.c.id)))


def device_facts(session, device_ids: Iterable[int] | None = None) -> list[tuple[int, str, DeviceFacts]]:
    """(device id, status, facts) of the devices (all when None)."""
    t = _t()
    D, M = t.Device.__table__, t.DeviceModelRow.__table__
    query = select(D.c.id, D.c.status, D.c.serial, D.c.model_code, M.c.device_identifiers, D.c.udi_di, D.c.udi_lot,
                   D.c.udi_serial, D.c.udi_manufactured).join(M, M.c.code == D.c.model_code).order_by(D.c.id)
    if device_ids is not None:
        query = query.where(D.c.id.in_(sorted(set(device_ids))))
    return [
        (r.id, r.status, DeviceFacts(serial=r.serial, model_code=r.model_code, model_identifiers=tuple(r.device_identifiers or ()),
                                     udi_di=r.udi_di, udi_lot=r.udi_lot, udi_serial=r.udi_serial,
                                     udi_manufactured=r.udi_manufactured))
        for r in session.execute(query)
    ]


def _record_matches(session, pairs: list[tuple[int, int, Match]], author: str, action: str, today: dt.date) -> list[int]:
    from devicelog.store import audit

    t = _t()
    rows = [t.AdvisoryMatchRow(advisory_id=a, device_id=d, tier=m.tier, evidence=m.evidence,
                                 matched_on=today, author=author) for a, d, m in pairs]
    if not rows:
        return []
    session.add_all(rows)
    session.flush()
    audit.append(session, action=action, author=author,
                 changes=[audit.Change("advisory_match", r.id, None, audit.row_values(r)) for r in rows])
    return [r.device_id for r in rows]


def import_notice(session, *, notice: AdvisoryIn, author: str, today: dt.date, recorded_at: dt.datetime | None = None):
    """Store the notice and its matches (audited as "import safety notice" and "safety notice
    matches"); refresh the due items of the devices matched.  Returns (row, matches)."""
    from devicelog.store import audit, forecasts

    t = _t()
    known = {r[0] for r in session.execute(select(t.DeviceModelRow.__table__.c.code))}
    unknown = [m for m in notice.rules.models if m not in known]
    if unknown:
        raise InputError([Problem("rules.models", ", ".join(unknown), "not in the device catalogue (see the catalogue's model codes)")])
    values = notice.model_dump()
    values["rules"] = notice.rules.model_dump(mode="json")
    row = t.AdvisoryRow(**values, author=author)
    if recorded_at is not None:
        row.recorded_at = recorded_at
    session.add(row)
    session.flush()
    audit.append(session, action="import safety notice", author=author,
                 changes=[audit.Change("advisory", row.id, None, audit.row_values(row))])
    pairs = []
    for device_id, _status, facts in device_facts(session):
        match = match_device(notice, facts)
        if match is not None:
            pairs.append((row.id, device_id, match))
    matched = _record_matches(session, pairs, author, f"safety notice {row.id}: devices matched", today)
    forecasts.refresh_devices(session, matched)
    return row, pairs


def match_new_devices(session, device_ids: Iterable[int], author: str, today: dt.date) -> list[tuple[int, int, Match]]:
    """Match newly registered devices against every notice imported before (audited);
    the caller refreshes their due items.  Returns (advisory id, device id, match)."""
    ids = list(device_ids)
    rows = notices(session) if ids else []
    if not rows:
        return []
    facts = device_facts(session, ids)
    pairs = []
    for row in rows:
        notice = notice_of(row)
        for device_id, _status, f in facts:
            match = match_device(notice, f)
            if match is not None:
                pairs.append((row.id, device_id, match))
    _record_matches(session, pairs, author, "safety notice: device registered after the notice matches it", today)
    return pairs


def load_notices(session) -> list[tuple[int, AdvisoryIn]]:
    """(id, notice) of every notice, for a form that matches as the person types."""
    return [(row.id, notice_of(row)) for row in notices(session)]


def matches_for(loaded: list[tuple[int, AdvisoryIn]], facts: DeviceFacts) -> list[tuple[int, str, Match]]:
    """(notice id, title, match) of every loaded notice ``facts`` match."""
    found = []
    for notice_id, notice in loaded:
        match = match_device(notice, facts)
        if match is not None:
            found.append((notice_id, notice.title, match))
    return found


def preview_matches(session, facts: DeviceFacts) -> list[tuple[int, str, Match]]:
    """(notice id, title, match) of every notice a device on the form would match: shown
    in the registration preview, before saving."""
    return matches_for(load_notices(session), facts)


def acknowledge(session, *, advisory_id: int, serial: str, actions: list[str], note: str, author: str,
                done_on: dt.date, today: dt.date):
    """Record what was done for one device about one notice; its due item goes."""
    from devicelog.store import audit, forecasts

    t = _t()
    problems = []
    advisory = session.get(t.AdvisoryRow, advisory_id)
    if advisory is None:
        problems.append(Problem("notice", advisory_id, "no safety notice has this number (devicelog advisory list)"))
    device = session.execute(select(t.Device.__table__.c.id).where(t.Device.__table__.c.serial == serial)).scalar()
    if device is None:
        problems.append(Problem("serial", serial, "no device has this serial"))
    wrong = [a for a in actions if a not in ACTIONS]
    if wrong:
        problems.append(Problem("done", ", ".join(wrong), f"unknown action; one of {', '.join(ACTIONS)}"))
    if not actions:
        problems.append(Problem("done", None, f"say what was done: one or more of {', '.join(ACTIONS)}"))
    if done_on > today:
        problems.append(Problem("on", done_on.isoformat(), f"is after today ({today})"))
    if len(note) > 2000:
        problems.append(Problem("note", note[:20], "is longer than 2,000 characters"))
    if problems:
        raise InputError(problems)
    M, A = t.AdvisoryMatchRow.__table__, t.AdvisoryActionRow.__table__
    matched = session.execute(select(M.c.id).where(M.c.advisory_id == advisory_id, M.c.device_id == device)).scalar()
    if matched is None:
        raise InputError([Problem("serial", serial, f"safety notice {advisory_id} does not concern this device")])
    earlier = session.execute(select(A.c.done_on, A.c.author).where(A.c.advisory_id == advisory_id, A.c.device_id == device)).first()
    if earlier is not None:
        raise InputError([Problem("serial", serial, f"already acknowledged on {earlier.done_on} by {earlier.author}")])
    row = t.AdvisoryActionRow(advisory_id=advisory_id, device_id=device, done_on=done_on, actions=list(dict.fromkeys(actions)),
                              note=note.strip(), author=author)
    session.add(row)
    session.flush()
    audit.append(session, action=f"acknowledge safety notice {advisory_id}", author=author,
                 changes=[audit.Change("advisory_action", row.id, None, audit.row_values(row))])
    forecasts.refresh_devices(session, [device])
    return row


# --------------------------------------------------------------------------- reading


def flags_by_device(session, device_ids: list[int]) -> dict[int, list[AdvisoryFlag]]:
    """The recorded matches of these devices with their notices and acknowledgements."""
    t = _t()
    M, A, X = t.AdvisoryMatchRow.__table__, t.AdvisoryRow.__table__, t.AdvisoryActionRow.__table__
    out: dict[int, list[AdvisoryFlag]] = {}
    for start in range(0, len(device_ids), 500):
        chunk = device_ids[start : start + 500]
        acks = {(r.advisory_id, r.device_id): r for r in session.execute(select(X).where(X.c.device_id.in_(chunk)).order_by(X.c.id))}
        query = (select(M.c.advisory_id, M.c.device_id, M.c.tier, M.c.evidence, M.c.matched_on, A.c.title, A.c.reference,
                        A.c.source, A.c.notice_class, A.c.recommended_action)
                 .join(A, A.c.id == M.c.advisory_id).where(M.c.device_id.in_(chunk)).order_by(M.c.device_id, M.c.advisory_id))
        for r in session.execute(query):
            ack = acks.get((r.advisory_id, r.device_id))
            out.setdefault(r.device_id, []).append(
                AdvisoryFlag(
                    advisory_id=r.advisory_id, title=r.title, reference=r.reference, source=r.source,
                    notice_class=r.notice_class, recommended_action=r.recommended_action, tier=r.tier, evidence=r.evidence,
                    matched_on=r.matched_on,
                    acknowledged_on=ack.done_on if ack is not None else None,
                    acknowledged_by=ack.author if ack is not None else None,
                    actions=tuple(ack.actions) if ack is not None else (),
                    note=ack.note if ack is not None else "",
                )
            )
    return out


@dataclass(frozen=True)
class Affected:
    """One device a notice concerns, for the reports."""

    device_id: int
    patient_mrn: str
    patient_name: str
    serial: str
    model: str
    status: str
    tier: int
    evidence: str
    matched_on: dt.date
    acknowledged_on: dt.date | None
    acknowledged_by: str | None
    actions: tuple[str, ...]
    note: str

    @property
    def implanted(self) -> bool:
        return self.status in ("active", "trial")


def affected(session, advisory_id: int) -> list[Affected]:
    """Every device matched to a notice, best tier first, then by serial."""
    t = _t()
    M, D, P, X, Mo = (t.AdvisoryMatchRow.__table__, t.Device.__table__, t.Patient.__table__, t.AdvisoryActionRow.__table__,
                      t.DeviceModelRow.__table__)
    acks = {r.device_id: r for r in session.execute(select(X).where(X.c.advisory_id == advisory_id).order_by(X.c.id))}
    query = (select(M.c.device_id, M.c.tier, M.c.evidence, M.c.matched_on, D.c.serial, D.c.status, P.c.mrn, P.c.name,
                    Mo.c.maker, Mo.c.model)
             .join(D, D.c.id == M.c.device_id).join(P, P.c.id == D.c.patient_id).join(Mo, Mo.c.code == D.c.model_code)
             .where(M.c.advisory_id == advisory_id))
    out = []
    for r in session.execute(query):
        ack = acks.get(r.device_id)
        out.append(Affected(r.device_id, r.mrn, r.name, r.serial, f"{r.maker} {r.model}", r.status, r.tier, r.evidence,
                            r.matched_on, ack.done_on if ack else None, ack.author if ack else None,
                            tuple(ack.actions) if ack else (), ack.note if ack else ""))
    out.sort(key=lambda a: (a.tier, a.serial))
    return out


def counts(session) -> dict[int, tuple[int, int, int]]:
    """Per notice: (devices matched, implanted and not acknowledged, possible matches)."""
    t = _t()
    M, D, X = t.AdvisoryMatchRow.__table__, t.Device.__table__, t.AdvisoryActionRow.__table__
    acked = {(r.advisory_id, r.device_id) for r in session.execute(select(X.c.advisory_id, X.c.device_id))}
    out: dict[int, list[int]] = {}
    for r in session.execute(select(M.c.advisory_id, M.c.device_id, M.c.tier, D.c.status).join(D, D.c.id == M.c.device_id)):
        c = out.setdefault(r.advisory_id, [0, 0, 0])
        c[0] += 1
        if r.status in ("active", "trial") and (r.advisory_id, r.device_id) not in acked:
            c[1] += 1
        if r.tier == 4:
            c[2] += 1
    return {k: tuple(v) for k, v in out.items()}
