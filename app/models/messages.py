"""The SMS outbox: one row per message to send, with its status history.

A row is created (status ``planned``) in the same transaction as the calendar change that needs
it, under a UNIQUE natural key ``(patient_id, dedupe_key)``. Dispatchers claim due rows with a
lease, send them, and store the provider's id; see app/services/messaging/dispatch.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.patient import Patient
from app.models.types import UTCDateTime, utcnow

MESSAGE_KINDS = ("reminder", "moved", "checkin", "reply", "notice", "page")

# Where a message is in its life. "planned" waits for due_at; "claimed" is leased by one
# dispatcher; "unknown" means the provider MAY have it (timeout, 5xx, crash mid-send) and only
# the reconciler may decide; the provider's statuses follow once it accepted the message.
OUTBOX_STATUSES = (
    "planned",
    "claimed",
    "unknown",
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "expired",
    "blocked",
    "cancelled",
)
UNSENT_STATUSES = frozenset({"planned"})
IN_FLIGHT_STATUSES = frozenset({"claimed", "unknown"})
ACCEPTED_STATUSES = frozenset({"queued", "sending", "sent", "delivered", "undelivered"})
# Handed to the provider and not known to have failed: a reply may answer such a message.
HANDED_OVER_STATUSES = frozenset({"queued", "sending", "sent", "delivered"})
FAILED_DELIVERY_STATUSES = frozenset({"undelivered", "failed"})
TERMINAL_STATUSES = frozenset(
    {"delivered", "undelivered", "failed", "expired", "blocked", "cancelled"}
)
# Statuses that mean a message reached (or may have reached) the provider: they count towards
# the daily budget and the "no identical body within 24 h" rule.
COUNTED_STATUSES = frozenset(
    {"planned", "claimed", "unknown", "queued", "sending", "sent", "delivered", "undelivered"}
)


class OutboxMessage(db.Model):
    """One SMS to one patient: what, when, and what happened to it."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        UniqueConstraint("patient_id", "dedupe_key"),
        # Pages to staff (kind "page") have no patient: their key is unique per recipient.
        UniqueConstraint("recipient", "dedupe_key"),
        Index("ix_outbox_message_status_due_at", "status", "due_at"),
        # Claiming: only the messages still to send, in the claim's order. Partial, so its size
        # follows the unsent messages, not the whole history (bench/bench_claim.py).
        Index(
            "ix_outbox_message_unsent_due",
            "due_at",
            "id",
            postgresql_where=text("status = 'planned'"),
            sqlite_where=text("status = 'planned'"),
        ),
        # Retention: delivered / final messages by age (app/services/messaging/retention.py).
        Index("ix_outbox_message_status_updated_at", "status", "updated_at"),
        Index("ix_outbox_message_patient_send_after", "patient_id", "send_after"),
        # The message log: the latest (or next) messages by send time, one page read in order.
        Index("ix_outbox_message_send_after_id", "send_after", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The patient the message goes to; None for a page to a staff number (``recipient``).
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"), index=True)
    recipient: Mapped[str | None] = mapped_column(String(20))
    # The patient's contact the message goes to (None: the patient's own number, or a page).
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(16), default="reminder")
    status: Mapped[str] = mapped_column(String(16), default="planned")
    # When the message should go out (UTC) and when a dispatcher may next take it (retries).
    send_after: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What is sent, exactly as sent (signature included), and its cost.
    body: Mapped[str] = mapped_column(Text)
    locale: Mapped[str] = mapped_column(String(8), default="zh")
    segments: Mapped[int] = mapped_column(Integer, default=1)
    encoding: Mapped[str] = mapped_column(String(8), default="UCS-2")
    event_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    notes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # What a reply to this message means (None: it invites none), app.services.messaging.invitations:
    # {"reply": "confirm", "event_keys": [...]} or {"reply": "checkin", "session": id, "question": code}.
    invites: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # The dispatcher's lease and attempts.
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The provider's side.
    sent_to: Mapped[str | None] = mapped_column(String(20))
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    provider_status: Mapped[str | None] = mapped_column(String(16))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last problem, for the UI.
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_reason: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient | None] = relationship()
    history: Mapped[list[OutboxStatusChange]] = relationship(
        back_populates="message",
        order_by="(OutboxStatusChange.at, OutboxStatusChange.id)",
        cascade="all, delete-orphan",
    )

    @property
    def is_final(self) -> bool:
        """True when nothing more will happen to this message."""
        return self.status in TERMINAL_STATUSES

    def __repr__(self) -> str:
        return f"<OutboxMessage {self.id} {self.dedupe_key} {self.status}>"


class OutboxStatusChange(db.Model):
    """One step of a message's life: from which status to which, who did it and why."""

    __tablename__ = "outbox_status_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_message.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(120))
    detail: Mapped[str | None] = mapped_column(Text)

    message: Mapped[OutboxMessage] = relationship(back_populates="history")

    def __repr__(self) -> str:
        return f"<OutboxStatusChange {self.message_id} {self.from_status}->{self.to_status}>"


class ReminderPlanState(db.Model):
    """The fingerprint of the inputs a patient's reminders were last planned from.

    The daily re-plan skips a patient whose calendar, flags, contacts, rules, wording and
    outbox give the same fingerprint (app/services/messaging/reminders.py ``plan_fingerprint``).
    """

    __tablename__ = "reminder_plan_state"

    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
