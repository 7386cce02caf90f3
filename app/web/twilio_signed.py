"""The Twilio webhooks blueprint and its signature check, shared by every Twilio endpoint.

Every endpoint on ``bp`` is wrapped in ``twilio_signed``: X-Twilio-Signature is checked with the
account's auth token against the public URL Twilio called (PUBLIC_BASE_URL + path and query
when configured, else the request URL as seen through ProxyFix). A request that fails the
check gets 403 and nothing is stored. The routes live in app/web/webhooks.py (delivery status)
and app/web/inbound_sms.py (inbound messages).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, abort, current_app, request

from app.sms.webhook_security import is_valid_twilio_request

logger = logging.getLogger("cadence.webhooks")

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks/twilio")

F = TypeVar("F", bound=Callable[..., Any])


def public_request_url() -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL + path (+ query), else the request URL."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if not base:
        return request.url
    url = str(base).rstrip("/") + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("utf-8", "replace")
    return url


def twilio_signed(view: F) -> F:
    """Reject (403) any request whose X-Twilio-Signature does not match; nothing runs then."""

    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        token = current_app.config.get("TWILIO_AUTH_TOKEN") or ""
        signature = request.headers.get("X-Twilio-Signature")
        if not is_valid_twilio_request(token, public_request_url(), request.form, signature):
            logger.warning("rejected a Twilio webhook with a bad signature: %s", request.path)
            abort(403)
        return view(*args, **kwargs)

    return checked  # type: ignore[return-value]
