"""pages at 10,000 patients: indexes the Today page and the calendars read alone

Revision ID: 0010_pages10k2
Revises: 0009_pages10k
Create Date: 2026-12-07 20:00:00

The events whose flags may ask for attention (0009's partial index) are indexed with their
patient and flags, so that the Today page's flagged events and decisions read the index alone
and SQLite, which has no table statistics, prefers it to the full (status, date) index (decisions
0.2 s -> 20 ms at 2,000 patients): ``ix_calendar_event_attention_flags`` on SQLite (flags a key),
``ix_calendar_event_attention_patient`` on PostgreSQL (flags included: json has no btree
operator class; the id too, for index-only scans). They replace
``ix_calendar_event_attention_date``.
``ix_calendar_event_date_status_kind_patient`` replaces ``ix_calendar_event_date_status`` (its
first two columns): the month and week calendars count and pick events by day, kind and patient
from the index alone. ``ix_calendar_event_open_window_end`` replaces
``ix_calendar_event_status_window_end`` likewise for Today's overdue events. The Today page's
queries count and pick ids from these indexes alone and read only the 50 rows shown: PostgreSQL
read the whole table for each (1 s per query at 10,000 patients).
``ix_calendar_event_patient_date_status_kind_phase`` replaces (patient_id, date) and
(patient_id): the patients list's next visit and phase come from the index alone (sorted by
phase at 10,000 patients on PostgreSQL: 5.3 s through the patient_id index).
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
                "ix_calendar_event_attention_flags",
                ["status", "date", "patient_id", "flags"],
                unique=False,
                sqlite_where=ATTENTION,
            )
        else:
            batch_op.create_index(
                "ix_calendar_event_attention_patient",
                ["status", "date", "patient_id"],
                unique=False,
                postgresql_where=ATTENTION,
                postgresql_include=["flags", "id"],
            )
        batch_op.drop_index("ix_calendar_event_attention_date")
        batch_op.create_index(
            "ix_calendar_event_open_window_end",
            ["status", "window_end", "kind", "patient_id"],
            unique=False,
            postgresql_include=["date", "id"],
        )
        batch_op.drop_index("ix_calendar_event_status_window_end")
        batch_op.create_index(
            "ix_calendar_event_patient_date_status_kind_phase",
            ["patient_id", "date", "status", "kind", "phase"],
            unique=False,
            postgresql_include=["id"],
        )
        batch_op.drop_index("ix_calendar_event_patient_date")
        batch_op.drop_index("ix_calendar_event_patient_id")


def downgrade():
    with op.batch_alter_table("calendar_event", schema=None) as batch_op:
        batch_op.create_index("ix_calendar_event_patient_id", ["patient_id"], unique=False)
        batch_op.create_index(
            "ix_calendar_event_patient_date", ["patient_id", "date"], unique=False
        )
        batch_op.drop_index("ix_calendar_event_patient_date_status_kind_phase")
        batch_op.create_index(
            "ix_calendar_event_status_window_end", ["status", "window_end"], unique=False
        )
        batch_op.drop_index("ix_calendar_event_open_window_end")
        batch_op.create_index(
            "ix_calendar_event_attention_date",
            ["status", "date"],
            unique=False,
            postgresql_where=ATTENTION,
            sqlite_where=ATTENTION,
        )
        if op.get_bind().dialect.name == "sqlite":
            batch_op.drop_index("ix_calendar_event_attention_flags")
        else:
            batch_op.drop_index("ix_calendar_event_attention_patient")
        batch_op.create_index("ix_calendar_event_date_status", ["date", "status"], unique=False)
        batch_op.drop_index("ix_calendar_event_date_status_kind_patient")
