"""A fake Alibaba Cloud MNS (queue service) on loopback, for the real ``aliyun-mns-sdk``.

It checks every request's signature as MNS does (and as the SDK's ``get_signature`` computes
it): ``Authorization: MNS <AccessKeyId>:<base64 HMAC-SHA1(secret, string to sign)>`` where the
string to sign is ``METHOD\\nContent-MD5\\nContent-Type\\nDate\\n`` + every ``x-mns-*`` header
(lower-case, sorted, ``name:value\\n``) + the resource (path and query). An unknown key id gets
403 ``InvalidAccessKeyId``, a wrong signature 403 ``SignatureDoesNotMatch`` (MNS's XML error).

Queues: ReceiveMessage and BatchReceiveMessage (``GET /queues/<q>/messages[?numOfMessages=n]
[&waitseconds=w]``: long polling, then 404 ``MessageNotExist``), each received message invisible
for the queue's visibility timeout under a new receipt handle; DeleteMessage (``DELETE
...?ReceiptHandle=h``: 204, or 400 ``ReceiptHandleError`` for a handle no longer current).
Alibaba's SMS queues are read with temporary keys: ``QueryTokenForMnsQueue`` (Dybaseapi, RPC,
``POST /`` with the ACS3-HMAC-SHA256 signature of the Alibaba Cloud SDK, checked here too)
returns an ``STS.`` key id, its secret and a SecurityToken; MNS requests signed with them must
carry the ``security-token`` header (else 403 ``InvalidSecurityToken``); ``revoke_tokens()``
makes the issued ones invalid. Tests enqueue Alibaba's SMS messages with ``put_report`` / ``put_reply`` (a JSON object,
base64-encoded as Alibaba's SMS queues deliver it) or ``put_raw``; ``advance(seconds)`` moves the
fake's own clock (visibility timeouts) without sleeping; ``fail_deletes(n)`` loses deletes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape

from app.clock import utcnow
from tests.fakes.serving import ServedFake, TrackedHandler

NAMESPACE = "http://mns.aliyuncs.com/doc/v1/"
VISIBILITY_TIMEOUT = 30.0


@dataclass
class QueuedMessage:
    """A message in a fake queue."""

    message_id: str
    body: str
    enqueue_ms: int
    visible_at: float = 0.0
    receipt_handle: str | None = None
    dequeue_count: int = 0
    first_dequeue_ms: int = 0


class _Handler(TrackedHandler):
    def do_GET(self) -> None:
        """ReceiveMessage / BatchReceiveMessage."""
        self.server.fake.handle(self)

    do_DELETE = do_POST = do_PUT = do_GET

    def answer(self, status: int, body: str = "", kind: str = "text/xml;charset=utf-8") -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("x-mns-request-id", uuid.uuid4().hex[:24].upper())
        if data:
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)
        self.wfile.flush()


class FakeMns(ServedFake):
    """Fake MNS (see the module docstring): keys, queues, signed requests, visibility."""

    handler_class = _Handler
    thread_name = "fake-mns"

    def __init__(
        self,
        keys: dict[str, str] | None = None,
        queues: tuple[str, ...] = ("Alicom-Queue-1-SmsReport", "Alicom-Queue-1-SmsUp"),
        visibility_timeout: float = VISIBILITY_TIMEOUT,
    ) -> None:
        super().__init__()
        self.keys = dict(keys or {"LTAImns": "mns-secret"})  # long-term keys
        self.tokens: dict[str, tuple[str, str]] = {}  # STS key id -> (secret, security token)
        self.token_requests: list[tuple[str, str]] = []  # (MessageType, QueueName) asked for
        self.visibility_timeout = visibility_timeout
        self._queues: dict[str, list[QueuedMessage]] = {q: [] for q in queues}
        self._changed = threading.Condition()
        self._offset = 0.0
        self._lost_deletes = 0
        self.requests: deque[tuple[str, str, int]] = deque(maxlen=1000)  # method, path, status

    # -- serving ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop serving; a long poll in progress ends at once."""
        with self._changed:
            self._changed.notify_all()
        super().stop()

    # -- programming ------------------------------------------------------------------------

    def now(self) -> float:
        """The fake's clock: real time plus what ``advance`` added."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (received messages become visible again after the timeout)."""
        with self._changed:
            self._offset += seconds
            self._changed.notify_all()

    def fail_deletes(self, n: int = 1) -> None:
        """The next ``n`` DeleteMessage requests fail with 500 (the message stays)."""
        with self._changed:
            self._lost_deletes += n

    def revoke_tokens(self) -> None:
        """Every temporary key issued so far stops working (as when it expires)."""
        with self._changed:
            self.tokens.clear()

    def put_raw(self, queue: str, body: str) -> str:
        """Enqueue a body exactly as given; its MessageId."""
        message = QueuedMessage(uuid.uuid4().hex.upper(), body, int(self.now() * 1000))
        with self._changed:
            self._queues[queue].append(message)
            self._changed.notify_all()
        return message.message_id

    def put_json(self, queue: str, payload: Any) -> str:
        """Enqueue a JSON payload base64-encoded, as Alibaba's SMS queues deliver it."""
        text = json.dumps(payload, ensure_ascii=False)
        return self.put_raw(queue, base64.b64encode(text.encode("utf-8")).decode("ascii"))

    def put_report(self, queue: str, **fields: Any) -> str:
        """Enqueue one SmsReport (phone_number, send_time, report_time, success, err_code,
        err_msg, biz_id, out_id, sms_size)."""
        report = {
            "phone_number": "13800000001",
            "send_time": "2026-03-04 09:00:00",
            "report_time": "2026-03-04 09:00:05",
            "success": True,
            "err_code": "DELIVERED",
            "err_msg": "用户接收成功",
            "sms_size": "1",
            "biz_id": "",
            "out_id": "",
        }
        report.update(fields)
        return self.put_json(queue, report)

    def put_reply(self, queue: str, phone: str, content: str, send_time: str) -> str:
        """Enqueue one SmsUp (phone_number, send_time, content, sign_name, dest_code,
        sequence_id)."""
        return self.put_json(
            queue,
            {
                "phone_number": phone.removeprefix("+86"),
                "send_time": send_time,
                "content": content,
                "sign_name": "江苏省肿瘤医院",
                "dest_code": "1234",
                "sequence_id": secrets.randbelow(10**9),
            },
        )

    def pending(self, queue: str) -> int:
        """Messages still in ``queue`` (visible or not)."""
        with self._changed:
            return len(self._queues[queue])

    def deletes(self) -> list[int]:
        """Statuses of every DeleteMessage request, in order."""
        return [status for method, _, status in self.requests if method == "DELETE"]

    # -- requests -------------------------------------------------------------------------

    def handle(self, handler: _Handler) -> None:
        """Check the signature, then route the request."""
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if handler.command == "POST" and urlsplit(handler.path).path == "/":
            status, body = self._token(handler, raw)
            self.requests.append((handler.command, handler.path, status))
            handler.answer(status, body, "application/json;charset=utf-8")
            return
        status, body = self._authenticate(handler)
        if status == 200:
            status, body = self._route(handler)
        self.requests.append((handler.command, handler.path, status))
        handler.answer(status, body)

    def _authenticate(self, handler: _Handler) -> tuple[int, str]:
        scheme, _, credential = (handler.headers.get("Authorization") or "").partition(" ")
        key_id, _, signature = credential.partition(":")
        if scheme != "MNS" or not signature or not handler.headers.get("x-mns-version"):
            return _error(403, "InvalidAuthorizationHeader", "The Authorization header is invalid.")
        secret = self.keys.get(key_id)
        if key_id in self.tokens:
            secret, token = self.tokens[key_id]
            if not hmac.compare_digest(handler.headers.get("security-token") or "", token):
                return _error(403, "InvalidSecurityToken", "The security token is invalid.")
        if secret is None:
            return _error(403, "InvalidAccessKeyId", "The access Id you provided does not exist.")
        expected = base64.b64encode(
            hmac.new(secret.encode(), _string_to_sign(handler).encode(), hashlib.sha1).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            return _error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        return 200, ""

    def _token(self, handler: _Handler, raw: bytes) -> tuple[int, str]:
        """Dybaseapi QueryTokenForMnsQueue: check the ACS3 signature, issue an STS key."""
        query = {k: v[-1] for k, v in parse_qs(urlsplit(handler.path).query).items()}
        query |= {k: v[-1] for k, v in parse_qs(raw.decode("utf-8")).items()}
        action = handler.headers.get("x-acs-action") or query.get("Action", "")
        refused = _acs3_refusal(handler, raw, query, self.keys)
        if refused:
            return _json(403 if refused != "MissingParameter" else 400, refused)
        if action != "QueryTokenForMnsQueue":
            return _json(404, "InvalidAction.NotFound")
        message_type, queue = query.get("MessageType", ""), query.get("QueueName", "")
        if message_type not in ("SmsReport", "SmsUp") or queue not in self._queues:
            return _json(400, "InvalidParameter")
        self.token_requests.append((message_type, queue))
        key_id, secret, token = (
            "STS." + secrets.token_hex(8),
            secrets.token_hex(16),
            secrets.token_hex(24),
        )
        with self._changed:
            self.tokens[key_id] = (secret, token)
        expires = (utcnow() + timedelta(hours=8, minutes=30)).strftime("%Y-%m-%d %H:%M:%S")
        return 200, json.dumps(
            {
                "Code": "OK",
                "Message": "OK",
                "RequestId": uuid.uuid4().hex,
                "MessageTokenDTO": {
                    "AccessKeyId": key_id,
                    "AccessKeySecret": secret,
                    "SecurityToken": token,
                    "CreateTime": utcnow().strftime("%Y-%m-%d %H:%M:%S"),
                    "ExpireTime": expires,
                },
            }
        )

    def _route(self, handler: _Handler) -> tuple[int, str]:
        parts = urlsplit(handler.path)
        segments = parts.path.strip("/").split("/")
        query = {k.lower(): v[0] for k, v in parse_qs(parts.query).items()}
        if len(segments) != 3 or segments[0] != "queues" or segments[2] != "messages":
            return _error(404, "InvalidArgument", "Unsupported resource in the fake.")
        queue = segments[1]
        if queue not in self._queues:
            return _error(404, "QueueNotExist", "The queue name you provided is not exist.")
        if handler.command == "GET":
            return self._receive(queue, query)
        if handler.command == "DELETE":
            return self._delete(queue, query.get("receipthandle", ""))
        return _error(405, "InvalidArgument", "Unsupported method in the fake.")

    def _receive(self, queue: str, query: dict[str, str]) -> tuple[int, str]:
        batch = "numofmessages" in query
        count = int(query.get("numofmessages") or 1)
        wait = float(query.get("waitseconds") or 0)
        if not 1 <= count <= 16 or not 0 <= wait <= 30:
            return _error(400, "InvalidArgument", "numOfMessages 1..16, waitSeconds 0..30.")
        deadline = time.monotonic() + wait
        with self._changed:
            while True:
                taken = self._take(queue, count)
                left = deadline - time.monotonic()
                if taken or left <= 0 or self._stopping.is_set():
                    break
                self._changed.wait(min(left, 0.2))
        if not taken:
            return _error(404, "MessageNotExist", "Message not exist.")
        if batch:
            inner = "".join(_message_xml(m) for m in taken)
            return (
                200,
                f'<?xml version="1.0" encoding="UTF-8"?><Messages xmlns="{NAMESPACE}">{inner}</Messages>',
            )
        return 200, '<?xml version="1.0" encoding="UTF-8"?>' + _message_xml(taken[0], NAMESPACE)

    def _take(self, queue: str, count: int) -> list[QueuedMessage]:
        now = self.now()
        taken = []
        for message in self._queues[queue]:
            if len(taken) == count:
                break
            if message.visible_at <= now:
                message.visible_at = now + self.visibility_timeout
                message.receipt_handle = secrets.token_hex(16)
                message.dequeue_count += 1
                message.first_dequeue_ms = message.first_dequeue_ms or int(now * 1000)
                taken.append(message)
        return taken

    def _delete(self, queue: str, handle: str) -> tuple[int, str]:
        with self._changed:
            if self._lost_deletes:
                self._lost_deletes -= 1
                return _error(500, "InternalError", "Internal error (fake).")
            now = self.now()
            for message in self._queues[queue]:
                if handle and message.receipt_handle == handle and message.visible_at > now:
                    self._queues[queue].remove(message)
                    return 204, ""
        return _error(400, "ReceiptHandleError", "The receipt handle you provide is not valid.")


def _string_to_sign(handler: _Handler) -> str:
    """What MNS signs: method, Content-MD5, Content-Type, Date, x-mns-* headers, resource."""
    headers = {name.lower(): value for name, value in handler.headers.items()}
    mns_headers = "".join(
        f"{name}:{headers[name]}\n" for name in sorted(headers) if name.startswith("x-mns-")
    )
    return (
        f"{handler.command}\n{headers.get('content-md5', '')}\n"
        f"{headers.get('content-type', '')}\n{headers.get('date', '')}\n{mns_headers}{handler.path}"
    )


def _acs3_refusal(
    handler: _Handler, raw: bytes, query: dict[str, str], keys: dict[str, str]
) -> str | None:
    """Why an Alibaba Cloud (ACS3-HMAC-SHA256) signed request is refused, or None."""
    scheme, _, rest = (handler.headers.get("Authorization") or "").partition(" ")
    parts = dict(p.partition("=")[::2] for p in rest.split(","))
    if scheme != "ACS3-HMAC-SHA256" or not parts.get("Signature"):
        return "MissingParameter"
    secret = keys.get(parts.get("Credential", ""))
    if secret is None:
        return "InvalidAccessKeyId.NotFound"
    payload = handler.headers.get("x-acs-content-sha256") or ""
    if payload != hashlib.sha256(raw).hexdigest():
        return "SignatureDoesNotMatch"
    signed = parts.get("SignedHeaders", "").split(";")
    headers = "".join(f"{name}:{(handler.headers.get(name) or '').strip()}\n" for name in signed)
    url_query = {k: v[-1] for k, v in parse_qs(urlsplit(handler.path).query).items()}
    canonical_query = "&".join(f"{k}={quote(url_query[k], safe='~')}" for k in sorted(url_query))
    canonical = (
        f"{handler.command}\n{urlsplit(handler.path).path or '/'}\n{canonical_query}\n"
        f"{headers}\n{';'.join(signed)}\n{payload}"
    )
    to_sign = f"ACS3-HMAC-SHA256\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, parts["Signature"]) else "SignatureDoesNotMatch"


def _json(status: int, code: str) -> tuple[int, str]:
    return status, json.dumps({"Code": code, "Message": code, "RequestId": uuid.uuid4().hex})


def _message_xml(message: QueuedMessage, namespace: str | None = None) -> str:
    attribute = f' xmlns="{namespace}"' if namespace else ""
    md5 = hashlib.md5(message.body.encode("utf-8")).hexdigest().upper()
    fields = {
        "MessageId": message.message_id,
        "ReceiptHandle": message.receipt_handle,
        "MessageBodyMD5": md5,
        "MessageBody": message.body,
        "EnqueueTime": message.enqueue_ms,
        "FirstDequeueTime": message.first_dequeue_ms,
        "NextVisibleTime": int(message.visible_at * 1000),
        "DequeueCount": message.dequeue_count,
        "Priority": 8,
    }
    inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in fields.items())
    return f"<Message{attribute}>{inner}</Message>"


def _error(status: int, code: str, message: str) -> tuple[int, str]:
    return status, (
        f'<?xml version="1.0" encoding="UTF-8"?><Error xmlns="{NAMESPACE}">'
        f"<Code>{code}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{uuid.uuid4().hex[:24].upper()}</RequestId>"
        f"<HostId>http://127.0.0.1</HostId></Error>"
    )
