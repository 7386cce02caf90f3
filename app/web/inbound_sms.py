"""Twilio inbound-message webhook: POST /webhooks/twilio/inbound (on the webhooks blueprint).

Configure it in Twilio as the number's (or Messaging Service's) "A message comes in" URL:
``<PUBLIC_BASE_URL>/webhooks/twilio/inbound``, HTTP POST. The signature is checked by
``twilio_signed`` (403 and nothing stored when it fails); the message is stored, understood and
answered by app.services.replies; the answer is TwiML (MessagingResponse).
"""

from __future__ import annotations

import logging

from flask import Response, abort, request
from twilio.twiml.messaging_response import MessagingResponse

from app.models import utcnow
from app.services.replies import InvalidInbound, receive
from app.web.webhooks import bp, twilio_signed

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
    twiml = MessagingResponse()
    if result.reply:
        twiml.message(result.reply)
    return Response(str(twiml), mimetype="application/xml")
