"""scale: a partial index for claiming unsent messages, indexes for retention and open events

Revision ID: 0007_scaledata
Revises: 0006_uitoday
Create Date: 2026-12-07 17:00:00

``ix_outbox_message_unsent_due`` holds only ``planned`` rows (PostgreSQL and SQLite partial
index), so claiming a batch costs the same whatever the size of the delivered history;
``ix_outbox_message_status_updated_at`` lets the retention job find old final messages;
``ix_calendar_event_status_date`` serves "open events in a date range" (Today, calendars).
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0007_scaledata"
down_revision = "0006_uitoday"
branch_labels = None
depends_on = None

UNSENT = sa.text("status = 'planned'")


def upgrade():
    with op.batch_alter_table("calendar_event", schema=None) as batch_op:
        batch_op.create_index("ix_calendar_event_status_date", ["status", "date"], unique=False)
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_message_unsent_due",
            ["due_at", "id"],
            unique=False,
            postgresql_where=UNSENT,
            sqlite_where=UNSENT,
        )
        batch_op.create_index(
            "ix_outbox_message_status_updated_at", ["status", "updated_at"], unique=False
        )


def downgrade():
    with op.batch_alter_table("calendar_event", schema=None) as batch_op:
        batch_op.drop_index("ix_calendar_event_status_date")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_message_status_updated_at")
        batch_op.drop_index("ix_outbox_message_unsent_due")
