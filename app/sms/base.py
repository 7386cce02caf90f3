"""The gateway interface every SMS provider implements, and its typed errors.

How a caller must treat each error (see ARCHITECTURE.md, "Sending exactly once"):

- ``RetryableSmsError``: the provider certainly did NOT create the message (HTTP 429 /
  Twilio 20429, connection refused, credentials rejected). Retrying later with backoff is safe.
- ``TerminalSmsError``: the provider refused this message for good; ``reason`` says why
  ("opted_out", "invalid_number" or "rejected"). Do not retry; update the patient / show it.
- ``AmbiguousSmsError``: the request may have reached the provider (timeout, 5xx, connection
  dropped after sending). The message MAY exist: mark it ``unknown`` and let the reconciler
  call ``find_sent`` before anything is resent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

TerminalReason = Literal["opted_out", "invalid_number", "rejected"]
TERMINAL_REASONS: frozenset[str] = frozenset({"opted_out", "invalid_number", "rejected"})


class SmsError(Exception):
    """Base class of every error a gateway raises."""

    def __init__(
        self,
        message: str,
        *,
        provider_code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider_code = provider_code
        self.http_status = http_status

    def __str__(self) -> str:
        details = []
        if self.http_status is not None:
            details.append(f"HTTP {self.http_status}")
        if self.provider_code is not None:
            details.append(f"code {self.provider_code}")
        return f"{self.message} ({', '.join(details)})" if details else self.message


class RetryableSmsError(SmsError):
    """The message was certainly not created; sending again later is safe."""


class SmsAuthError(RetryableSmsError):
    """The provider rejected our credentials (HTTP 401/403): a configuration problem.

    Nothing was sent, so it is retryable; the message stays due until the settings are fixed.
    """


class SendAloneError(RetryableSmsError):
    """A batch member the provider did not create because it refused the whole batch for a
    reason that may be one member's (an invalid or unsubscribed number, a number's frequency
    limit): send it again alone, now, to get its own answer. Retryable for any caller that
    does not know it."""


class TerminalSmsError(SmsError):
    """The provider refused this message for good; ``reason`` tells the caller why."""

    def __init__(
        self,
        message: str,
        *,
        reason: TerminalReason,
        provider_code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        if reason not in TERMINAL_REASONS:
            raise ValueError(f"unknown terminal reason {reason!r}")
        super().__init__(message, provider_code=provider_code, http_status=http_status)
        self.reason: TerminalReason = reason


class AmbiguousSmsError(SmsError):
    """The request may have reached the provider: the message MAY exist. Reconcile first."""


@dataclass(frozen=True)
class SentMessage:
    """What the provider answered when it accepted a message."""

    provider_id: str
    status: str
    provider: str | None = None  # which provider carried it (a failover gateway has two)


@dataclass(frozen=True)
class ProviderMessage:
    """A message as the provider knows it (used by the reconciler)."""

    provider_id: str
    to: str
    body: str
    status: str
    date_created: datetime
    error_code: int | None = None
    # The outbox id we gave the provider (Tencent SessionContext, Alibaba OutId), when it keeps one.
    reference: str | None = None
    provider: str | None = None


@runtime_checkable
class SmsGateway(Protocol):
    """The small interface the dispatcher and reconciler depend on."""

    name: str

    def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        reference: str | None = None,
    ) -> SentMessage:
        """Send one SMS (``reference``: our outbox id); return the provider's id or raise."""
        ...

    def find_sent(self, to: str, since: datetime, until: datetime) -> list[ProviderMessage]:
        """Messages to ``to`` created in [since, until] (aware datetimes), newest first."""
        ...


@runtime_checkable
class BatchSmsGateway(SmsGateway, Protocol):
    """A gateway that can send one text to many numbers in one request (Tencent SendSms,
    Alibaba SendBatchSms).

    ``send_batch`` answers one result per number, in order: a ``SentMessage`` with that
    number's own provider id, or the ``SmsError`` refusing that number (the others are sent);
    ``SendAloneError`` when the batch was refused for what may be one member's fault.
    A whole-request failure raises as ``send`` does, for every member. The batch's outbox ids
    travel as one reference (``encode_references``) that ``find_sent`` returns for each
    member, so the reconciler finds every member before any resend.
    """

    max_batch: int  # numbers per request
    reference_room: int  # characters the provider keeps of the reference

    def send_batch(
        self,
        to_list: Sequence[str],
        body: str,
        *,
        references: Sequence[str],
        status_callbacks: Sequence[str | None] | None = None,
    ) -> list[SentMessage | SmsError]:
        """Send ``body`` to every number of ``to_list`` (distinct) in one request
        (``status_callbacks``: each member's, for a provider that takes one per message)."""
        ...


def encode_references(references: Sequence[str]) -> str:
    """Outbox ids as one compact reference: ``"7"``, ``"7,9"``, runs as ``"12-40"``."""
    numbers = sorted({int(r) for r in references})
    parts: list[str] = []
    start = previous = None
    for number in [*numbers, None]:
        if previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None and previous is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = number
    return ",".join(parts)


def reference_covers(reference: str | None, outbox_id: int | str) -> bool:
    """True when ``reference`` (one id or an ``encode_references`` list) names ``outbox_id``."""
    if not reference:
        return False
    wanted = str(outbox_id)
    if reference == wanted:
        return True
    if not wanted.isdigit():
        return False
    number = int(wanted)
    for part in reference.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            return False  # not a list we wrote: only an exact match counts
        if int(low) <= number <= int(high or low):
            return True
    return False


def reference_ids(reference: str | None, limit: int = 1000) -> list[int]:
    """The outbox ids an ``encode_references`` list names (empty when it is not one, or when
    it names more than ``limit``: a pushed value is not trusted to be small)."""
    ids: list[int] = []
    for part in (reference or "").split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            return []
        first, last = int(low), int(high or low)
        if last < first or len(ids) + last - first + 1 > limit:
            return []
        ids.extend(range(first, last + 1))
    return ids


def batch_chunks(references: Sequence[str], max_batch: int, room: int) -> list[list[int]]:
    """Indexes of ``references`` in consecutive chunks of at most ``max_batch`` members whose
    ``encode_references`` fits in ``room`` characters (a chunk of one always goes alone)."""
    chunks: list[list[int]] = []
    current: list[int] = []
    for index in range(len(references)):
        candidate = [*current, index]
        fits = len(encode_references([references[i] for i in candidate])) <= room
        if current and (len(candidate) > max_batch or not fits):
            chunks.append(current)
            candidate = [index]
        current = candidate
    if current:
        chunks.append(current)
    return chunks
