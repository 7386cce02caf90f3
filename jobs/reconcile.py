"""Job: settle messages whose sending is unclear by asking the provider (every few minutes)."""

from __future__ import annotations

import threading

from flask import Flask

from app.services.messaging.dispatch import reconcile

JOB_SOURCE = "job:reconcile"


def run(app: Flask, stop: threading.Event) -> None:
    """Expire dead leases and look up ``unknown`` messages at the provider."""
    if stop.is_set():
        return
    with app.app_context():
        reconcile(source=JOB_SOURCE)
