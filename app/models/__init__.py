"""All SQLAlchemy models; import from here."""

from app.models.alerts import (
    ALERT_KINDS,
    ALERT_LEVELS,
    ALERT_STATUSES,
    Alert,
    OnCallShift,
)
from app.models.audit import AuditEntry, AuditEntryImmutableError
from app.models.bulk import BULK_KINDS, BULK_STATUSES, UNFINISHED_BULK_STATUSES, BulkJob
from app.models.checkins import CHECKIN_STATUSES, CheckinSession
from app.models.contacts import (
    CONSENT_METHODS,
    CONSENT_SCOPES,
    CONTACT_MESSAGES,
    RELATIONS,
    Contact,
    ContactConsent,
)
from app.models.heartbeat import JobsHeartbeat
from app.models.inbound import INBOUND_STATUSES, InboundMessage
from app.models.messages import (
    MESSAGE_KINDS,
    OUTBOX_STATUSES,
    OutboxMessage,
    OutboxStatusChange,
    ReminderPlanState,
)
from app.models.patient import EVENT_STATUSES, PATIENT_STATUSES, CalendarEvent, Patient
from app.models.security import SESSION_END_REASONS, RateLimitCounter, UserSession
from app.models.types import UTCDateTime, utcnow
from app.models.user import ROLES, User

__all__ = [
    "ALERT_KINDS",
    "ALERT_LEVELS",
    "ALERT_STATUSES",
    "BULK_KINDS",
    "BULK_STATUSES",
    "CHECKIN_STATUSES",
    "CONSENT_METHODS",
    "CONSENT_SCOPES",
    "CONTACT_MESSAGES",
    "EVENT_STATUSES",
    "INBOUND_STATUSES",
    "MESSAGE_KINDS",
    "OUTBOX_STATUSES",
    "PATIENT_STATUSES",
    "RELATIONS",
    "ROLES",
    "SESSION_END_REASONS",
    "UNFINISHED_BULK_STATUSES",
    "Alert",
    "AuditEntry",
    "AuditEntryImmutableError",
    "BulkJob",
    "CalendarEvent",
    "CheckinSession",
    "Contact",
    "ContactConsent",
    "InboundMessage",
    "JobsHeartbeat",
    "OnCallShift",
    "OutboxMessage",
    "OutboxStatusChange",
    "Patient",
    "RateLimitCounter",
    "ReminderPlanState",
    "UTCDateTime",
    "User",
    "UserSession",
    "utcnow",
]
