"""Send due outbox rows at once in a background thread (pages, check-in questions).

One sender thread per process (and app) waits to be kicked: a request that queued a page sets
an event and goes on (it does not start a thread); kicks that come while the sender is sending
are served by one more run, so a burst of red messages shares runs instead of starting a
dispatcher (and its pool of send threads) each. The dispatch job is the backstop: when
ESCALATION_PAGE_NOW is off or the thread fails, the next tick sends the same rows (the claims
in app.services.messaging.dispatch keep it exactly once).
"""

from __future__ import annotations

import logging
import os
import threading

from flask import Flask, current_app

from app.services.messaging.dispatch import dispatch_due

logger = logging.getLogger("cadence.replies")

RUN_LIMIT = 20
"""Most rows one run claims; a run that claims this many is followed by another at once."""
_SENDER_KEY = "cadence.send_now"
_STARTING = threading.Lock()


def kick_dispatch() -> None:
    """Send due pages now in the background (ESCALATION_PAGE_NOW); the job is the backstop."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("ESCALATION_PAGE_NOW", True):
        return
    sender_for(app).kick()


def sender_for(app: Flask) -> Sender:
    """The app's sender thread in this process (started on first use, again after a fork)."""
    with _STARTING:
        sender = app.extensions.get(_SENDER_KEY)
        if not isinstance(sender, Sender) or not sender.serving():
            sender = Sender(app)
            app.extensions[_SENDER_KEY] = sender
        return sender


class Sender:
    """A daemon thread that runs the dispatcher whenever it is kicked."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.pid = os.getpid()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="page-now", daemon=True)
        self.thread.start()

    def serving(self) -> bool:
        """True while the thread runs in this process (a forked child has none)."""
        return self.pid == os.getpid() and self.thread.is_alive()

    def kick(self) -> None:
        """Ask for a run (one run serves every kick made before it starts)."""
        self.wake.set()

    def _loop(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            if self._run_once() >= RUN_LIMIT:
                self.wake.set()

    def _run_once(self) -> int:
        with self.app.app_context():
            try:
                return dispatch_due(actor="system", limit=RUN_LIMIT).claimed
            except Exception:
                logger.exception("sending pages at once failed; the dispatch job will send them")
                return 0
