"""Job: archive and delete final outbox messages older than RETENTION_DAYS (once a day)."""

from __future__ import annotations

import logging
import threading

from flask import Flask

from app.services.messaging.retention import RetentionSettings, archive_old_messages

JOB_ACTOR = "job:retention"
logger = logging.getLogger("cadence.retention")


def run(app: Flask, stop: threading.Event) -> None:
    """Archive what the retention setting lets go (nothing when RETENTION_DAYS is 0)."""
    with app.app_context():
        settings = RetentionSettings.from_config(app.config)
        if not settings.days:
            return
        report = archive_old_messages(settings, actor=JOB_ACTOR, should_stop=stop.is_set)
        logger.info("retention: %s", report.summary())
