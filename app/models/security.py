"""Server-side sign-in sessions and shared rate-limit counters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow

SESSION_END_REASONS = (
    "sign_out",
    "idle",
    "sign_out_everywhere",
    "password_change",
    "password_reset",
    "deactivated",
)


class UserSession(db.Model):
    """One signed-in browser: the cookie holds a random id, this row its SHA-256 digest.

    A session is valid while `ended_at` is empty; sign-out and "sign out everywhere" set it, so a
    copied cookie stops working at once.
    """

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))


class RateLimitCounter(db.Model):
    """A fixed-window rate-limit counter shared by every web worker (the database storage)."""

    __tablename__ = "rate_limit_counter"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    # Seconds since the epoch, as the limits library counts time.
    expires_at: Mapped[float] = mapped_column(Float, index=True)
