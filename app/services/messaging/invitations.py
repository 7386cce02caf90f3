"""What a reply to an outbound SMS means: the invitation each message records (``invites``).

Every outbox row that invites a reply records what a reply to it means, so an inbound message
is read against what the patient was actually asked (app.services.conversations.inbound):

- ``{"reply": "confirm", "event_keys": [...]}``: a reminder ("Reply 1 to confirm").
- ``{"reply": "checkin", "session": id, "question": code}``: a check-in question.

An invitation counts only once its message was handed to the provider and is not known to have
failed (``HANDED_OVER_STATUSES``). ``follow_status`` keeps a check-in in step with its messages:
``scheduled -> sent`` when a question is handed over, and no SMS answers once a receipt says it
failed. ``app.services.messaging.outbox.transition`` calls it for every status change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update

from app.extensions import db
from app.models import CheckinSession
from app.models.messages import FAILED_DELIVERY_STATUSES, HANDED_OVER_STATUSES

CONFIRM = "confirm"
CHECKIN = "checkin"
UNDELIVERED = "undelivered"
"""``CheckinSession.delivery_blocked`` when a receipt says a check-in question never arrived."""

_SESSION = CheckinSession.__table__
_HANDED_OVER = (
    update(_SESSION)
    .where(_SESSION.c.id == bindparam("p_session"), _SESSION.c.status == "scheduled")
    .values(status="sent", sent_at=bindparam("p_at"), updated_at=bindparam("p_at"))
)
_FAILED = (
    update(_SESSION)
    .where(
        _SESSION.c.id == bindparam("p_session"),
        _SESSION.c.closed_at.is_(None),
        _SESSION.c.delivery_blocked.is_(None),
    )
    .values(delivery_blocked=UNDELIVERED, updated_at=bindparam("p_at"))
)


def to_confirm(event_keys: Iterable[str]) -> dict[str, Any] | None:
    """The invitation of a reminder about these events (None when it names no event)."""
    keys = [str(key) for key in event_keys]
    return {"reply": CONFIRM, "event_keys": keys} if keys else None


def to_answer(session_id: int, question_code: str | None) -> dict[str, Any] | None:
    """The invitation of a check-in message asking ``question_code`` (None: it asks nothing)."""
    if question_code is None:
        return None
    return {"reply": CHECKIN, "session": session_id, "question": question_code}


def checkin_session_of(invites: Mapping[str, Any] | None) -> int | None:
    """The check-in session a message's invitation belongs to, if any."""
    if not invites or invites.get("reply") != CHECKIN:
        return None
    session = invites.get("session")
    return int(session) if isinstance(session, int) else None


def follow_status(invites: Mapping[str, Any] | None, to: str, at: datetime) -> None:
    """Keep the invited check-in in step with its message's new status ``to``; no commit."""
    session_id = checkin_session_of(invites)
    if session_id is None:
        return
    params = {"p_session": session_id, "p_at": at}
    if to in HANDED_OVER_STATUSES:
        db.session.execute(_HANDED_OVER, params)
    elif to in FAILED_DELIVERY_STATUSES:
        db.session.execute(_FAILED, params)
