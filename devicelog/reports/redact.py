"""The redacted copy of a due list: the one that leaves the clinic room (issue 6.4).

A redacted list shows the patient's initials and the last 4 characters of the MRN and
of the device serial (a serial is a HIPAA identifier) instead of the name, the full MRN
and the full serial, no date of death, and no drug names: every drug's catalogue name,
the words inside it ("Morphine (Infumorph)" → morphine, infumorph) and its code are
replaced by "[drug]" in the texts people read (what, why, notes).  A patient's own
name or MRN inside a text is replaced too.  Every format is written from the redacted
list, so no format can leak what another hides.

Nothing in a due list carries a diagnosis; the texts come from the forecast's rules,
so the drug names are the clinical detail they can hold.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Iterable

from devicelog.clinic.catalogue import Drug
from devicelog.store.due import DeviceNote, DueEntry, DueList

DRUG_PLACEHOLDER = "[drug]"
NAME_PLACEHOLDER = "[patient]"


def initials(name: str) -> str:
    """"Ann Marie Lee" → "A.M.L."; a part that starts with no letter is skipped."""
    letters = [next((c for c in part if c.isalpha()), "") for part in re.split(r"[\s\-]+", name)]
    return "".join(f"{c.upper()}." for c in letters if c) or "?"


def short_mrn(mrn: str) -> str:
    """The last 4 characters of an MRN or a serial after an ellipsis: "MRN001234" → "…1234"."""
    return "…" + mrn[-4:]


#: A date of death in a text ("patient deceased on 2026-10-01", "died 2026-10-01").
_DEATH_DATE = re.compile(r"\b(deceased|died)( on)? \d{4}-\d{2}-\d{2}", re.IGNORECASE)


def drug_words(drugs: Iterable[Drug]) -> list[str]:
    """Every word that names a drug: codes, names, and the words inside names."""
    words: set[str] = set()
    for d in drugs:
        words.add(d.code)
        words.add(d.code.replace("-", " "))
        words.add(d.name)
        for part in re.split(r"[()/,+]", d.name):
            part = part.strip()
            if len(part) >= 3:
                words.add(part)
                words.update(w for w in part.split() if len(w) >= 4)
    return sorted((w for w in words if w), key=lambda w: (-len(w), w))


class Redactor:
    """Scrubs drug names (and one patient's identifiers) out of a text."""

    def __init__(self, drugs: Iterable[Drug]):
        words = drug_words(drugs)
        self._drugs = (
            re.compile(r"(?<![\w])(" + "|".join(re.escape(w) for w in words) + r")(?![\w])", re.IGNORECASE)
            if words
            else None
        )

    def text(self, text: str, *, name: str = "", mrn: str = "", serial: str = "") -> str:
        if self._drugs is not None:
            text = self._drugs.sub(DRUG_PLACEHOLDER, text)
        text = _DEATH_DATE.sub(r"\1", text)
        for code in (mrn, serial):
            if code:
                text = re.sub(re.escape(code), short_mrn(code), text, flags=re.IGNORECASE)
        for part in {name, *name.split()} if name else ():
            if len(part) >= 2:
                text = re.sub(r"(?<![\w])" + re.escape(part) + r"(?![\w])", NAME_PLACEHOLDER, text, flags=re.IGNORECASE)
        return text


def redact_item(item, redactor: Redactor):
    name, mrn, serial = item.patient_name, item.patient_mrn, item.device_serial
    return replace(
        item,
        patient_name=initials(name),
        patient_mrn=short_mrn(mrn),
        device_serial=short_mrn(serial),
        what=redactor.text(item.what, name=name, mrn=mrn, serial=serial),
        why=redactor.text(item.why, name=name, mrn=mrn, serial=serial),
    )


def redact_due_list(dl: DueList, drugs: Iterable[Drug]) -> DueList:
    """The same list with names, full MRNs and serials, dates of death and drug names taken out."""
    if dl.redacted:
        return dl
    r = Redactor(drugs)
    def entry(e: DueEntry) -> DueEntry:
        ack = e.ack
        if ack is not None:
            i = e.item
            ack = replace(ack, reason=r.text(ack.reason, name=i.patient_name, mrn=i.patient_mrn, serial=i.device_serial),
                          what=redact_item(i, r).what)
        return DueEntry(redact_item(e.item, r), e.status, ack)

    entries = tuple(entry(e) for e in dl.entries)
    hidden = tuple(entry(e) for e in dl.hidden)
    suppressed = tuple(
        replace(
            s,
            item=redact_item(s.item, r),
            reason=r.text(s.reason, name=s.item.patient_name, mrn=s.item.patient_mrn, serial=s.item.device_serial),
        )
        for s in dl.suppressed
    )
    notes = tuple(
        DeviceNote(
            initials(n.patient_name),
            short_mrn(n.patient_mrn),
            short_mrn(n.device_serial),
            n.device_model,
            replace(n.warning, message=r.text(n.warning.message, name=n.patient_name, mrn=n.patient_mrn, serial=n.device_serial)),
        )
        for n in dl.notes
    )
    return replace(dl, entries=entries, hidden=hidden, suppressed=suppressed, notes=notes, redacted=True)
