"""An inbound SMS typed by the study team (training, demos): the webhook's path minus the signature.

The message is stored and processed exactly as a real one (``replies.receive``); its sid starts
with ``SIM`` so it can be told apart in the database.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.extensions import db
from app.models import Contact, InboundMessage
from app.services.conversations.inbound.replies import receive

SIMULATED_TO = "simulator"


def simulate_inbound(sender: str, body: str, *, now: datetime) -> dict[str, Any]:
    """Receive one message as the webhook would; what happened, as plain data.

    ``patient`` (study id or None), ``contact`` (relation or None), ``intent``, ``priority``,
    ``reply`` and ``actions``; InvalidInbound when the sender is missing.
    """
    form = {
        "MessageSid": f"SIM{uuid.uuid4().hex}",
        "From": sender,
        "To": SIMULATED_TO,
        "Body": body,
        "NumMedia": "0",
    }
    result = receive(form, now)
    row = db.session.get(InboundMessage, result.message_id, populate_existing=True)
    assert row is not None
    contact = db.session.get(Contact, row.contact_id) if row.contact_id else None
    return {
        "patient": row.patient.study_id if row.patient else None,
        "contact": contact.relation if contact else None,
        "intent": row.intent,
        "priority": row.priority,
        "reply": result.reply,
        "actions": list((row.parse or {}).get("actions", [])),
        "status": result.status,
        "alert_id": result.alert_id,
    }
