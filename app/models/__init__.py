"""All SQLAlchemy models; import from here."""

from app.models.audit import AuditEntry, AuditEntryImmutableError
from app.models.patient import EVENT_STATUSES, PATIENT_STATUSES, CalendarEvent, Patient
from app.models.types import UTCDateTime, utcnow
from app.models.user import ROLES, User

__all__ = [
    "EVENT_STATUSES",
    "PATIENT_STATUSES",
    "ROLES",
    "AuditEntry",
    "AuditEntryImmutableError",
    "CalendarEvent",
    "Patient",
    "UTCDateTime",
    "User",
    "utcnow",
]
