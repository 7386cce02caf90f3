"""Inbound SMS: store first, then understand, act and answer (the Twilio webhook's use case).

``handle_inbound(form, now)`` is all the webhook calls. In order:

1. ``store``: one INSERT under the UNIQUE MessageSid, committed before anything is interpreted.
   A retried webhook (same MessageSid) stores nothing new and gets the answer already given.
2. ``process``: the pipeline, in one transaction:
   load (``context.load_context``: who sent it, the open check-in, the events of the last
   reminder) -> normalise + parse (app.domain.replies) -> triage (app.domain.triage, with the
   patient's treatment context and previous grades, only when the decision needs it) -> decide
   (app.domain.inbound_decision: pure, returns the actions and the reply) -> apply
   (``apply.apply``: the one writer: alerts, pages, opt-out / opt-in, events, check-in answers,
   audit rows, the reply, then the claim of the row ``received -> processed``). Commit once.
   If another process claimed the row first, everything is rolled back. On PostgreSQL this
   commit does not wait for the WAL flush (``INBOUND_ASYNC_COMMIT``, ``SET LOCAL
   synchronous_commit TO OFF`` for this transaction only): step 1's commit did wait, so a
   database crash can only undo the last interpretations (well under a second of them), never
   a message; their rows are ``received`` again and ``process_stale`` interprets them anew
   (answering by SMS). A red's page is safe sooner: sending it commits synchronously, which
   flushes the WAL past this commit.
3. If anything in step 2 fails, it is rolled back as a whole; the row is marked ``failed`` with
   the error, a nurse-visible alert points at it (red, with pages, when the bare text is a red
   flag) and the patient still gets a safe answer.

A row left ``received`` (the process died between 1 and 2) is picked up by ``process_stale``
(run by the escalation job); its answer then goes out through the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from app.domain.inbound_decision import Decision, Message, alert_about, decide, needs_triage
from app.domain.replies import ParsedReply, parse_reply
from app.domain.triage import triage
from app.extensions import db
from app.models import InboundMessage, Patient, utcnow
from app.models.inbound import MAX_NUMBER_CHARS, MAX_SID_CHARS
from app.services.alerts.escalation import page_for_new_red
from app.services.conversations.inbound.apply import (
    CheckinDeclined,
    apply,
    queue_reply,
    raise_alert,
)
from app.services.conversations.inbound.context import (
    Loaded,
    StoredMessage,
    load_context,
    reply_context,
    triage_message,
)
from app.services.conversations.inbound.senders import match_sender
from app.services.messaging.send_now import kick_dispatch
from app.services.shared import reply_texts as texts

logger = logging.getLogger("cadence.replies")

MAX_BODY_CHARS = 20000


_INBOUND = InboundMessage.__table__
# Hot-path statements, built once (building SQLAlchemy statements per request is costly).
_STORE = (
    insert(_INBOUND)
    .values(
        sid=bindparam("p_sid"),
        from_number=bindparam("p_from"),
        to_number=bindparam("p_to"),
        body=bindparam("p_body"),
        num_media=bindparam("p_media"),
        received_at=bindparam("p_at"),
        status="received",
    )
    .returning(_INBOUND.c.id)
)
_ID_BY_SID = select(_INBOUND.c.id).where(_INBOUND.c.sid == bindparam("p_sid"))
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")
_UNPROCESSED = select(_INBOUND.c.id, _INBOUND.c.sid, _INBOUND.c.from_number, _INBOUND.c.body).where(
    _INBOUND.c.id == bindparam("p_id"), _INBOUND.c.status == "received"
)


class InvalidInbound(ValueError):
    """The form is not an inbound message (no MessageSid or no sender): nothing is stored."""


@dataclass(frozen=True)
class InboundForm:
    """The fields of Twilio's inbound-message webhook that we keep."""

    sid: str
    from_number: str
    to_number: str | None
    body: str
    num_media: int = 0

    @classmethod
    def parse(cls, form: Mapping[str, Any]) -> InboundForm:
        """Read Twilio's form (MessageSid/SmsSid, From, To, Body, NumMedia) or InvalidInbound."""
        sid = _text(form.get("MessageSid") or form.get("SmsSid")).strip()
        sender = _text(form.get("From")).strip()
        if not sid or len(sid) > MAX_SID_CHARS:
            raise InvalidInbound("MessageSid missing or too long")
        if not sender or len(sender) > MAX_NUMBER_CHARS:
            raise InvalidInbound("From missing or too long")
        to = _text(form.get("To")).strip()[:MAX_NUMBER_CHARS] or None
        media = _text(form.get("NumMedia")).strip()
        return cls(
            sid=sid,
            from_number=sender,
            to_number=to,
            body=_text(form.get("Body"))[:MAX_BODY_CHARS],
            num_media=int(media) if media.isdigit() and len(media) < 4 else 0,
        )


def _text(value: Any) -> str:
    """A form value as storable text (NUL is not allowed in PostgreSQL text)."""
    if value is None:
        return ""
    return str(value).replace("\x00", "\ufffd")


@dataclass(frozen=True)
class InboundResult:
    """The end of one webhook call: the answer (None: answer nothing) and what happened."""

    reply: str | None
    status: str  # processed | failed | duplicate | in_progress
    message_id: int
    priority: str | None = None
    alert_id: int | None = None


# -- entry points ------------------------------------------------------------------------------


def handle_inbound(form: Mapping[str, Any], now: datetime) -> str:
    """Store, understand, act and return the reply text ('' to answer nothing)."""
    return receive(form, now).reply or ""


def receive(form: Mapping[str, Any], now: datetime) -> InboundResult:
    """Store the message (committed), then process it; never raises for a valid form."""
    inbound = InboundForm.parse(form)
    message_id, created = store(inbound, now)
    if not created:
        return _duplicate(message_id)
    stored = StoredMessage(message_id, inbound.sid, inbound.from_number, inbound.body)
    return process(message_id, now, stored=stored)


def receive_sms(inbound: InboundForm, now: datetime) -> InboundResult:
    """A provider-neutral inbound SMS (Tencent, Alibaba): store, process, answer by the outbox."""
    message_id, created = store(inbound, now)
    if not created:
        return _duplicate(message_id)
    stored = StoredMessage(message_id, inbound.sid, inbound.from_number, inbound.body)
    return process(message_id, now, reply_by_sms=True, stored=stored)


def store(inbound: InboundForm, now: datetime) -> tuple[int, bool]:
    """Insert the message and commit; (id, True), or (id of the first copy, False) if known."""
    values = {
        "p_sid": inbound.sid,
        "p_from": inbound.from_number,
        "p_to": inbound.to_number,
        "p_body": inbound.body,
        "p_media": inbound.num_media,
        "p_at": now,
    }
    try:
        message_id = db.session.connection().execute(_STORE, values).scalar_one()
        db.session.commit()
        return message_id, True
    except IntegrityError:
        db.session.rollback()
    existing = db.session.connection().scalar(_ID_BY_SID, {"p_sid": inbound.sid})
    if existing is None:  # pragma: no cover - an integrity error that was not the sid
        raise RuntimeError(f"could not store inbound message {inbound.sid}")
    return existing, False


def _duplicate(message_id: int) -> InboundResult:
    row = db.session.get(InboundMessage, message_id, populate_existing=True)
    assert row is not None
    if row.status == "received":
        return InboundResult(None, "in_progress", row.id)
    return InboundResult(row.reply_body, "duplicate", row.id, row.priority)


def process(
    message_id: int,
    now: datetime,
    *,
    reply_by_sms: bool = False,
    stored: StoredMessage | None = None,
) -> InboundResult:
    """Interpret one stored message and act on it in one transaction; on failure, fall back.

    ``stored`` (the fields just inserted by ``store``) saves reading the row back.
    """
    try:
        result = _process(message_id, now, reply_by_sms, stored)
    except Exception as exc:
        db.session.rollback()
        logger.exception("inbound message %s could not be interpreted", message_id)
        return _fallback(message_id, now, exc, reply_by_sms)
    if result.status == "processed" and result.priority == "red":
        kick_dispatch()
    return result


def process_stale(now: datetime, *, older_than: timedelta) -> int:
    """Process messages stored but never interpreted (a process died); answers go by SMS."""
    ids = db.session.scalars(
        select(InboundMessage.id)
        .where(InboundMessage.status == "received", InboundMessage.received_at <= now - older_than)
        .order_by(InboundMessage.received_at)
        .limit(100)
    ).all()
    done = 0
    for message_id in ids:
        result = process(message_id, now, reply_by_sms=True)
        done += result.status in ("processed", "failed")
    return done


# -- processing: the pipeline ----------------------------------------------------------------------


def _process(
    message_id: int, now: datetime, reply_by_sms: bool, stored: StoredMessage | None
) -> InboundResult:
    """Load, parse, triage, decide and apply in one transaction; the row is claimed last
    (``received -> processed``): if another process claimed it first, all is rolled back."""
    _commit_without_waiting_for_the_flush()
    row = stored or _unprocessed(message_id)
    if row is None:
        db.session.rollback()
        return _duplicate(message_id)
    loaded = load_context(row, now)
    parsed = parse_reply(row.body, context=reply_context(loaded.context))
    while True:
        decision = interpret(row, parsed, loaded, now)
        try:
            outcome = apply(decision, parsed, loaded, row, now, reply_by_sms=reply_by_sms)
        except CheckinDeclined:
            loaded = _without_checkin_route(loaded, decision)
            continue
        break
    if outcome is None:
        db.session.rollback()
        return _duplicate(message_id)
    db.session.commit()
    priority = outcome.result.priority if outcome.result else None
    return InboundResult(outcome.reply, "processed", message_id, priority, outcome.alert_id)


def _commit_without_waiting_for_the_flush() -> None:
    """On PostgreSQL (INBOUND_ASYNC_COMMIT): this transaction's commit skips the WAL flush wait."""
    if not current_app.config.get("INBOUND_ASYNC_COMMIT", False):
        return
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.connection().execute(_ASYNC_COMMIT)


def interpret(row: StoredMessage, parsed: ParsedReply, loaded: Loaded, now: datetime) -> Decision:
    """Triage the parsed message when its route needs it, then decide (pure)."""
    context = loaded.context
    result = (
        triage_message(loaded, parsed, row.id, now)
        if needs_triage(row.body, parsed, context)
        else None
    )
    return decide(Message(row.body, parsed, result), context)


def _without_checkin_route(loaded: Loaded, decision: Decision) -> Loaded:
    """The check-in took nothing (settled meanwhile): decide again without that route."""
    checkin = loaded.context.checkin
    assert checkin is not None
    if decision.route == "red_check":
        checkin = replace(checkin, red_check_pending=False)
    else:
        checkin = replace(checkin, takes_answers=False, red_check_pending=False)
    return replace(loaded, context=replace(loaded.context, checkin=checkin))


def _unprocessed(message_id: int) -> StoredMessage | None:
    """The stored message if it still waits to be processed."""
    found = db.session.connection().execute(_UNPROCESSED, {"p_id": message_id}).first()
    if found is None:
        return None
    return StoredMessage(found.id, found.sid, found.from_number, found.body or "")


def match_patient(sender: str) -> Patient | None:
    """The patient a message from ``sender`` is about (its contacts' numbers included), or None.

    A number shared by several patients that nothing resolves is not matched to any of them
    (app.services.conversations.inbound.senders).
    """
    return match_sender(sender, "", utcnow()).patient


# -- when interpretation fails -------------------------------------------------------------------


def _fallback(
    message_id: int, now: datetime, error: Exception, reply_by_sms: bool
) -> InboundResult:
    """Mark the message failed, raise a nurse-visible alert, answer safely."""
    locale = texts.locale_or_default(None)
    try:
        row = db.session.get(InboundMessage, message_id, populate_existing=True)
        assert row is not None
        if row.status != "received":
            return _duplicate(message_id)
        patient = _safe_patient(row.from_number)
        locale = texts.locale_or_default(patient.locale if patient else None)
        parsed = parse_reply(row.body)
        result = triage(parsed)
        level = "red" if result.priority == "red" else "amber"
        reply = texts.signed(
            texts.red_reply(locale) if level == "red" else texts.failure_reply(locale)
        )
        claimed = db.session.execute(
            update(InboundMessage)
            .where(InboundMessage.id == message_id, InboundMessage.status == "received")
            .values(
                status="failed",
                processed_at=now,
                error=f"{type(error).__name__}: {error}"[:2000],
                patient_id=patient.id if patient else None,
                reply_body=reply,
                reply_locale=locale,
                priority=level,
                intent=parsed.intent,
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            db.session.rollback()
            return _duplicate(message_id)
        spec = alert_about("review", level, parsed, result)
        failed = f"interpretation failed ({type(error).__name__}): a person must read it"
        spec = replace(spec, reasons=(failed, *spec.reasons))
        alert = raise_alert(spec, message_id, patient, now, known_new=False)
        if level == "red":
            page_for_new_red(alert, now=now, actor="system")
        if reply_by_sms and patient is not None:
            queue_reply(patient, row, reply, locale, now)
        db.session.commit()
        if level == "red":
            kick_dispatch()
        return InboundResult(reply, "failed", message_id, level, alert.id)
    except Exception:
        db.session.rollback()
        logger.exception("inbound message %s: the fallback failed too", message_id)
        return InboundResult(
            texts.signed(texts.failure_reply(locale)), "failed", message_id, "amber"
        )


def _safe_patient(sender: str) -> Patient | None:
    try:
        return match_patient(sender)
    except Exception:
        db.session.rollback()
        return None
