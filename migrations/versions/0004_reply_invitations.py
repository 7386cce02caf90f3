"""what a reply to an outbound SMS means (outbox_message.invites, checkin_session.red_check)

Revision ID: 0004_reply_invitations
Revises: 0003_jobs_heartbeat
Create Date: 2026-12-07 15:00:00

Existing rows get their invitation back-filled: reminders (and "moved" notices) with events invite
a confirmation, check-in questions invite an answer to their question.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0004_reply_invitations"
down_revision = "0003_jobs_heartbeat"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invites", sa.JSON(), nullable=True))
    with op.batch_alter_table("checkin_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("red_check", sa.JSON(), nullable=True))
    _backfill()


def _backfill():
    table = sa.table(
        "outbox_message",
        sa.column("id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("event_keys", sa.JSON),
        sa.column("items", sa.JSON),
        sa.column("invites", sa.JSON),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(table.c.id, table.c.kind, table.c.event_keys, table.c["items"]).where(
            table.c.kind.in_(("reminder", "moved", "checkin"))
        )
    ).all()
    for row in rows:
        values = row._mapping
        invites = None
        first = (values["items"] or [None])[0]
        if values["kind"] in ("reminder", "moved") and values["event_keys"]:
            invites = {"reply": "confirm", "event_keys": list(values["event_keys"])}
        elif values["kind"] == "checkin" and isinstance(first, dict) and first.get("question"):
            invites = {
                "reply": "checkin",
                "session": first.get("checkin_session"),
                "question": first.get("question"),
            }
        if invites is not None:
            bind.execute(
                sa.update(table).where(table.c.id == values["id"]).values(invites=invites)
            )


def downgrade():
    with op.batch_alter_table("checkin_session", schema=None) as batch_op:
        batch_op.drop_column("red_check")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_column("invites")
