"""Server-side sign-in sessions: opened at sign-in, ended by sign-out, idle time, a password
change or reset, deactivation, or "sign out everywhere" (the user's own or an admin's).

The browser's cookie holds a random session id; the database keeps only its SHA-256 digest, so a
copy of the table cannot be replayed as cookies. A session is valid while its row is open: a
cookie copied before sign-out is refused afterwards.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import User, UserSession, utcnow
from app.services.shared import audit

# last_seen_at is written at most this often per session (not on every request).
TOUCH_INTERVAL = timedelta(seconds=60)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(user: User, *, now: datetime | None = None) -> str:
    """Open a session for a user who just signed in; returns the id to keep in the cookie."""
    token = secrets.token_urlsafe(32)
    at = now or utcnow()
    db.session.add(
        UserSession(user_id=user.id, token_hash=_digest(token), created_at=at, last_seen_at=at)
    )
    db.session.commit()
    return token


def is_open(user: User, token: str | None, *, now: datetime | None = None) -> bool:
    """True when `token` is an open, recently used session of `user` (and marks it used)."""
    if not token:
        return False
    row = db.session.scalar(select(UserSession).where(UserSession.token_hash == _digest(token)))
    if row is None or row.user_id != user.id or row.ended_at is not None:
        return False
    at = now or utcnow()
    if at - row.last_seen_at > _idle_limit():
        _end(row, "idle", at)
        db.session.commit()
        return False
    if at - row.last_seen_at >= TOUCH_INTERVAL:
        row.last_seen_at = at
        db.session.commit()
    return True


def end_session(token: str | None, reason: str, *, now: datetime | None = None) -> None:
    """End one session (sign-out, idle timeout); unknown or ended ids are ignored."""
    if not token:
        return
    row = db.session.scalar(
        select(UserSession).where(
            UserSession.token_hash == _digest(token), UserSession.ended_at.is_(None)
        )
    )
    if row is not None:
        _end(row, reason, now or utcnow())
        db.session.commit()


def end_user_sessions(
    user: User, reason: str, *, keep: str | None = None, now: datetime | None = None
) -> int:
    """End a user's open sessions except `keep`, inside the caller's transaction; how many."""
    query = (
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .values(ended_at=now or utcnow(), end_reason=reason)
    )
    if keep:
        query = query.where(UserSession.token_hash != _digest(keep))
    return db.session.execute(query).rowcount or 0


def sign_out_everywhere(
    user: User, *, actor: str, keep: str | None = None, now: datetime | None = None
) -> int:
    """End every session of `user` (but `keep`, the caller's own) and audit who did it."""
    ended = end_user_sessions(user, "sign_out_everywhere", keep=keep, now=now)
    audit.record(
        actor,
        "user.sign_out_everywhere",
        entity_type="user",
        entity_id=user.username,
        after={"sessions_ended": ended, "kept_current": keep is not None},
        at=now,
    )
    db.session.commit()
    return ended


def count_open_sessions(user: User, *, now: datetime | None = None) -> int:
    """How many open, recently used sessions a user has (shown to admins and on the account)."""
    since = (now or utcnow()) - _idle_limit()
    query = select(func.count(UserSession.id)).where(
        UserSession.user_id == user.id,
        UserSession.ended_at.is_(None),
        UserSession.last_seen_at > since,
    )
    return db.session.scalar(query) or 0


def _end(row: UserSession, reason: str, at: datetime) -> None:
    row.ended_at = at
    row.end_reason = reason


def _idle_limit() -> timedelta:
    minutes = int(current_app.config.get("IDLE_TIMEOUT_MINUTES", 30))
    return timedelta(minutes=minutes) + TOUCH_INTERVAL
