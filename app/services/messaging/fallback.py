"""Fallback: a reminder that did not reach its contact goes to the next contact, once.

A reminder (or "your visit has moved" notice) sent to a contact falls back when the provider
says it failed or was undelivered, or when no delivery receipt came within
``CONTACT_FALLBACK_AFTER_MINUTES``. The copy goes to the next contact in the patient's order
allowed to get reminders, under the key ``<original key>:fb``: the outbox's UNIQUE
``(patient_id, dedupe_key)`` makes a second fallback for the same message impossible, and a
fallback never falls back again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select

from app.extensions import db
from app.models import OutboxMessage, Patient
from app.services.messaging import recipients
from app.services.messaging.outbox import add_history
from app.services.messaging.reminders import render_for_recipient
from app.sms.segments import count_segments

FALLBACK_SUFFIX = ":fb"
FALLBACK_KINDS = ("reminder", "moved")
FAILED_STATUSES = ("failed", "undelivered")
WAITING_STATUSES = ("queued", "sending", "sent")
LOOKBACK = timedelta(days=2)


@dataclass
class FallbackReport:
    """What one fallback run did."""

    planned: int = 0
    no_next_contact: int = 0


def fallback_after() -> timedelta:
    """How long a reminder may wait for its delivery receipt before it falls back."""
    return timedelta(minutes=int(current_app.config.get("CONTACT_FALLBACK_AFTER_MINUTES", 120)))


def plan_fallbacks(now: datetime, *, source: str) -> FallbackReport:
    """Plan a copy to the next contact of every reminder that did not reach its contact; commit."""
    report = FallbackReport()
    for row in _candidates(now):
        patient = db.session.get(Patient, row.patient_id)
        if patient is None or _has_fallback(row):
            continue
        target = recipients.next_recipient(patient, row.kind, row.contact_id or 0)
        if target is None:
            report.no_next_contact += 1
            continue
        _plan_copy(row, patient, target, now, source)
        report.planned += 1
    db.session.commit()
    return report


def _candidates(now: datetime) -> list[OutboxMessage]:
    failed = OutboxMessage.status.in_(FAILED_STATUSES)
    no_receipt = (
        OutboxMessage.status.in_(WAITING_STATUSES)
        & OutboxMessage.delivered_at.is_(None)
        & (OutboxMessage.sent_at <= now - fallback_after())
    )
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.kind.in_(FALLBACK_KINDS),
                OutboxMessage.contact_id.is_not(None),
                OutboxMessage.patient_id.is_not(None),
                ~OutboxMessage.dedupe_key.endswith(FALLBACK_SUFFIX),
                or_(failed, no_receipt),
                OutboxMessage.last_attempt_at >= now - LOOKBACK,
                or_(OutboxMessage.expires_at.is_(None), OutboxMessage.expires_at > now),
            )
            .order_by(OutboxMessage.id)
            .limit(200)
        )
    )


def fallback_key(row: OutboxMessage) -> str:
    """The natural key of a message's one fallback copy."""
    return row.dedupe_key[: 160 - len(FALLBACK_SUFFIX)] + FALLBACK_SUFFIX


def _has_fallback(row: OutboxMessage) -> bool:
    found = db.session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.patient_id == row.patient_id,
            OutboxMessage.dedupe_key == fallback_key(row),
        )
    )
    return found is not None


def _plan_copy(
    row: OutboxMessage,
    patient: Patient,
    target: recipients.Recipient,
    now: datetime,
    source: str,
) -> OutboxMessage:
    body = render_for_recipient(row, patient, target) or row.body
    info = count_segments(body)
    why = row.status if row.status in FAILED_STATUSES else "no delivery receipt"
    copy = OutboxMessage(
        patient_id=row.patient_id,
        contact_id=target.contact_id,
        dedupe_key=fallback_key(row),
        kind=row.kind,
        status="planned",
        send_after=now,
        due_at=now,
        expires_at=row.expires_at,
        body=body,
        locale=target.locale,
        segments=info.segments,
        encoding=info.encoding,
        event_keys=list(row.event_keys or []),
        items=list(row.items or []),
        notes=[f"fallback: message {row.id} {why}"],
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    db.session.add(copy)
    db.session.flush()
    add_history(copy.id, None, "planned", source=source, detail=f"fallback of {row.id}", at=now)
    return copy
