"""Job: settle messages whose sending is unclear by asking the provider (every few minutes)."""

from __future__ import annotations

import threading

from flask import Flask

from app.models import utcnow
from app.services.messaging.dispatch import reconcile
from app.services.messaging.fallback import plan_fallbacks

JOB_SOURCE = "job:reconcile"


def run(app: Flask, stop: threading.Event) -> None:
    """Expire dead leases, look up ``unknown`` messages, fall back to the next contact."""
    if stop.is_set():
        return
    with app.app_context():
        reconcile(source=JOB_SOURCE)
        plan_fallbacks(utcnow(), source=JOB_SOURCE)
