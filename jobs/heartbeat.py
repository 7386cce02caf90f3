"""Job: record that this jobs process is alive (read by /healthz on any host)."""

from __future__ import annotations

import os
import socket
import threading

from flask import Flask

from app.models import utcnow
from app.services.shared.heartbeat import record_heartbeat

STARTED_AT = utcnow()


def process_name() -> str:
    """This process as host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run(app: Flask, stop: threading.Event) -> None:
    """Record one heartbeat row for this process."""
    with app.app_context():
        record_heartbeat(process_name(), STARTED_AT, utcnow())
