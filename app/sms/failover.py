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
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from app import clock
from app.sms.base import (
    AmbiguousSmsError,
    BatchSmsGateway,
    ProviderMessage,
    RetryableSmsError,
    SendAloneError,
    SentMessage,
    SmsError,
    SmsGateway,
    TerminalSmsError,
    batch_chunks,
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

    @property
    def max_batch(self) -> int:
        """Numbers per batch: the primary's (1 when the primary cannot batch)."""
        return self.primary.max_batch if isinstance(self.primary, BatchSmsGateway) else 1

    @property
    def reference_room(self) -> int:
        """Reference characters the primary keeps (only read when it can batch)."""
        return self.primary.reference_room if isinstance(self.primary, BatchSmsGateway) else 0

    def send_batch(
        self,
        to_list: Sequence[str],
        body: str,
        *,
        references: Sequence[str],
        status_callbacks: Sequence[str | None] | None = None,
    ) -> list[SentMessage | SmsError]:
        """One batch through the primary; members it certainly did not create (the whole
        request refused for now, or a member refused for now / rejected) go to the secondary.
        A whole-request ambiguous failure never fails over: every member may exist."""
        if not isinstance(self.primary, BatchSmsGateway):
            raise TypeError(f"{self.primary.name} cannot send batches")
        callbacks = list(status_callbacks or [None] * len(to_list))
        results: list[SentMessage | SmsError | None] = [None] * len(to_list)
        again = list(range(len(to_list)))
        if not self.breaker.is_open:
            try:
                answers = self.primary.send_batch(
                    to_list, body, references=references, status_callbacks=callbacks
                )
            except AmbiguousSmsError:
                self.breaker.failure()
                raise
            except RetryableSmsError as exc:
                self.breaker.failure()
                self._moving_on("did not send", exc)
            except TerminalSmsError as exc:
                if exc.reason != "rejected":
                    raise
                self._moving_on("refused", exc)
            else:
                self.breaker.success()
                again = [i for i, answer in enumerate(answers) if _moves_on(answer)]
                for i, answer in enumerate(answers):
                    if i not in again:
                        results[i] = _carried_by_or_error(answer, self.primary.name)
        for i, answer in self._secondary_batch(to_list, body, references, callbacks, again):
            results[i] = _carried_by_or_error(answer, self.secondary.name)
        return [r if r is not None else AmbiguousSmsError("no answer") for r in results]

    def _moving_on(self, what: str, exc: SmsError) -> None:
        _logger.warning(
            "primary %s %s (%s): trying %s", self.primary.name, what, exc, self.secondary.name
        )

    def _secondary_batch(
        self,
        to_list: Sequence[str],
        body: str,
        references: Sequence[str],
        callbacks: Sequence[str | None],
        indexes: list[int],
    ) -> list[tuple[int, SentMessage | SmsError]]:
        """Send the members at ``indexes`` through the secondary: batched when it can, else
        one by one; each member's result (a whole-request error is every member's)."""
        if not indexes:
            return []
        if not isinstance(self.secondary, BatchSmsGateway):
            # one by one is the dispatcher's to do (it checks its lease before each send)
            alone = SendAloneError(f"{self.secondary.name} sends one message per request")
            return [(i, alone) for i in indexes]
        out: list[tuple[int, SentMessage | SmsError]] = []
        refs = [references[i] for i in indexes]
        for chunk in batch_chunks(refs, self.secondary.max_batch, self.secondary.reference_room):
            members = [indexes[c] for c in chunk]
            try:
                answers: list[SentMessage | SmsError] = self.secondary.send_batch(
                    [to_list[i] for i in members],
                    body,
                    references=[references[i] for i in members],
                    status_callbacks=[callbacks[i] for i in members],
                )
            except SmsError as exc:
                answers = [exc] * len(members)
            out.extend(zip(members, answers, strict=True))
        return out

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


def _moves_on(answer: SentMessage | SmsError) -> bool:
    """A member the primary certainly did not create and may be sent elsewhere (one to send
    alone goes back to the dispatcher: a refusal of its own may follow)."""
    if isinstance(answer, SendAloneError):
        return False
    if isinstance(answer, RetryableSmsError):
        return True
    return isinstance(answer, TerminalSmsError) and answer.reason == "rejected"


def _carried_by_or_error(answer: SentMessage | SmsError, name: str) -> SentMessage | SmsError:
    return _carried_by(answer, name) if isinstance(answer, SentMessage) else answer


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
