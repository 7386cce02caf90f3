"""Job: issue due symptom check-ins, remind, hand unanswered ones to nurses, close expired ones.

Runs every CHECKIN_JOB_SECONDS (default 300). Safe in several processes at once: a check-in is
claimed with INSERT .. ON CONFLICT DO NOTHING on the UNIQUE (patient, event) key
(no unique violation, no error in the database log) and every later step claims its row with a
conditional UPDATE (app/services/conversations/checkins/schedule.py). The messages it plans go out with the
dispatch job.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask

from app.models import utcnow
from app.services.conversations.checkins.schedule import run_due
from app.services.conversations.checkins.sessions import JOB_ACTOR

logger = logging.getLogger("cadence.jobs.checkins")


def run(app: Flask, stop: threading.Event) -> None:
    """One pass at the current time."""
    if stop.is_set():
        return
    with app.app_context():
        report = run_due(utcnow(), actor=JOB_ACTOR)
        if report.started or report.reminded or report.call_tasks or report.errors:
            logger.info("check-ins: %s", report.summary())
