"""Creating a database and keeping its catalogue tables in step with the shipped catalogue."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import SQLModel, select

from devicelog.clinic.catalogue import Catalogue, shipped_catalogue
from devicelog.store import tables
from devicelog.store.db import write_session


def prepare(engine: Engine, catalogue: Catalogue | None = None) -> None:
    """Create missing tables and add catalogue entries the database does not have yet."""
    SQLModel.metadata.create_all(engine)
    with write_session(engine) as session:
        seed_catalogue(session, catalogue or shipped_catalogue())


def seed_catalogue(session, catalogue: Catalogue) -> None:
    have_models = set(session.exec(select(tables.DeviceModelRow.code)).all())
    have_drugs = set(session.exec(select(tables.DrugRow.code)).all())
    for m in catalogue.device_models:
        if m.code not in have_models:
            session.add(tables.DeviceModelRow(**m.model_dump(mode="json")))
    for d in catalogue.drugs:
        if d.code not in have_drugs:
            session.add(tables.DrugRow(**d.model_dump(mode="json")))
