"""Twilio webhooks: delivery status callbacks; registers the blueprint with the inbound route.

Every endpoint here is wrapped in ``twilio_signed`` (app/web/twilio_signed.py: a request whose
X-Twilio-Signature does not match gets 403 and nothing is stored). The blueprint, and only it,
is exempt from CSRF.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, abort, request

from app.extensions import csrf
from app.services.messaging.status_callbacks import apply_status_callback
from app.web import inbound_sms  # noqa: F401  (adds POST /inbound to bp)
from app.web.twilio_signed import bp, twilio_signed

logger = logging.getLogger("cadence.webhooks")


def register_webhooks(app: Flask) -> None:
    """Register the blueprint (with the inbound route of app.web.inbound_sms, imported above)
    and exempt it (only it) from CSRF."""
    csrf.exempt(bp)
    app.register_blueprint(bp)


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
