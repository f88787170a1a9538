"""A clinic whose database holds hostile text in every kind of field (issue 19, section 2).

The text is written straight into the rows, after the clinic was built through the
services: a database can hold what today's entry checks refuse (rows written by an
older version, restored from elsewhere, or by another program), and every output must
show such text without running it.
"""

from __future__ import annotations

import datetime as dt

from sqlmodel import select

from devicelog.store import tables
from devicelog.store.db import write_session
from tests.safety_data import make_clinic

#: Clear the screen, retitle the window (OSC 0), write the clipboard (OSC 52), ring the
#: bell, an 8-bit CSI (C1, U+009B), a right-to-left override and Rich markup.
HOSTILE = "\x1b[2J\x1b]0;owned\x07\x1b]52;c;ZXZpbA==\x07\x9b31m\u202e[red]x[/red]"
#: How every screen and text output shows it.
SHOWN = "␛[2J␛]0;owned␇␛]52;c;ZXZpbA==␇<U+009B>31m<U+202E>[red]x[/red]"

#: A shorter one for the MRN and the serial (40 characters at most on PostgreSQL).
KEY_HOSTILE = "\x1b[2J\x1b]52;c;eA==\x07\x9b\u202e[red]x[/red]"
KEY_SHOWN = "␛[2J␛]52;c;eA==␇<U+009B><U+202E>[red]x[/red]"

NAME = f"Zoe {HOSTILE} Silva"
MRN = f"MRN{KEY_HOSTILE}"
SERIAL = f"NGP{KEY_HOSTILE}"
MRN_SHOWN = f"MRN{KEY_SHOWN}"
SERIAL_SHOWN = f"NGP{KEY_SHOWN}"


def make_hostile_clinic(engine) -> dict[str, int]:
    """``tests.safety_data.make_clinic`` with hostile text in Ann Lee's name and MRN,
    the pump's serial and site, the pump model's and the drug's catalogue names, and three new pump entries: a refill
    (hostile author and pocket-fill reason) and a wound check (hostile site) amended with a
    hostile reason."""
    ids = make_clinic(engine)
    with write_session(engine) as s:
        patient = s.get(tables.Patient, ids["patient"])
        patient.name, patient.mrn = NAME, MRN
        pump = s.get(tables.Device, ids["pump"])
        pump.serial, pump.site = SERIAL, f"abdomen {HOSTILE}"
        s.get(tables.DeviceModelRow, pump.model_code).model = f"SynchroMed {HOSTILE}"
        s.get(tables.DrugRow, "morphine").name = f"Morphine {HOSTILE}"
    with write_session(engine) as s:
        # Event rows are never updated (a trigger refuses it): new rows are added instead.
        refill = s.exec(select(tables.EventRow).where(tables.EventRow.id == ids["refill"])).one()
        wound = s.exec(
            select(tables.EventRow).where(tables.EventRow.device_id == ids["pump"], tables.EventRow.kind == "wound_check")
        ).first()
        s.add(tables.EventRow(
            device_id=ids["pump"], kind="refill", occurred_on=dt.date(2026, 11, 10), author=f"rn{HOSTILE}",
            data={**refill.data, "pocket_fill_reason": f"why {HOSTILE}"},
        ))
        check = tables.EventRow(
            device_id=ids["pump"], kind="wound_check", occurred_on=dt.date(2026, 11, 12), author=f"rn{HOSTILE}",
            data={**wound.data, "site": f"belly {HOSTILE}"},
        )
        s.add(check)
        s.flush()
        s.add(tables.EventRow(
            device_id=ids["pump"], kind="wound_check", occurred_on=dt.date(2026, 11, 12), author=f"dr{HOSTILE}",
            data={**wound.data, "site": f"flank {HOSTILE}"}, amends_id=check.id, amendment_reason=f"wrong {HOSTILE}",
        ))
    return ids
