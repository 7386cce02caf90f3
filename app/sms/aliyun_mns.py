"""Alibaba Cloud MNS queues (SmsReport receipts, SmsUp replies) through the official SDK.

Queue mode (issue 12): instead of unsigned HTTP pushes, Alibaba puts each receipt and reply in
an MNS queue that Cadence long-polls with a signed request (``Authorization: MNS <id>:<sig>``,
the SDK signs). Alibaba's SMS queues (``Alicom-Queue-<id>-SmsReport`` / ``-SmsUp``) live in
Alibaba's own MNS account: ``ALIYUN_MNS_AUTH=token`` (default) signs with temporary keys that
Dybaseapi ``QueryTokenForMnsQueue`` gives for the queue (signed with the long-term key, cached
until two minutes before they expire, asked again after MNS refuses them); ``key`` signs with
the key itself, for a queue in your own MNS account. ``MnsQueue.receive`` is one BatchReceiveMessage (an empty queue is an empty
list, not an error); ``MnsQueue.delete`` is DeleteMessage by the receipt handle. Bodies are
received raw (the SDK's base64 decoding is off) so that one malformed body is one bad message,
not a failed batch: ``decode_body`` reads Alibaba's base64 JSON (plain JSON is accepted too).
Plain configuration values in, no Flask or SQLAlchemy here.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alibabacloud_tea_openapi.client import Client as OpenApiClient
from alibabacloud_tea_openapi.utils_models import Config, OpenApiRequest, Params
from darabonba.runtime import RuntimeOptions
from mns.account import Account
from mns.auth import Credentials, CredentialsProvider
from mns.mns_exception import MNSExceptionBase

from app import clock

MAX_BATCH = 16  # MNS allows 1..16 messages a BatchReceiveMessage
MAX_WAIT_SECONDS = 30  # MNS long polling: 0..30 seconds
AUTH_ERRORS = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "InvalidAuthorizationHeader"}
)
QUEUE_SETTINGS = ("ALIYUN_MNS_ENDPOINT", "ALIYUN_MNS_REPORT_QUEUE", "ALIYUN_MNS_REPLY_QUEUE")
AUTH_MODES = ("token", "key")  # token: Alibaba's SMS queues (QueryTokenForMnsQueue); key: own queue
TOKEN_ENDPOINT = "dybaseapi.aliyuncs.com"
TOKEN_REFRESH_BEFORE = timedelta(minutes=2)
CHINA = ZoneInfo("Asia/Shanghai")
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
    auth: str = "token"
    token_endpoint: str = TOKEN_ENDPOINT


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
    auth = _value(settings, "ALIYUN_MNS_AUTH").lower()
    if auth and auth not in AUTH_MODES:
        problems.append(
            f"ALIYUN_MNS_AUTH={auth!r} must be token (Alibaba's SMS queues) or key (your own queue)"
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
        auth=_value(settings, "ALIYUN_MNS_AUTH").lower() or "token",
        token_endpoint=_value(settings, "ALIYUN_MNS_TOKEN_ENDPOINT") or TOKEN_ENDPOINT,
    )


def _error(exc: MNSExceptionBase) -> MnsError:
    kind = MnsAuthError if exc.type in AUTH_ERRORS or "SecurityToken" in exc.type else MnsError
    return kind(str(exc.type), str(exc.message)[:200])


_tokens: dict[tuple[str, str, str], Credentials] = {}
_tokens_until: dict[tuple[str, str, str], datetime] = {}
_tokens_lock = threading.Lock()


def forget_tokens() -> None:
    """Drop every cached queue token (the next request asks for new ones)."""
    with _tokens_lock:
        _tokens.clear()
        _tokens_until.clear()


class QueueTokens(CredentialsProvider):
    """Temporary keys for one of Alibaba's SMS queues (Dybaseapi QueryTokenForMnsQueue, signed
    with the long-term key), reused until two minutes before they expire."""

    def __init__(self, settings: MnsSettings, message_type: str, queue: str) -> None:
        self.settings = settings
        self.message_type = message_type
        self.queue = queue

    def _cache_key(self) -> tuple[str, str, str]:
        return (self.settings.token_endpoint, self.settings.access_key_id, self.queue)

    def forget(self) -> None:
        """Drop the cached token of this queue (MNS refused it)."""
        with _tokens_lock:
            _tokens.pop(self._cache_key(), None)

    def get_credentials(self) -> Credentials:
        """The current temporary key id, secret and security token (fetched when due)."""
        cache_key = self._cache_key()
        with _tokens_lock:
            if cache_key in _tokens and clock.utcnow() < _tokens_until[cache_key]:
                return _tokens[cache_key]
            credentials, expires = self._query()
            _tokens[cache_key], _tokens_until[cache_key] = credentials, expires
            return credentials

    def _query(self) -> tuple[Credentials, datetime]:
        scheme, _, host = self.settings.token_endpoint.rpartition("://")
        client = OpenApiClient(
            Config(
                access_key_id=self.settings.access_key_id,
                access_key_secret=self.settings.access_key_secret,
                endpoint=host,
                protocol=scheme or "https",
                read_timeout=10000,
                connect_timeout=5000,
            )
        )
        params = Params(
            action="QueryTokenForMnsQueue",
            version="2017-05-25",
            protocol=scheme or "https",
            pathname="/",
            method="POST",
            auth_type="AK",
            style="RPC",
            req_body_type="formData",
            body_type="json",
        )
        request = OpenApiRequest(query={"MessageType": self.message_type, "QueueName": self.queue})
        try:
            answer = client.call_api(params, request, RuntimeOptions(autoretry=False))
        except Exception as exc:
            code = str(getattr(exc, "code", "") or type(exc).__name__)
            kind = MnsAuthError if _is_auth_code(code) else MnsError
            raise kind(code, f"QueryTokenForMnsQueue failed: {str(exc)[:200]}") from None
        body = answer.get("body") or {}
        dto = body.get("MessageTokenDTO") or {}
        if body.get("Code") != "OK" or not dto.get("SecurityToken"):
            code = str(body.get("Code") or "NoToken")
            kind = MnsAuthError if _is_auth_code(code) else MnsError
            raise kind(code, f"QueryTokenForMnsQueue: {str(body.get('Message'))[:200]}")
        expires = datetime.strptime(str(dto["ExpireTime"]), "%Y-%m-%d %H:%M:%S")
        until = expires.replace(tzinfo=CHINA) - TOKEN_REFRESH_BEFORE
        credentials = Credentials(dto["AccessKeyId"], dto["AccessKeySecret"], dto["SecurityToken"])
        return credentials, until


def _is_auth_code(code: str) -> bool:
    return any(word in code for word in ("AccessKey", "Signature", "Forbidden", "NoPermission"))


MESSAGE_TYPES = {"report": "SmsReport", "reply": "SmsUp"}


class MnsQueue:
    """One MNS queue, read with long polling and acknowledged by deleting each message."""

    def __init__(self, settings: MnsSettings, name: str, kind: str = "report") -> None:
        self.name = name
        self.settings = settings
        self._tokens: QueueTokens | None = None
        if settings.auth == "token":
            self._tokens = QueueTokens(settings, MESSAGE_TYPES[kind], name)
            account = Account(settings.endpoint, credentials_provider=self._tokens)
        else:
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
            error = _error(exc)
            if isinstance(error, MnsAuthError) and self._tokens is not None:
                self._tokens.forget()  # an expired or revoked token: ask again next time
            raise error from None
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
