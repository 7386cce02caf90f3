"""A primary and a secondary gateway behind one interface, with a circuit breaker.

A message moves to the secondary only when the primary certainly did NOT create it: a
``RetryableSmsError`` (outage, limits, empty balance, refused connection), a ``rejected``
refusal (template or signature not approved there), or the breaker open after repeated
failures. An ``AmbiguousSmsError`` never fails over (the message may exist at the primary):
it goes to the reconciler, which asks both providers (``find_sent``) before any resend.
Opted-out and invalid numbers are facts about the patient, not the provider: no failover.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from app import clock
from app.sms.base import (
    AmbiguousSmsError,
    ProviderMessage,
    RetryableSmsError,
    SentMessage,
    SmsError,
    SmsGateway,
    TerminalSmsError,
)

_logger = logging.getLogger("cadence.sms.failover")


class CircuitBreaker:
    """Opens after ``threshold`` failures in a row; half-opens (one trial) after ``cooldown``."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: timedelta = timedelta(minutes=5),
        now: Callable[[], datetime] = clock.utcnow,
    ) -> None:
        if threshold < 1:
            raise ValueError("the breaker threshold must be at least 1")
        self.threshold = threshold
        self.cooldown = cooldown
        self._now = now
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        """True while the primary is considered down (no trial allowed yet)."""
        with self._lock:
            return self._opened_at is not None and self._now() - self._opened_at < self.cooldown

    def success(self) -> None:
        """A request to the primary worked: close the breaker."""
        with self._lock:
            self._failures = 0
            self._opened_at = None

    def failure(self) -> None:
        """A request to the primary failed (outage-like): count it, maybe open."""
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                if self._opened_at is None:
                    _logger.warning("SMS primary provider failing: circuit opened")
                self._opened_at = self._now()


class FailoverGateway:
    """Sends through ``primary``; moves to ``secondary`` only when nothing was created."""

    def __init__(
        self, primary: SmsGateway, secondary: SmsGateway, breaker: CircuitBreaker | None = None
    ) -> None:
        self.primary = primary
        self.secondary = secondary
        self.breaker = breaker or CircuitBreaker()
        self.name = f"{primary.name}+{secondary.name}"

    def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        reference: str | None = None,
    ) -> SentMessage:
        """Send through the primary, or the secondary when the primary certainly did not."""
        if not self.breaker.is_open:
            try:
                sent = self.primary.send(
                    to, body, status_callback=status_callback, reference=reference
                )
            except AmbiguousSmsError:
                self.breaker.failure()
                raise
            except RetryableSmsError as exc:
                self.breaker.failure()
                _logger.warning(
                    "primary %s did not send (%s): trying %s",
                    self.primary.name,
                    exc,
                    self.secondary.name,
                )
            except TerminalSmsError as exc:
                if exc.reason != "rejected":
                    raise
                _logger.warning(
                    "primary %s refused (%s): trying %s",
                    self.primary.name,
                    exc,
                    self.secondary.name,
                )
            else:
                self.breaker.success()
                return _carried_by(sent, self.primary.name)
        sent = self.secondary.send(to, body, status_callback=status_callback, reference=reference)
        return _carried_by(sent, self.secondary.name)

    def find_sent(self, to: str, since: datetime, until: datetime) -> list[ProviderMessage]:
        """What either provider has for ``to`` (an ambiguous send may be at either)."""
        found: list[ProviderMessage] = []
        errors: list[SmsError] = []
        for gateway in (self.primary, self.secondary):
            try:
                found.extend(
                    _found_at(m, gateway.name) for m in gateway.find_sent(to, since, until)
                )
            except SmsError as exc:
                errors.append(exc)
        if errors:  # one provider unknown: we cannot say the message is absent
            raise RetryableSmsError(f"could not ask every provider: {errors[0]}")
        return sorted(found, key=lambda m: m.date_created, reverse=True)


def _carried_by(sent: SentMessage, name: str) -> SentMessage:
    return sent if sent.provider else SentMessage(sent.provider_id, sent.status, provider=name)


def _found_at(message: ProviderMessage, name: str) -> ProviderMessage:
    if message.provider:
        return message
    return ProviderMessage(
        provider_id=message.provider_id,
        to=message.to,
        body=message.body,
        status=message.status,
        date_created=message.date_created,
        error_code=message.error_code,
        reference=message.reference,
        provider=name,
    )
