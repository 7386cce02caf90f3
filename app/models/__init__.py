"""All SQLAlchemy models; import from here."""

from app.models.audit import AuditEntry, AuditEntryImmutableError
from app.models.messages import (
    MESSAGE_KINDS,
    OUTBOX_STATUSES,
    OutboxMessage,
    OutboxStatusChange,
)
from app.models.patient import EVENT_STATUSES, PATIENT_STATUSES, CalendarEvent, Patient
from app.models.types import UTCDateTime, utcnow
from app.models.user import ROLES, User

__all__ = [
    "EVENT_STATUSES",
    "MESSAGE_KINDS",
    "OUTBOX_STATUSES",
    "PATIENT_STATUSES",
    "ROLES",
    "AuditEntry",
    "AuditEntryImmutableError",
    "CalendarEvent",
    "OutboxMessage",
    "OutboxStatusChange",
    "Patient",
    "UTCDateTime",
    "User",
    "utcnow",
]
