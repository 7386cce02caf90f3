"""jobs heartbeat

Revision ID: 0003_jobs_heartbeat
Revises: 0002_signin_sessions
Create Date: 2026-12-07 14:00:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0003_jobs_heartbeat"
down_revision = "0002_signin_sessions"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "jobs_heartbeat",
        sa.Column("process", sa.String(length=160), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("process", name=op.f("pk_jobs_heartbeat")),
    )
    with op.batch_alter_table("jobs_heartbeat", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_heartbeat_beat_at"), ["beat_at"], unique=False)


def downgrade():
    with op.batch_alter_table("jobs_heartbeat", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_heartbeat_beat_at"))

    op.drop_table("jobs_heartbeat")
