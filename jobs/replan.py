"""Job: re-plan every patient's reminders once a day (catalog, consent or rule changes)."""

from __future__ import annotations

import threading

from flask import Flask

from app.models import utcnow
from app.services.alerts.alerts import alert_replan_failure
from app.services.messaging.reminders import replan_all

JOB_SOURCE = "job:replan"


def run(app: Flask, stop: threading.Event) -> None:
    """Re-plan all patients from now (idempotent: unchanged messages stay as they are)."""
    if stop.is_set():
        return
    with app.app_context():
        replan_all(now=utcnow(), source=JOB_SOURCE, on_failure=alert_replan_failure)
