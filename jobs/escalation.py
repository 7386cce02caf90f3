"""Job: escalate unacknowledged alerts and finish inbound messages left uninterpreted (every minute);
a red check-in answer of one character left unconfirmed for 10 minutes becomes red and pages.

Safe in several processes at once: each escalation step and each inbound message is claimed with
a conditional UPDATE before anything is done (app/services/alerts/escalation.py, app/services/conversations/inbound/replies.py).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from flask import Flask

from app.models import utcnow
from app.services.alerts.escalation import JOB_ACTOR, escalate_due
from app.services.conversations.checkins.sessions import escalate_unconfirmed_reds
from app.services.conversations.inbound.replies import process_stale

logger = logging.getLogger("cadence.jobs.escalation")


def run(app: Flask, stop: threading.Event) -> None:
    """One pass: stale inbound messages first (they may raise alerts), then escalations."""
    if stop.is_set():
        return
    with app.app_context():
        now = utcnow()
        stale_after = timedelta(
            seconds=int(app.config.get("ESCALATION_STALE_INBOUND_SECONDS", 120))
        )
        recovered = process_stale(now, older_than=stale_after)
        if recovered:
            logger.warning("interpreted %s inbound message(s) left unprocessed", recovered)
        raised = escalate_unconfirmed_reds(utcnow())
        if raised:
            logger.warning("%s red check-in answer(s) unconfirmed after 10 minutes: paged", raised)
        escalate_due(utcnow(), actor=JOB_ACTOR)
