"""Send due outbox rows at once in a background thread (pages, check-in questions).

The dispatch job is the backstop: when ESCALATION_PAGE_NOW is off or the thread fails, the next
tick sends the same rows (the claims in app.services.messaging.dispatch keep it exactly once).
"""

from __future__ import annotations

import logging
import threading

from flask import Flask, current_app

from app.services.messaging.dispatch import dispatch_due

logger = logging.getLogger("cadence.replies")


def kick_dispatch() -> None:
    """Send due pages now in a background thread (ESCALATION_PAGE_NOW); the job is the backstop."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("ESCALATION_PAGE_NOW", True):
        return
    threading.Thread(target=_dispatch_pages, args=(app,), name="page-now", daemon=True).start()


def _dispatch_pages(app: Flask) -> None:
    with app.app_context():
        try:
            dispatch_due(actor="system", limit=20)
        except Exception:
            logger.exception("sending pages at once failed; the dispatch job will send them")
