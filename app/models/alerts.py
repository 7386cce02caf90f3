"""Alerts for the study team (red / amber / green notes) and the on-call rota.

An alert comes from one inbound message (``dedupe_key`` makes creating it idempotent). It is
``open`` until someone acknowledges it, then ``acknowledged`` until someone resolves it with a
note. ``next_escalation_at`` says when an unacknowledged red or amber alert escalates next; the
escalation job claims it with a conditional UPDATE on that column.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.inbound import InboundMessage
from app.models.patient import Patient
from app.models.types import UTCDateTime, utcnow

ALERT_LEVELS = ("red", "amber", "green")
"""Most urgent first; green alerts are notes (no escalation)."""
ALERT_KINDS = ("symptom", "reschedule", "review", "call_task", "opt_out")
"""symptom: a report or check-in; review: a message to read; call_task: an unanswered check-in
(a nurse calls); opt_out: the patient stopped SMS (the inbox shows it so nobody is surprised)."""
ALERT_STATUSES = ("open", "acknowledged", "resolved")
UNRESOLVED_STATUSES = ("open", "acknowledged")
RESOLUTION_ACTIONS = (
    "called_patient",
    "advised_emergency",
    "earlier_visit",
    "dose_hold_suggested",
    "no_action_needed",
)
"""What the team did about an item (the triage inbox asks for one when resolving)."""


class Alert(db.Model):
    """Something a nurse or clinician must look at, with its handling and escalation history."""

    __tablename__ = "alert"
    __table_args__ = (
        Index("ix_alert_status_level_created_at", "status", "level", "created_at"),
        Index("ix_alert_status_next_escalation_at", "status", "next_escalation_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="symptom")
    level: Mapped[str] = mapped_column(String(8))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"), index=True)
    inbound_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_message.id"), index=True
    )
    # The symptom check-in the item is about (check-in alerts and call tasks).
    checkin_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkin_session.id"), index=True
    )
    summary: Mapped[str] = mapped_column(String(300), default="")
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    symptoms: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(80))
    time_to_acknowledge_seconds: Mapped[int | None] = mapped_column(Integer)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(80))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    resolution_action: Mapped[str | None] = mapped_column(String(32))
    # Triage inbox: who on the team is handling it.
    assigned_to: Mapped[str | None] = mapped_column(String(64), index=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalation_count: Mapped[int] = mapped_column(Integer, default=0)
    last_escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_escalation_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient | None] = relationship()
    inbound_message: Mapped[InboundMessage | None] = relationship()

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        """How long it took from creation to the first acknowledgement (None while open)."""
        if self.acknowledged_at is None:
            return None
        return self.acknowledged_at - self.created_at

    @property
    def rank(self) -> int:
        """0 for red, 1 for amber, 2 for green: for ordering by urgency."""
        return ALERT_LEVELS.index(self.level) if self.level in ALERT_LEVELS else 0

    @property
    def is_open(self) -> bool:
        """True while nobody has acknowledged the alert."""
        return self.status == "open"

    def __repr__(self) -> str:
        return f"<Alert {self.id} {self.level} {self.status}>"


class OnCallShift(db.Model):
    """One entry of the on-call rota: role, contact number, weekdays and local time range.

    ``weekdays`` is canonical text ('mon,tue,wed,thu,fri'; 'sat,sun,hol' adds public holidays);
    when ``end_time`` is not after ``start_time`` the shift runs overnight into the next day
    (see app.domain.oncall).
    """

    __tablename__ = "oncall_shift"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String(120))
    phone_e164: Mapped[str] = mapped_column(String(20))
    weekdays: Mapped[str] = mapped_column(String(40))
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    locale: Mapped[str] = mapped_column(String(8), default="zh")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"<OnCallShift {self.role} {self.name} {self.weekdays} {self.start_time}>"
