"""A patient's conversation: every SMS in and out, in order, with delivery status; nurse replies.

Outbound messages come from the outbox (reminders, check-in questions, answers, nurse replies)
with their delivery status; inbound ones from the inbound log, each followed by the answer the
webhook gave at once (if any); answers given on the check-in web page appear as well. A nurse
replies through the outbox (exactly once per form, quiet hours respected) in the patient's
language, either in their own words or with a ready phrase rendered in the patient's language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask_babel import force_locale, gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models import CheckinSession, InboundMessage, OutboxMessage, Patient
from app.services.conversations.checkins.sessions import kick_dispatch_soon
from app.services.conversations.checkins.texts import signed
from app.services.messaging.outbox import add_history
from app.services.messaging.recipients import recipient_values
from app.services.messaging.reminders import blocked_reason
from app.services.schedule.contacts import message_sender
from app.services.shared import audit
from app.sms.segments import count_segments
from app.sms.text import clean_sms_text

MAX_REPLY_CHARS = 500
UPCOMING = timedelta(hours=24)
NONCE = re.compile(r"^[A-Za-z0-9_-]{8,40}$")
READY_PHRASES: dict[str, Any] = {
    "received": _l("Thank you, we have received your message."),
    "will_call": _l("Thank you for your message. A study nurse will call you today."),
    "come_in": _l("Please come to the clinic for a check-up. We will call you with a time."),
    "keep_taking": _l(
        "Please keep taking your medicines as the team told you. Call us if you feel worse."
    ),
    "checkin": _l("Please answer your symptom check-in with the link in our last message."),
    "emergency": _l(
        "If you feel very unwell, call 120 or go to the nearest emergency department now."
    ),
}
"""Ready phrases a nurse can send, rendered in the patient's language (no drug or diagnosis)."""


class ConversationError(ValueError):
    """A reply that cannot be sent: ``code`` is empty, too_long, blocked or invalid."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Entry:
    """One line of the conversation."""

    at: datetime
    direction: str  # in | out
    source: str  # sms | webhook_reply | outbox | web
    body: str
    kind: str | None = None
    status: str | None = None
    priority: str | None = None
    intent: str | None = None
    message_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def phrase_text(code: str, locale: str) -> str:
    """A ready phrase in ``locale``."""
    with force_locale(locale):
        return str(READY_PHRASES[code])


def own_words_text(text: str, locale: str | None) -> str:
    """A nurse's own words as sent: inside the approved "study team notice" template."""
    with force_locale(locale if locale in ("zh", "en") else "zh"):
        return gettext("Study team notice: %(text)s", text=text)


def conversation(patient: Patient, *, now: datetime, limit: int = 200) -> list[Entry]:
    """The patient's messages in time order (the latest ``limit``), upcoming ones included."""
    entries = [*_outbound(patient, now), *_inbound(patient), *_web_answers(patient)]
    entries.sort(key=lambda e: (e.at, 0 if e.direction == "in" else 1))
    return entries[-limit:]


def _outbound(patient: Patient, now: datetime) -> list[Entry]:
    rows = db.session.scalars(
        select(OutboxMessage)
        .where(
            OutboxMessage.patient_id == patient.id,
            OutboxMessage.status != "cancelled",
            (OutboxMessage.status != "planned") | (OutboxMessage.due_at <= now + UPCOMING),
        )
        .order_by(OutboxMessage.id.desc())
        .limit(400)
    )
    return [
        Entry(
            at=row.sent_at or row.send_after,
            direction="out",
            source="outbox",
            body=row.body,
            kind=row.kind,
            status=row.status,
            message_id=row.id,
            detail={"error": row.error_reason, "segments": row.segments},
        )
        for row in rows
    ]


def _inbound(patient: Patient) -> list[Entry]:
    rows = db.session.scalars(
        select(InboundMessage)
        .where(InboundMessage.patient_id == patient.id)
        .order_by(InboundMessage.id.desc())
        .limit(400)
    )
    entries = []
    for row in rows:
        entries.append(
            Entry(
                at=row.received_at,
                direction="in",
                source="sms",
                body=row.body,
                status=row.status,
                priority=row.priority,
                intent=row.intent,
                message_id=row.id,
                detail={"sender": message_sender(row.parse, row.contact_id)},
            )
        )
        if row.reply_body:
            entries.append(
                Entry(
                    at=row.processed_at or row.received_at,
                    direction="out",
                    source="webhook_reply",
                    body=row.reply_body,
                    kind="reply",
                    status="answered_at_once",
                    message_id=row.id,
                )
            )
    return entries


def _web_answers(patient: Patient) -> list[Entry]:
    sessions = db.session.scalars(
        select(CheckinSession)
        .where(
            CheckinSession.patient_id == patient.id, CheckinSession.channel.in_(("web", "mixed"))
        )
        .order_by(CheckinSession.id.desc())
        .limit(50)
    )
    entries = []
    for session in sessions:
        by_time: dict[str, list[str]] = {}
        for entry in session.answer_log or []:
            if entry.get("channel") == "web":
                by_time.setdefault(str(entry["at"]), []).append(f"{entry['code']}{entry['value']}")
        for at, codes in by_time.items():
            entries.append(
                Entry(
                    at=datetime.fromisoformat(at),
                    direction="in",
                    source="web",
                    body=" ".join(codes),
                    kind="checkin",
                    priority=session.priority,
                    detail={"session": session.id},
                )
            )
    return entries


def send_nurse_reply(
    patient: Patient,
    *,
    text: str = "",
    phrase: str = "",
    nonce: str,
    actor: str,
    now: datetime,
) -> OutboxMessage:
    """Queue a nurse's SMS to the patient (their words, or a ready phrase); audit and commit.

    The same form (``nonce``) sent twice queues one message. Quiet hours hold it until morning.
    """
    if not NONCE.match(nonce or ""):
        raise ConversationError("the form is not valid: reload the page", "invalid")
    own_words = clean_sms_text(text or "")
    body_text = own_words
    if not body_text and phrase:
        if phrase not in READY_PHRASES:
            raise ConversationError(f"unknown phrase {phrase!r}", "invalid")
        body_text = phrase_text(phrase, patient.locale if patient.locale in ("zh", "en") else "zh")
    if not body_text:
        raise ConversationError("write a message or choose a ready phrase", "empty")
    if len(body_text) > MAX_REPLY_CHARS:
        raise ConversationError(f"at most {MAX_REPLY_CHARS} characters", "too_long")
    if own_words:
        body_text = own_words_text(own_words, patient.locale)
    reason = blocked_reason(patient, "reply")
    if reason is not None:
        raise ConversationError(reason, "blocked")
    key = f"nurse:{nonce}"
    existing = db.session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.patient_id == patient.id, OutboxMessage.dedupe_key == key
        )
    )
    if existing is not None:
        return existing
    body = signed(body_text)
    info = count_segments(body)
    row = OutboxMessage(
        patient_id=patient.id,
        dedupe_key=key,
        kind="reply",
        status="planned",
        send_after=now,
        due_at=now,
        expires_at=now + timedelta(hours=24),
        body=body,
        locale=patient.locale,
        segments=info.segments,
        encoding=info.encoding,
        event_keys=[],
        items=[],
        notes=[f"nurse reply ({phrase})" if phrase and not own_words else "nurse reply"],
        attempts=0,
        created_at=now,
        updated_at=now,
        **recipient_values(patient, "reply"),
    )
    db.session.add(row)
    db.session.flush()
    add_history(row.id, None, "planned", source=actor, detail="nurse reply", at=now)
    audit.record(
        actor,
        "message.nurse_reply",
        entity_type="outbox_message",
        entity_id=row.id,
        patient_id=patient.id,
        after={"phrase": phrase or None, "segments": info.segments, "text": body_text[:200]},
        at=now,
    )
    kick_dispatch_soon()
    db.session.commit()
    return row
