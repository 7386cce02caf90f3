"""Job: settle messages whose sending is unclear by asking the provider (every few minutes).

One process at a time (a PostgreSQL advisory lock, app/services/shared/job_locks.py): two
processes asking the provider about the same message could act on a stale answer, and two
fallback plans for one reminder would collide on the outbox's UNIQUE key.
"""

from __future__ import annotations

import threading

from flask import Flask

from app.models import utcnow
from app.services.messaging.dispatch import reconcile
from app.services.messaging.fallback import plan_fallbacks
from app.services.shared.job_locks import single_run

JOB_SOURCE = "job:reconcile"
JOB_ID = "sms-reconcile"


def run(app: Flask, stop: threading.Event) -> None:
    """Expire dead leases, look up ``unknown`` messages, fall back to the next contact."""
    if stop.is_set():
        return
    with app.app_context(), single_run(JOB_ID) as mine:
        if mine:
            reconcile(source=JOB_SOURCE)
            plan_fallbacks(utcnow(), source=JOB_SOURCE)
