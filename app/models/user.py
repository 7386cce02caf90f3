"""Staff accounts."""

from __future__ import annotations

import hashlib
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UTCDateTime, utcnow

ROLES = ("nurse", "investigator", "admin")


class User(UserMixin, db.Model):
    """A member of the study team who signs in to the web UI."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16), default="nurse")
    password_hash: Mapped[str] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(8), default="zh")
    phone_e164: Mapped[str | None] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def is_active(self) -> bool:
        """Flask-Login: inactive users cannot sign in."""
        return bool(self.active)

    @property
    def session_token(self) -> str:
        """A short digest of the password hash: changing the password ends other sessions."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]

    def get_id(self) -> str:
        """Flask-Login: the id stored in the session, tied to the current password."""
        return f"{self.id}:{self.session_token}"

    @property
    def actor(self) -> str:
        """The audit actor string for this user."""
        return f"user:{self.username}"

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role}>"
