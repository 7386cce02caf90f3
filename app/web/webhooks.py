"""Twilio webhooks: delivery status callbacks (inbound messages join this blueprint later).

Every endpoint here is wrapped in ``twilio_signed``: X-Twilio-Signature is checked with the
account's auth token against the public URL Twilio called (PUBLIC_BASE_URL + path and query
when configured, else the request URL as seen through ProxyFix). A request that fails the
check gets 403 and nothing is stored. The blueprint, and only it, is exempt from CSRF.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, abort, current_app, request

from app.extensions import csrf
from app.services.messaging.status_callbacks import apply_status_callback
from app.sms.webhook_security import is_valid_twilio_request

logger = logging.getLogger("cadence.webhooks")

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks/twilio")

F = TypeVar("F", bound=Callable[..., Any])


def register_webhooks(app: Flask) -> None:
    """Register the blueprint and exempt it (only it) from CSRF."""
    csrf.exempt(bp)
    app.register_blueprint(bp)


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


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


@bp.post("/status")
@twilio_signed
def status_callback() -> Response:
    """A message's delivery status changed (queued, sent, delivered, undelivered, failed)."""
    sid = request.form.get("MessageSid") or request.form.get("SmsSid")
    status = request.form.get("MessageStatus") or request.form.get("SmsStatus")
    if not sid or not status:
        abort(400)
    result = apply_status_callback(
        sid,
        status,
        error_code=_int_or_none(request.form.get("ErrorCode")),
        message_id=_int_or_none(request.args.get("m")),
    )
    logger.debug("status callback %s %s: %s", sid, status, result.outcome)
    return Response(status=204)


# Inbound messages add their route to this blueprint (app/web/inbound_sms.py).
from app.web import inbound_sms  # noqa: E402, F401
