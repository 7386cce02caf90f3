"""Signed check-in links: short, expiring, bound to one patient and one check-in, no sign-in.

A token is ``itsdangerous.URLSafeTimedSerializer(SECRET_KEY, salt=LINK_SALT)`` over
``[session_id, patient_id]``: the signature covers both numbers and the time it was made, so a
token cannot be edited to open another check-in or another patient's (the view also checks that
the session belongs to the patient in the token), a token of another feature signed with the same
key does not verify (different salt), and it stops working CHECKIN_LINK_HOURS after it was made.
The session itself also stops taking answers at its ``expires_at`` or when it is closed.

The clock is an argument (``now``) so that expiry is tested without waiting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from app import clock

LINK_SALT = "cadence.checkin-link.v1"
LINK_PATH = "/c/"
DEFAULT_LINK_HOURS = 96
DEV_BASE_URL = "http://127.0.0.1:5000"


class LinkError(ValueError):
    """A check-in link that cannot be used: ``code`` is 'invalid' or 'expired'."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class LinkTarget:
    """What a valid token names."""

    session_id: int
    patient_id: int
    issued_at: datetime


class _ClockSigner(TimestampSigner):
    """A TimestampSigner whose clock can be fixed (tests, simulated runs)."""

    def __init__(self, *args: Any, now: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._now = now

    def get_timestamp(self) -> int:
        """Seconds since the epoch of the given ``now``, else of the real clock."""
        return int(self._now.timestamp()) if self._now is not None else clock.timestamp()


def _serializer(now: datetime | None) -> URLSafeTimedSerializer:
    secret = current_app.config.get("SECRET_KEY")
    if not secret:
        raise RuntimeError("SECRET_KEY is needed to sign check-in links")
    return URLSafeTimedSerializer(
        secret, salt=LINK_SALT, signer=_ClockSigner, signer_kwargs={"now": now}
    )


def link_lifetime() -> timedelta:
    """How long a link works after it was made (CHECKIN_LINK_HOURS, default 96)."""
    raw = current_app.config.get("CHECKIN_LINK_HOURS") or os.environ.get("CHECKIN_LINK_HOURS")
    return timedelta(hours=float(raw or DEFAULT_LINK_HOURS))


def make_token(session_id: int, patient_id: int, *, now: datetime | None = None) -> str:
    """A signed token for one check-in session of one patient, made at ``now``."""
    return _serializer(now).dumps([int(session_id), int(patient_id)])


def read_token(token: str, *, now: datetime | None = None) -> LinkTarget:
    """The session and patient a token names; LinkError('expired' / 'invalid') otherwise."""
    if not token or len(token) > 200:
        raise LinkError("malformed token")
    max_age = int(link_lifetime().total_seconds())
    try:
        payload, issued = _serializer(now).loads(token, max_age=max_age, return_timestamp=True)
    except SignatureExpired as exc:
        raise LinkError("the link has expired", "expired") from exc
    except BadSignature as exc:
        raise LinkError("the link is not valid") from exc
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in payload)
    ):
        raise LinkError("the link is not valid")
    return LinkTarget(session_id=payload[0], patient_id=payload[1], issued_at=issued)


def base_url() -> str:
    """Where patients reach the app (PUBLIC_BASE_URL; a local address in development)."""
    configured = current_app.config.get("PUBLIC_BASE_URL")
    return str(configured or DEV_BASE_URL).rstrip("/")


def link_url(session_id: int, patient_id: int, *, now: datetime | None = None) -> str:
    """The full link for an SMS: base URL + /c/ + token."""
    return base_url() + LINK_PATH + make_token(session_id, patient_id, now=now)
