"""The drug-limit library (issue 18.2): each drug's limits, labelled strengths and boxed warning.

``drug.limits`` (a JSON list of ``clinic.catalogue.DrugLimit`` values: kind, value,
soft or hard, source, region, consensus), ``drug.labelled_concentrations_mg_per_ml``
(a JSON list) and ``drug.boxed_warning`` (text).

The shipped drugs a database already holds are brought to the library when they are
still exactly as an earlier devicelog shipped them: their single maxima
(``max_concentration_mg_per_ml``, ``max_dose_mg_per_day``, ``caution_dose_mg_per_day``)
become the library's limits, each naming its source.  A drug entry a clinic added keeps
its values (its single maxima are read as soft limits naming the entry).  Every change
is audited, so ``verify`` does not take it for one made outside devicelog.  The forecast
reads these columns: ``FORECAST_VERSION`` 5 rebuilds the due table.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from devicelog.store import audit

# revision identifiers, used by Alembic.
revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

#: The drug rows devicelog shipped before the library (catalogue.json up to revision 0008).
EARLIER_SHIPPED = {
    "morphine": (20, 15, 20, "Infumorph label (90 d in pump, caution >20 mg/d); PACC 2017 maxima 20 mg/mL, 15 mg/d [GK, verify]"),
    "hydromorphone": (15, 10, None, "PACC 2017 maxima 15 mg/mL, 10 mg/d [GK, verify]; compounded: pharmacy BUD"),
    "fentanyl": (10, 1.0, None, "PACC 2017 maxima 10 mg/mL, 1000 mcg/d [GK, verify]; compounded: pharmacy BUD"),
    "sufentanil": (None, None, None, "compounded: pharmacy BUD; no maxima in the reference"),
    "bupivacaine": (30, 20, None, "PACC 2017 maximum 30 mg/mL [GK, verify]; clinical range 6-20 mg/d used as the dose warning"),
    "clonidine": (1.0, 2.0, None, "PACC 2017 maximum 1000 mcg/mL [GK, verify]; clinical range 250-2000 mcg/d used as the dose warning"),
    "ziconotide": (0.1, 0.0216, None, "prialt.com HCP pump page; EU SmPC: first refill <=14 d, then 40 d diluted / 84 d undiluted; max 21.6 mcg/d (EU)"),
}


def _same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(float(a) - float(b)) < 1e-12)


def upgrade() -> None:
    op.add_column("drug", sa.Column("labelled_concentrations_mg_per_ml", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("drug", sa.Column("limits", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("drug", sa.Column("boxed_warning", sa.Text(), nullable=False, server_default=""))
    from devicelog.clinic.catalogue import shipped_catalogue

    shipped = {d.code: d for d in shipped_catalogue().drugs}
    conn = op.get_bind()
    t = sa.Table("drug", sa.MetaData(), autoload_with=conn)
    changes = []
    for row in conn.execute(sa.select(t).order_by(t.c.code)).mappings().all():
        before_new = audit.row_values(row)
        before = {k: v for k, v in before_new.items() if k not in ("labelled_concentrations_mg_per_ml", "limits", "boxed_warning")}
        earlier = EARLIER_SHIPPED.get(row["code"])
        new = shipped.get(row["code"])
        if earlier is not None and new is not None and all(
            _same(row[k], v) for k, v in zip(("max_concentration_mg_per_ml", "max_dose_mg_per_day", "caution_dose_mg_per_day"), earlier[:3])
        ) and row["source"] == earlier[3]:
            values = new.model_dump(mode="json", exclude={"code"})
            conn.execute(t.update().where(t.c.code == row["code"]).values(**values))
            after = audit.row_values(conn.execute(sa.select(t).where(t.c.code == row["code"])).mappings().one())
        else:
            after = before_new
        changes.append(audit.Change("drug", row["code"], before, after))
    if changes:
        audit.append(conn, action="catalogue: drugs get the drug-limit library (limits with their sources, labelled strengths)",
                     author="devicelog migration 0011", changes=changes)


def downgrade() -> None:
    for name in ("boxed_warning", "limits", "labelled_concentrations_mg_per_ml"):
        op.execute(f"ALTER TABLE drug DROP COLUMN {name}")
