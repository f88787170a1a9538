"""The first schema: patients, devices, the device and drug catalogue, events.

As devicelog created it with ``create_all`` before migrations existed.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('device_model',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('maker', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('power', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reservoir_ml', sa.Float(), nullable=True),
    sa.Column('low_alarm_ml', sa.Float(), nullable=True),
    sa.Column('constant_flow', sa.Boolean(), nullable=False),
    sa.Column('battery_life_years', sa.Float(), nullable=True),
    sa.Column('eri_to_eos_days', sa.Integer(), nullable=True),
    sa.Column('planned_replacement_months', sa.Integer(), nullable=True),
    sa.Column('lead_removal_day', sa.Integer(), nullable=True),
    sa.Column('mr_status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('mr_note', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    with op.batch_alter_table('device_model', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_model_kind'), ['kind'], unique=False)

    op.create_table('drug',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('display_unit', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('stability_days', sa.Integer(), nullable=True),
    sa.Column('max_concentration_mg_per_ml', sa.Float(), nullable=True),
    sa.Column('max_dose_mg_per_day', sa.Float(), nullable=True),
    sa.Column('caution_dose_mg_per_day', sa.Float(), nullable=True),
    sa.Column('is_ziconotide', sa.Boolean(), nullable=False),
    sa.Column('is_opioid', sa.Boolean(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('patient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mrn', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('goals_of_care', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('died_on', sa.Date(), nullable=True),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_mrn'), ['mrn'], unique=True)
        batch_op.create_index(batch_op.f('ix_patient_name'), ['name'], unique=False)

    op.create_table('device',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('model_code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('serial', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('udi_raw', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('udi_di', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('udi_lot', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('udi_serial', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('udi_expiry', sa.Date(), nullable=True),
    sa.Column('udi_manufactured', sa.Date(), nullable=True),
    sa.Column('implanted_on', sa.Date(), nullable=False),
    sa.Column('implant_type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('site', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('replaced_by_id', sa.Integer(), nullable=True),
    sa.Column('recharge_interval_days', sa.Float(), nullable=True),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['model_code'], ['device_model.code'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], ),
    sa.ForeignKeyConstraint(['replaced_by_id'], ['device.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_device_serial'), ['serial'], unique=True)

    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('occurred_on', sa.Date(), nullable=False),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('amends_id', sa.Integer(), nullable=True),
    sa.Column('amendment_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('voided', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['amends_id'], ['event.id'], ),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_amends_id'), ['amends_id'], unique=False)
        batch_op.create_index('ix_event_device_date', ['device_id', 'occurred_on'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_device_date')
        batch_op.drop_index(batch_op.f('ix_event_amends_id'))

    op.drop_table('event')
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_serial'))
        batch_op.drop_index(batch_op.f('ix_device_patient_id'))

    op.drop_table('device')
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_name'))
        batch_op.drop_index(batch_op.f('ix_patient_mrn'))

    op.drop_table('patient')
    op.drop_table('drug')
    with op.batch_alter_table('device_model', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_model_kind'))

    op.drop_table('device_model')
