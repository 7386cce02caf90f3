"""Alibaba Cloud MNS queues (SmsReport receipts, SmsUp replies) through the official SDK.

Queue mode (issue 12): instead of unsigned HTTP pushes, Alibaba puts each receipt and reply in
an MNS queue that Cadence long-polls with a signed request (``Authorization: MNS <id>:<sig>``,
the SDK signs). ``MnsQueue.receive`` is one BatchReceiveMessage (an empty queue is an empty
list, not an error); ``MnsQueue.delete`` is DeleteMessage by the receipt handle. Bodies are
received raw (the SDK's base64 decoding is off) so that one malformed body is one bad message,
not a failed batch: ``decode_body`` reads Alibaba's base64 JSON (plain JSON is accepted too).
Plain configuration values in, no Flask or SQLAlchemy here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mns.account import Account
from mns.mns_exception import MNSExceptionBase

MAX_BATCH = 16  # MNS allows 1..16 messages a BatchReceiveMessage
MAX_WAIT_SECONDS = 30  # MNS long polling: 0..30 seconds
AUTH_ERRORS = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "InvalidAuthorizationHeader"}
)
QUEUE_SETTINGS = ("ALIYUN_MNS_ENDPOINT", "ALIYUN_MNS_REPORT_QUEUE", "ALIYUN_MNS_REPLY_QUEUE")
KEY_SETTINGS = ("ALIYUN_MNS_ACCESS_KEY_ID", "ALIYUN_MNS_ACCESS_KEY_SECRET")


class MnsError(RuntimeError):
    """A queue request failed; ``code`` is MNS's error code (or the SDK's network error)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


class MnsAuthError(MnsError):
    """MNS refused the credentials or their signature."""


class MalformedMessage(ValueError):
    """A queue message body that is not Alibaba's JSON."""


@dataclass(frozen=True)
class QueueMessage:
    """One received message: its body as sent, and the handle that deletes it."""

    message_id: str
    receipt_handle: str
    body: str
    dequeue_count: int


@dataclass(frozen=True)
class MnsSettings:
    """Where the queues are and the keys that sign requests to them."""

    endpoint: str
    access_key_id: str
    access_key_secret: str
    report_queue: str | None
    reply_queue: str | None
    wait_seconds: int = 2
    batch_size: int = MAX_BATCH


def _value(settings: Mapping[str, Any], key: str) -> str:
    return str(settings.get(key) or "").strip()


def mns_problems(settings: Mapping[str, Any]) -> list[str]:
    """Why queue mode is half-configured (empty when it is off or complete), one line each."""
    own_keys = [key for key in KEY_SETTINGS if _value(settings, key)]
    if not any(_value(settings, key) for key in QUEUE_SETTINGS) and not own_keys:
        return []
    problems = []
    if not _value(settings, "ALIYUN_MNS_ENDPOINT"):
        problems.append(
            "ALIYUN_MNS_ENDPOINT is not set: queue mode needs the MNS endpoint, "
            "e.g. https://<account id>.mns.cn-hangzhou.aliyuncs.com"
        )
    elif not _value(settings, "ALIYUN_MNS_ENDPOINT").startswith(("http://", "https://")):
        problems.append("ALIYUN_MNS_ENDPOINT must start with https:// (or http://)")
    if not (
        _value(settings, "ALIYUN_MNS_REPORT_QUEUE") or _value(settings, "ALIYUN_MNS_REPLY_QUEUE")
    ):
        problems.append(
            "ALIYUN_MNS_REPORT_QUEUE and ALIYUN_MNS_REPLY_QUEUE are not set: queue mode needs "
            "at least one queue (SMS console, receipt settings: SmsReport / SmsUp queue names)"
        )
    if len(own_keys) == 1:
        missing = next(key for key in KEY_SETTINGS if key not in own_keys)
        problems.append(f"{missing} is not set: set both MNS keys, or neither to use ALIYUN_*")
    elif not own_keys and not (
        _value(settings, "ALIYUN_ACCESS_KEY_ID") and _value(settings, "ALIYUN_ACCESS_KEY_SECRET")
    ):
        problems.append(
            "queue mode has no credentials: set ALIYUN_MNS_ACCESS_KEY_ID and "
            "ALIYUN_MNS_ACCESS_KEY_SECRET (or ALIYUN_ACCESS_KEY_ID and ALIYUN_ACCESS_KEY_SECRET)"
        )
    bounds = (("ALIYUN_MNS_WAIT_SECONDS", 0, MAX_WAIT_SECONDS), ("ALIYUN_MNS_BATCH", 1, MAX_BATCH))
    for key, low, high in bounds:
        raw = _value(settings, key)
        if raw and not (raw.isdigit() and low <= int(raw) <= high):
            problems.append(f"{key}={raw!r} must be a whole number from {low} to {high}")
    return problems


def mns_settings(settings: Mapping[str, Any]) -> MnsSettings | None:
    """The queue settings, None when queue mode is off; ValueError when half-configured."""
    problems = mns_problems(settings)
    if problems:
        raise ValueError("; ".join(problems))
    if not _value(settings, "ALIYUN_MNS_ENDPOINT"):
        return None
    own = _value(settings, "ALIYUN_MNS_ACCESS_KEY_ID")
    return MnsSettings(
        endpoint=_value(settings, "ALIYUN_MNS_ENDPOINT"),
        access_key_id=own or _value(settings, "ALIYUN_ACCESS_KEY_ID"),
        access_key_secret=_value(settings, "ALIYUN_MNS_ACCESS_KEY_SECRET")
        if own
        else _value(settings, "ALIYUN_ACCESS_KEY_SECRET"),
        report_queue=_value(settings, "ALIYUN_MNS_REPORT_QUEUE") or None,
        reply_queue=_value(settings, "ALIYUN_MNS_REPLY_QUEUE") or None,
        wait_seconds=int(_value(settings, "ALIYUN_MNS_WAIT_SECONDS") or 2),
        batch_size=int(_value(settings, "ALIYUN_MNS_BATCH") or MAX_BATCH),
    )


def _error(exc: MNSExceptionBase) -> MnsError:
    kind = MnsAuthError if exc.type in AUTH_ERRORS else MnsError
    return kind(str(exc.type), str(exc.message)[:200])


class MnsQueue:
    """One MNS queue, read with long polling and acknowledged by deleting each message."""

    def __init__(self, settings: MnsSettings, name: str) -> None:
        self.name = name
        self.settings = settings
        account = Account(settings.endpoint, settings.access_key_id, settings.access_key_secret)
        account.mns_client.set_connection_timeout(settings.wait_seconds + 10)
        self._queue = account.get_queue(name)
        self._queue.set_encoding(False)  # bodies raw: decode_body checks each one alone
        self._client = account.mns_client

    def receive(self) -> list[QueueMessage]:
        """One BatchReceiveMessage (long polling ``wait_seconds``); [] when the queue is empty."""
        try:
            received = self._queue.batch_receive_message(
                self.settings.batch_size, self.settings.wait_seconds
            )
        except MNSExceptionBase as exc:
            if exc.type == "MessageNotExist":
                return []
            raise _error(exc) from None
        return [
            QueueMessage(
                message_id=str(m.message_id),
                receipt_handle=str(m.receipt_handle),
                body=m.message_body if isinstance(m.message_body, str) else m.message_body.decode(),
                dequeue_count=int(m.dequeue_count),
            )
            for m in received
        ]

    def delete(self, message: QueueMessage) -> None:
        """DeleteMessage by its receipt handle (after the message's work was committed)."""
        try:
            self._queue.delete_message(message.receipt_handle)
        except MNSExceptionBase as exc:
            raise _error(exc) from None

    def close(self) -> None:
        """Close the kept-alive connection."""
        self._client.close_connection()


def decode_body(body: str) -> Any:
    """Alibaba's message body: base64 of UTF-8 JSON (plain JSON accepted), or MalformedMessage."""
    text = body.strip()
    if not text.startswith(("{", "[")):
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise MalformedMessage("the body is neither base64 nor JSON") from None
    try:
        return json.loads(text)
    except ValueError:
        raise MalformedMessage("the body is not JSON") from None
