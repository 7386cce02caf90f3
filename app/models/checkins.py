"""Symptom check-ins: one session per check-in event of a patient's calendar.

A session is created when the check-in is issued (its first SMS is planned in the outbox), under
a UNIQUE ``(patient_id, event_key)``, so issuing it twice never creates a second one. Answers
arrive by SMS (one question per message, or the whole check-in in one compact reply) or through
the signed web link; both end in ``app.services.conversations.checkins.sessions.record_answers``, which keeps
``answers`` (question code -> value), the graded ``results`` and the triage ``priority``.

Status: ``scheduled`` (issued, its first question not yet handed to the SMS provider: it takes
no SMS answers) -> ``sent`` (the question was handed over, no answer yet) -> ``partial`` (some answers) -> ``answered`` (every
question that applies is answered). Without a complete answer after CHECKIN_CALL_TASK_DAYS the
session becomes ``call_task`` (a nurse calls: PRO-TECT's backup call); a session closed without
any answer is ``missed``. ``closed_at`` is set when the session stops taking answers.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.patient import CalendarEvent, Patient
from app.models.types import UTCDateTime, utcnow

CHECKIN_STATUSES = ("scheduled", "sent", "partial", "answered", "missed", "call_task")
OPEN_CHECKIN_STATUSES = ("scheduled", "sent", "partial", "call_task")
# Statuses in which SMS answers are read (a scheduled check-in's question has not gone out).
SMS_ANSWER_STATUSES = ("sent", "partial", "call_task")
UNANSWERED_STATUSES = ("scheduled", "sent")
CHECKIN_CHANNELS = ("sms", "web", "mixed")


class CheckinSession(db.Model):
    """One symptom check-in of one patient: questions asked, answers, grades and triage."""

    __tablename__ = "checkin_session"
    __table_args__ = (
        UniqueConstraint("patient_id", "event_key"),
        Index("ix_checkin_session_status_sent_at", "status", "sent_at"),
        Index("ix_checkin_session_patient_sent_at", "patient_id", "sent_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("calendar_event.id"), index=True)
    event_key: Mapped[str] = mapped_column(String(64))
    event_date: Mapped[date] = mapped_column(Date)
    phase: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="sent")
    channel: Mapped[str | None] = mapped_column(String(8))
    locale: Mapped[str] = mapped_column(String(8), default="zh")
    # The questionnaire as issued: item codes in order (the protocol may change later).
    items: Mapped[list[str]] = mapped_column(JSON, default=list)
    current_question: Mapped[str | None] = mapped_column(String(8))
    # question code -> answer (int 0-4, 0/1, or a temperature in degrees C).
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Every answer as received: [{code, value, channel, at}], for the audit trail.
    answer_log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Graded items: [{item, symptom, ctcae_term, scores, composite_grade, grade, present, ...}].
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    priority: Mapped[str | None] = mapped_column(String(8))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    # A red resting on a one-character SMS answer, asked back before paging (issue 16 §4):
    # {"question": code, "value": v, "asked_at": iso, "inbound": id}; None when nothing waits.
    red_check: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # Why no SMS could be sent (no_consent, opted_out, invalid_number), if so.
    delivery_blocked: Mapped[str | None] = mapped_column(String(32))
    # When the check-in was issued, then when its first question was handed to the provider.
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_answer_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    call_task_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship()
    event: Mapped[CalendarEvent | None] = relationship()

    @property
    def is_open(self) -> bool:
        """True while the session takes answers."""
        return self.closed_at is None and self.status in OPEN_CHECKIN_STATUSES

    @property
    def answered_count(self) -> int:
        """How many questions have an answer."""
        return len(self.answers or {})

    def __repr__(self) -> str:
        return f"<CheckinSession {self.id} {self.event_key} {self.status}>"
