"""Job: send the SMS messages that are due (every minute)."""

from __future__ import annotations

import threading

from flask import Flask

from app.services.messaging.dispatch import dispatch_due

JOB_ACTOR = "job:dispatch"


def run(app: Flask, stop: threading.Event) -> None:
    """Send everything due now; stop claiming new messages as soon as ``stop`` is set."""
    with app.app_context():
        dispatch_due(actor=JOB_ACTOR, should_stop=stop.is_set)
