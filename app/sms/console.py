"""The embedded default gateway: logs each message instead of sending it."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from app import clock
from app.sms.base import ProviderMessage, SentMessage
from app.sms.privacy import mask_phone
from app.sms.segments import count_segments

_default_logger = logging.getLogger("cadence.sms.console")


def _utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return clock.utcnow()


class ConsoleGateway:
    """Logs messages (masked number and segments; the body only at DEBUG), remembers them in
    memory; thread-safe. ``stream`` (an explicit console) gets the full text."""

    name = "console"

    def __init__(
        self,
        logger: logging.Logger | None = None,
        stream: TextIO | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._logger = logger or _default_logger
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: list[ProviderMessage] = []

    def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        reference: str | None = None,
    ) -> SentMessage:
        """Log the message and return a "console-<hex>" provider id; never fails."""
        info = count_segments(body)
        message = ProviderMessage(
            provider_id=f"console-{uuid.uuid4().hex}",
            to=to,
            body=body,
            status="sent",
            date_created=self._clock(),
        )
        summary = f"SMS to {mask_phone(to)} [{info.segments} segment(s), {info.encoding}]"
        with self._lock:
            self._sent.append(message)
            if self._stream is not None:
                self._stream.write(f"SMS to {to} [{info.segments} segment(s), {info.encoding}]: ")
                self._stream.write(body + "\n")
                self._stream.flush()
        self._logger.info("%s (id %s)", summary, message.provider_id)
        self._logger.debug("SMS %s body: %s", message.provider_id, body)
        return SentMessage(provider_id=message.provider_id, status=message.status)

    def find_sent(self, to: str, since: datetime, until: datetime) -> list[ProviderMessage]:
        """Messages sent to ``to`` with since <= date_created <= until, newest first."""
        with self._lock:
            found = [m for m in self._sent if m.to == to and since <= m.date_created <= until]
        return sorted(found, key=lambda m: m.date_created, reverse=True)

    @property
    def sent(self) -> list[ProviderMessage]:
        """A copy of every message sent so far, oldest first."""
        with self._lock:
            return list(self._sent)
