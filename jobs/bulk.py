"""Job: run the bulk work staff started from a page (re-plan all, exports), with progress."""

from __future__ import annotations

import threading

from flask import Flask

from app.models import utcnow
from app.services.bulk import run_pending
from app.services.shared.clinic import clinic_zone


def run(app: Flask, stop: threading.Event) -> None:
    """Claim and run the queued bulk jobs (each one to its end; the lease covers a crash)."""
    if stop.is_set():
        return
    with app.app_context():
        run_pending(utcnow, tz=clinic_zone())
