"""pages at 10,000 patients: covering indexes for the Today page (SQLite) and the calendars

Revision ID: 0010_pages10k2
Revises: 0009_pages10k
Create Date: 2026-12-07 20:00:00

``ix_calendar_event_attention_cover`` (SQLite only): the events whose flags may ask for
attention, with patient and flags, so that SQLite (no table statistics) reads it for the Today
page's flagged events and decisions instead of every open event of the next four months.
``ix_calendar_event_date_status_kind_patient``: the month and week calendars count events by
day, kind and patient from the index alone; it replaces ``ix_calendar_event_date_status`` (its
first two columns).
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0010_pages10k2"
down_revision = "0009_pages10k"
branch_labels = None
depends_on = None

ATTENTION = sa.text("CAST(flags AS VARCHAR) NOT IN ('[]', '[\"moved_non_working_day\"]')")


def upgrade():
    with op.batch_alter_table("calendar_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_calendar_event_date_status_kind_patient",
            ["date", "status", "kind", "patient_id"],
            unique=False,
        )
        batch_op.drop_index("ix_calendar_event_date_status")
        if op.get_bind().dialect.name == "sqlite":
            batch_op.create_index(
                "ix_calendar_event_attention_cover",
                ["status", "date", "patient_id", "flags"],
                unique=False,
                sqlite_where=ATTENTION,
            )


def downgrade():
    with op.batch_alter_table("calendar_event", schema=None) as batch_op:
        if op.get_bind().dialect.name == "sqlite":
            batch_op.drop_index("ix_calendar_event_attention_cover")
        batch_op.create_index("ix_calendar_event_date_status", ["date", "status"], unique=False)
        batch_op.drop_index("ix_calendar_event_date_status_kind_patient")
