"""Twilio inbound-message webhook: POST /webhooks/twilio/inbound (on the webhooks blueprint).

Configure it in Twilio as the number's (or Messaging Service's) "A message comes in" URL:
``<PUBLIC_BASE_URL>/webhooks/twilio/inbound``, HTTP POST. The signature is checked by
``twilio_signed`` (403 and nothing stored when it fails); the message is stored, understood and
answered by app.services.conversations.inbound.replies; the answer is TwiML (MessagingResponse).
"""

from __future__ import annotations

import logging
from xml.sax.saxutils import escape

from flask import Response, abort, request

from app.models import utcnow
from app.services.conversations.inbound.replies import InvalidInbound, receive
from app.web.twilio_signed import bp, twilio_signed

logger = logging.getLogger("cadence.webhooks")


@bp.post("/inbound")
@twilio_signed
def inbound_message() -> Response:
    """A patient (or anyone) texted our number: store, understand, act, answer in TwiML."""
    try:
        result = receive(request.form, utcnow())
    except InvalidInbound as exc:
        logger.warning("inbound webhook without a usable message: %s", exc)
        abort(400)
    return Response(twiml(result.reply), mimetype="application/xml")


TWIML_HEAD = '<?xml version="1.0" encoding="UTF-8"?><Response>'


def twiml(reply: str | None) -> str:
    """TwiML answering with one message (or nothing), as MessagingResponse renders it."""
    if not reply:
        return TWIML_HEAD[:-1] + " />"
    return f"{TWIML_HEAD}<Message>{escape(reply)}</Message></Response>"
