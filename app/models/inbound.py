"""Inbound SMS: every message Twilio posts to the webhook, stored before it is interpreted.

A row is inserted and committed (status ``received``) before anything else happens, under a
UNIQUE ``sid`` (Twilio's MessageSid), so a retried webhook never creates a second row. The
interpretation then fills ``intent``, ``priority`` and ``parse`` and moves the row to
``processed`` in the same transaction as everything it caused (alerts, pages, event updates);
if interpretation fails the row becomes ``failed`` with the error, and a nurse-visible alert
points at it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.patient import Patient
from app.models.types import UTCDateTime, utcnow

INBOUND_STATUSES = ("received", "processed", "failed")
MAX_SID_CHARS = 64
MAX_NUMBER_CHARS = 64


class InboundMessage(db.Model):
    """One SMS a patient (or anyone) sent us: what, from whom, what we understood and replied."""

    __tablename__ = "inbound_message"
    __table_args__ = (
        Index("ix_inbound_message_status_received_at", "status", "received_at"),
        Index("ix_inbound_message_patient_received_at", "patient_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sid: Mapped[str] = mapped_column(String(MAX_SID_CHARS), unique=True)
    from_number: Mapped[str] = mapped_column(String(MAX_NUMBER_CHARS), index=True)
    to_number: Mapped[str | None] = mapped_column(String(MAX_NUMBER_CHARS))
    body: Mapped[str] = mapped_column(Text, default="")
    num_media: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    # The patient's contact who sent it (a caregiver's number), when known.
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id"))
    # What we understood (app.domain.replies / app.domain.triage).
    intent: Mapped[str | None] = mapped_column(String(24))
    priority: Mapped[str | None] = mapped_column(String(8))
    language: Mapped[str | None] = mapped_column(String(8))
    parse: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Processing state and what we answered.
    status: Mapped[str] = mapped_column(String(16), default="received")
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reply_body: Mapped[str | None] = mapped_column(Text)
    reply_locale: Mapped[str | None] = mapped_column(String(8))

    patient: Mapped[Patient | None] = relationship()

    def __repr__(self) -> str:
        return f"<InboundMessage {self.sid} {self.status} {self.priority}>"
