"""Job: re-plan every patient's reminders once a day (catalog, consent or rule changes).

One process at a time (a PostgreSQL advisory lock, app/services/shared/job_locks.py): two
re-plans of one patient would race on the outbox's UNIQUE key and raise false failure alerts.
"""

from __future__ import annotations

import threading

from flask import Flask

from app.models import utcnow
from app.services.alerts.alerts import alert_replan_failure
from app.services.messaging.reminders import REPLAN_ALL_JOB, replan_all
from app.services.shared.job_locks import single_run

JOB_SOURCE = "job:replan"
JOB_ID = REPLAN_ALL_JOB


def run(app: Flask, stop: threading.Event) -> None:
    """Re-plan all patients from now (idempotent: unchanged messages stay as they are)."""
    if stop.is_set():
        return
    with app.app_context(), single_run(JOB_ID) as mine:
        if mine:
            replan_all(now=utcnow(), source=JOB_SOURCE, on_failure=alert_replan_failure)
