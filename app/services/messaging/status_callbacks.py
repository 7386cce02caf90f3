"""Delivery status callbacks: move a message's status forward only, whatever the order.

Order: queued < sending < sent < delivered; failed and undelivered are terminal (as is
delivered). A callback that would move a message backwards, or repeats its current status, is
ignored, so callbacks may arrive out of order or twice. A callback can also settle a message
whose send was ambiguous (``unknown``) or still ``claimed`` (the callback raced the API answer):
the outbox id in the callback URL (``?m=<id>``) finds it even without a stored provider id.
That hint is used only for such rows: a planned (never sent) or cancelled row, or one stored
with another SID, is never moved by a callback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.models import OutboxMessage, utcnow
from app.services.messaging.dispatch import mark_patient_unreachable
from app.services.messaging.outbox import transition

logger = logging.getLogger("cadence.status_callbacks")

CALLBACK_STATUS = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
RANK = {
    "planned": 0,
    "claimed": 0,
    "unknown": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
}
HANDED_WITHOUT_SID = ("claimed", "unknown")
"""Statuses of a row that may be at the provider before its SID was stored."""
OPTED_OUT_ERRORS = frozenset({21610})
INVALID_NUMBER_ERRORS = frozenset({21211, 21614, 30006})
ERROR_TEXTS = {
    21610: "recipient opted out (STOP / TD)",
    21211: "invalid 'To' number",
    21614: "not a mobile number",
    30003: "handset unreachable (switched off or out of coverage)",
    30004: "message blocked by the recipient or carrier",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "filtered by the carrier (content or volume)",
    30008: "unknown error at the carrier",
}


@dataclass(frozen=True)
class CallbackResult:
    """What a callback did: 'updated', 'ignored' (stale or repeated) or 'unknown_message'."""

    outcome: str
    message_id: int | None = None
    status: str | None = None


def error_text(code: int | None) -> str | None:
    """A short English explanation of a provider error code, for the message log."""
    if code is None:
        return None
    return ERROR_TEXTS.get(code, f"provider error {code}")


def apply_status_callback(
    sid: str,
    provider_status: str,
    *,
    error_code: int | None = None,
    message_id: int | None = None,
    at: datetime | None = None,
    source: str = "status-callback",
    error_message: str | None = None,
) -> CallbackResult:
    """Apply one status callback and commit; safe to call twice or out of order.

    ``error_message``: the provider's own error text (domestic providers use text codes).
    """
    at = at or utcnow()
    new_status = CALLBACK_STATUS.get((provider_status or "").lower())
    for _ in range(3):
        row = _find(sid, message_id)
        if row is None:
            logger.warning("status callback for unknown message %s (%s)", sid, provider_status)
            return CallbackResult("unknown_message")
        if new_status is None or not _moves_forward(row.status, new_status):
            return CallbackResult("ignored", row.id, row.status)
        if _advance(row, sid, provider_status, new_status, error_code, at, source, error_message):
            _update_patient(row, error_code, at, source)
            db.session.commit()
            return CallbackResult("updated", row.id, new_status)
        db.session.rollback()
    return CallbackResult("ignored", None, None)


def _find(sid: str, message_id: int | None) -> OutboxMessage | None:
    stmt = select(OutboxMessage).where(OutboxMessage.provider_id == sid)
    row = db.session.scalars(stmt.execution_options(populate_existing=True)).first()
    if row is None and message_id is not None:
        row = db.session.get(OutboxMessage, message_id, populate_existing=True)
        if row is not None and not _may_be_at_provider(row):
            return None
    return row


def _may_be_at_provider(row: OutboxMessage) -> bool:
    """True for a row handed to the provider whose SID is not stored yet (claimed or unknown).

    A planned, cancelled or already identified row cannot be the subject of another SID's
    callback: the ``?m=`` hint alone never moves it.
    """
    return row.provider_id is None and row.status in HANDED_WITHOUT_SID


def _moves_forward(current: str, new: str) -> bool:
    if current not in RANK:
        return False
    return RANK[new] > RANK[current]


def _advance(
    row: OutboxMessage,
    sid: str,
    provider_status: str,
    new_status: str,
    error_code: int | None,
    at: datetime,
    source: str,
    error_message: str | None = None,
) -> bool:
    values: dict[str, object] = {"provider_status": provider_status, "provider_id": sid}
    if row.status in ("planned", "claimed", "unknown"):
        values |= {"claimed_by": None, "claimed_until": None, "sent_at": row.sent_at or at}
    if new_status == "delivered":
        values["delivered_at"] = at
    if error_code is not None:
        values |= {"error_code": error_code, "error_reason": new_status}
        values["error_message"] = error_text(error_code)
    if error_message and new_status in ("failed", "undelivered"):
        values |= {"error_reason": new_status, "error_message": error_message[:2000]}
    detail = f"{provider_status}" + (f" (error {error_code})" if error_code else "")
    if error_message and new_status in ("failed", "undelivered"):
        detail += f" ({error_message[:200]})"
    return transition(
        row.id,
        expect=(row.status,),
        to=new_status,
        source=source,
        detail=detail,
        values=values,
        at=at,
    )


def _update_patient(row: OutboxMessage, error_code: int | None, at: datetime, source: str) -> None:
    """An opt-out or invalid-number code marks the patient (or contact), audited as ``source``."""
    if error_code in OPTED_OUT_ERRORS:
        reason = "opted_out"
    elif error_code in INVALID_NUMBER_ERRORS:
        reason = "invalid_number"
    else:
        return
    text = error_text(error_code) or str(error_code)
    mark_patient_unreachable(
        row.patient_id, reason, text, actor=source, at=at, contact_id=row.contact_id
    )
