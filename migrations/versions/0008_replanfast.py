"""replan: the fingerprint of each patient's last reminder plan (the daily re-plan skips unchanged)

Revision ID: 0008_replanfast
Revises: 0007_scaledata
Create Date: 2026-12-07 18:00:00

``reminder_plan_state`` holds one row per planned patient: a SHA-256 of everything planning
read (calendar, flags, contacts, rules, wording, outbox state). No patient data; dropping it
only makes the next re-plan do every patient in full.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0008_replanfast"
down_revision = "0007_scaledata"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "reminder_plan_state",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("planned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patient.id"],
            name=op.f("fk_reminder_plan_state_patient_id_patient"),
        ),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_reminder_plan_state")),
    )


def downgrade():
    op.drop_table("reminder_plan_state")
