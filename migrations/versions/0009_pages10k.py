"""pages at scale: a partial index of the calendar events whose flags may ask for attention

Revision ID: 0009_pages10k
Revises: 0008_replanfast
Create Date: 2026-12-07 18:00:00

``ix_calendar_event_attention_date`` holds only events flagged with more than "moved to a working
day" (a few percent of the calendar), so the Today page's flagged events and decisions waiting
read those instead of every open event of the next six weeks / four months;
``ix_outbox_message_send_after_id`` lets the message log read one page in send-time order.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0009_pages10k"
down_revision = "0008_replanfast"
branch_labels = None
depends_on = None

ATTENTION = sa.text("CAST(flags AS VARCHAR) NOT IN ('[]', '[\"moved_non_working_day\"]')")


def upgrade():
    with op.batch_alter_table("calendar_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_calendar_event_attention_date",
            ["status", "date"],
            unique=False,
            postgresql_where=ATTENTION,
            sqlite_where=ATTENTION,
        )
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_message_send_after_id", ["send_after", "id"], unique=False)


def downgrade():
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_message_send_after_id")
    with op.batch_alter_table("calendar_event", schema=None) as batch_op:
        batch_op.drop_index("ix_calendar_event_attention_date")
