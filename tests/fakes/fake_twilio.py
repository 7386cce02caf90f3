"""A fake Twilio Messages API on loopback HTTP, for tests and benchmarks.

    with FakeTwilio(account_sid="AC...", auth_token="secret") as fake:
        gateway = TwilioGateway("AC...", "secret", from_number="+1555", base_url=fake.base_url)

It speaks real HTTP (ThreadingHTTPServer in a background thread, HTTP/1.1 keep-alive), checks
Basic auth and the account SID in the path, answers like Twilio (JSON bodies, error codes,
paging), records every request, and injects faults on demand:

- ``fail_next(n, kind)`` queues ``n`` faults; ``set_fault_rate(rate, kinds, seed)`` draws them
  at random. Kinds: "429" (code 20429), "500" (nothing created), "500_created" (created, then
  500), "timeout" (stalls, nothing created), "timeout_created" (created, then stalls: the
  ambiguous-but-sent case), "drop" / "drop_created" (connection closed without an answer),
  "slow" (``slow_seconds`` extra, then success). By default faults hit only message creation
  (POST); pass ``methods=("POST", "GET")`` to also hit reads.
- ``set_number_error(to, code)``: 21610 opted out, 21211 invalid 'To', 21614 not a mobile
  number (HTTP 400 with Twilio's JSON error), or any other code.
- ``latency``: seconds added to every request (benchmarks).

Stalls wait on an event that ``stop()`` sets, and ``stop()`` shuts down every open connection
and joins every handler thread, so nothing is left hanging at the end of a test.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import json
import random
import re
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from twilio.request_validator import RequestValidator

from app.clock import utcnow
from app.sms.segments import count_segments
from tests.fakes.serving import TrackedHandler, TrackedServer, stop_serving

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "f" * 32
DEFAULT_AUTH_TOKEN = "fake-auth-token"
FAULT_KINDS: frozenset[str] = frozenset(
    {"429", "500", "500_created", "timeout", "timeout_created", "drop", "drop_created", "slow"}
)
CREATING_FAULTS: frozenset[str] = frozenset({"500_created", "timeout_created", "drop_created"})
ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21211: "Invalid 'To' Phone Number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable via SMS",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}
MAX_BODY_CHARS = 1600
MAX_PAGE_SIZE = 1000
MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
MESSAGE_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$"
)


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the fake received (recorded on arrival, before any fault)."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    time: datetime
    auth: tuple[str, str] | None
    fault: str | None = None


@dataclass
class FakeMessage:
    """A message the fake created, with the fields Twilio returns."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status: str
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None
    status_callback: str | None
    validity_period: str | None
    error_code: int | None = None
    num_segments: int = 1
    history: list[str] = field(default_factory=list)

    def to_json(self, *, status: str | None = None, sent: bool = True) -> dict[str, Any]:
        """The message as Twilio's JSON resource."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        date_sent = self.date_sent if sent else None
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": _rfc2822(self.date_created),
            "date_sent": _rfc2822(date_sent) if date_sent else None,
            "date_updated": _rfc2822(self.date_updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": ERROR_MESSAGES.get(self.error_code) if self.error_code else None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": status or self.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }


def _rfc2822(moment: datetime) -> str:
    """Format like Twilio: 'Thu, 30 Jul 2015 20:12:31 +0000'."""
    return email.utils.format_datetime(moment.astimezone(UTC)).replace("-0000", "+0000")


def _utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return utcnow()


def _parse_filter_time(value: str) -> tuple[datetime | None, bool]:
    """Parse a DateSent filter value; return (moment, date_only)."""
    value = value.strip().lstrip("<>=")
    for fmt, date_only in (("%Y-%m-%dT%H:%M:%SZ", False), ("%Y-%m-%d", True)):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC), date_only
        except ValueError:
            continue
    return None, False


def error_body(code: int, status: int, message: str | None = None) -> dict[str, Any]:
    """Twilio's JSON error document."""
    return {
        "code": code,
        "message": message or ERROR_MESSAGES.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _FaultPlan:
    """Queued and random faults; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[tuple[str, frozenset[str]]] = deque()
        self._rate = 0.0
        self._kinds: tuple[str, ...] = ()
        self._rate_methods: frozenset[str] = frozenset({"POST"})
        self._random = random.Random()

    def queue(self, count: int, kind: str, methods: Iterable[str]) -> None:
        """Add ``count`` faults of ``kind`` for the next matching requests."""
        _check_kind(kind)
        with self._lock:
            self._queue.extend([(kind, frozenset(m.upper() for m in methods))] * count)

    def set_rate(
        self, rate: float, kinds: Iterable[str], seed: int | None, methods: Iterable[str]
    ) -> None:
        """Inject a fault of a random kind in ``rate`` of the matching requests."""
        kinds = tuple(kinds)
        for kind in kinds:
            _check_kind(kind)
        if not 0.0 <= rate <= 1.0 or (rate and not kinds):
            raise ValueError("rate must be in [0, 1] and kinds not empty")
        with self._lock:
            self._rate, self._kinds = rate, kinds
            self._rate_methods = frozenset(m.upper() for m in methods)
            self._random = random.Random(seed)

    def clear(self) -> None:
        """Remove every planned fault."""
        with self._lock:
            self._queue.clear()
            self._rate, self._kinds = 0.0, ()

    def draw(self, method: str) -> str | None:
        """The fault for this request, if any."""
        with self._lock:
            for index, (kind, methods) in enumerate(self._queue):
                if method in methods:
                    del self._queue[index]
                    return kind
            rate_applies = self._rate and method in self._rate_methods
            if rate_applies and self._random.random() < self._rate:
                return self._random.choice(self._kinds)
        return None


def _check_kind(kind: str) -> None:
    """Reject an unknown fault kind."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")


class _Handler(TrackedHandler):
    """Routes one HTTP connection's requests to the fake."""

    def do_GET(self) -> None:
        """Handle a GET."""
        self.server.fake._handle(self, "GET")

    def do_POST(self) -> None:
        """Handle a POST."""
        self.server.fake._handle(self, "POST")

    def do_DELETE(self) -> None:
        """Handle a DELETE (not supported: 405)."""
        self.server.fake._handle(self, "DELETE")

    def read_form(self) -> dict[str, str]:
        """Read and decode the urlencoded body (always consumed, keeps keep-alive in sync)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        pairs = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        return {key: values[-1] for key, values in pairs.items()}

    def send_json(self, status: int, payload: Mapping[str, Any]) -> None:
        """Write a JSON answer."""
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class FakeTwilio:
    """A fake Twilio Messages API served on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        slow_seconds: float = 0.3,
        stall_seconds: float = 30.0,
        queue_messages: bool = False,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.latency = latency
        self.slow_seconds = slow_seconds
        self.stall_seconds = stall_seconds
        self.queue_messages = queue_messages
        self.clock = clock
        self._address = (host, port)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._messages: list[FakeMessage] = []
        self._by_sid: dict[str, FakeMessage] = {}
        self._number_errors: dict[str, int] = {}
        self._faults = _FaultPlan()
        self._stopping = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._server: TrackedServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        """Bind and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("FakeTwilio already started")
        self._stopping.clear()
        self._server = TrackedServer(self._address, self, _Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-twilio",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, join_timeout: float = 5.0) -> None:
        """Stop serving, end stalled handlers, close connections and join every thread."""
        stop_serving(self, join_timeout)

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the fake listens on."""
        if self._server is None:
            raise RuntimeError("FakeTwilio is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """E.g. http://127.0.0.1:43817 (pass it as TwilioGateway(base_url=...))."""
        return f"http://{self._address[0]}:{self.port}"

    @property
    def messages_url(self) -> str:
        """The absolute URL of this account's Messages list resource."""
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    def _track(self, connection: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self._connections[connection] = thread
            stopping = self._stopping.is_set()
        if stopping:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.pop(connection, None)

    # -- programming the fake ------------------------------------------------------------

    def fail_next(
        self, n: int = 1, kind: str = "500", *, methods: Iterable[str] = ("POST",)
    ) -> None:
        """Make the next ``n`` matching requests fail with ``kind``."""
        self._faults.queue(n, kind, methods)

    def set_fault_rate(
        self,
        rate: float,
        kinds: Iterable[str] = ("500", "429", "timeout"),
        seed: int | None = None,
        *,
        methods: Iterable[str] = ("POST",),
    ) -> None:
        """Fail a random ``rate`` of matching requests with one of ``kinds``."""
        self._faults.set_rate(rate, kinds, seed, methods)

    def clear_faults(self) -> None:
        """Remove every planned fault (number errors and latency stay)."""
        self._faults.clear()

    def set_number_error(self, to: str, code: int | None) -> None:
        """Answer every send to ``to`` with HTTP 400 and Twilio error ``code`` (None clears)."""
        with self._lock:
            if code is None:
                self._number_errors.pop(to, None)
            else:
                self._number_errors[to] = code

    # -- what happened -------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def messages(self) -> list[FakeMessage]:
        """A copy of every message created, in creation order."""
        with self._lock:
            return list(self._messages)

    def message(self, sid: str) -> FakeMessage | None:
        """The message with this SID, if any."""
        with self._lock:
            return self._by_sid.get(sid)

    def count_for(self, to: str) -> int:
        """How many messages were created for ``to``."""
        with self._lock:
            return sum(1 for m in self._messages if m.to == to)

    def bodies_for(self, to: str) -> list[str]:
        """The bodies created for ``to``, in creation order."""
        with self._lock:
            return [m.body for m in self._messages if m.to == to]

    def create_requests(self) -> list[RecordedRequest]:
        """The POSTs to the Messages list resource (every attempt to send)."""
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("Messages.json")]

    def reset(self) -> None:
        """Forget requests, messages, faults and number errors."""
        self._faults.clear()
        with self._lock:
            self._requests.clear()
            self._messages.clear()
            self._by_sid.clear()
            self._number_errors.clear()

    # -- status callbacks ----------------------------------------------------------------

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """Twilio's X-Twilio-Signature for a POST of ``params`` to ``url``."""
        return RequestValidator(self.auth_token).compute_signature(url, params)

    def status_callback_form(
        self, sid: str, status: str, error_code: int | None = None
    ) -> dict[str, str]:
        """The form Twilio posts to a StatusCallback URL for message ``sid``."""
        message = self.message(sid)
        form = {
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "AccountSid": self.account_sid,
            "To": message.to if message else "",
            "From": (message.from_ or "") if message else "",
            "ApiVersion": API_VERSION,
        }
        if message and message.messaging_service_sid:
            form["MessagingServiceSid"] = message.messaging_service_sid
        if error_code is not None:
            form["ErrorCode"] = str(error_code)
        return form

    def post_status_callback(
        self,
        url: str | None,
        sid: str,
        status: str,
        error_code: int | None = None,
        *,
        timeout: float = 10.0,
    ) -> requests.Response:
        """POST a signed status callback for ``sid`` (url None: the message's StatusCallback).

        The stored message takes the new status too.
        """
        message = self.message(sid)
        target = url or (message.status_callback if message else None)
        if not target:
            raise ValueError(f"no callback URL for {sid}")
        form = self.status_callback_form(sid, status, error_code)
        self._update_status(sid, status, error_code)
        with requests.Session() as session:
            session.trust_env = False
            return session.post(
                target,
                data=form,
                headers={"X-Twilio-Signature": self.sign(target, form)},
                timeout=timeout,
            )

    def _update_status(self, sid: str, status: str, error_code: int | None) -> None:
        with self._lock:
            message = self._by_sid.get(sid)
            if message is not None:
                message.status, message.error_code = status, error_code
                message.date_updated = self.clock()
                message.history.append(status)
                if status in ("sent", "delivered") and message.date_sent is None:
                    message.date_sent = message.date_updated

    # -- request handling ----------------------------------------------------------------

    def _handle(self, handler: _Handler, method: str) -> None:
        """Record, authenticate, inject faults, then route one request."""
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        form = handler.read_form() if method == "POST" else {}
        auth = self._basic_auth(handler.headers.get("Authorization"))
        authorized = auth == (self.account_sid, self.auth_token)
        fault = None
        if authorized and self._is_api_path(parts.path):
            fault = self._faults.draw(method)
        record = RecordedRequest(method, parts.path, query, form, _utc_now(), auth, fault)
        with self._lock:
            self._requests.append(record)
        if self.latency and self._stopping.wait(self.latency):
            return self._close(handler)
        if not authorized:
            return handler.send_json(401, error_body(20003, 401))
        try:
            self._route(handler, method, parts.path, query, form, fault)
        except (ValueError, KeyError) as exc:
            handler.send_json(400, error_body(20001, 400, f"Bad request: {exc}"))

    @staticmethod
    def _is_api_path(path: str) -> bool:
        return bool(MESSAGES_PATH.match(path) or MESSAGE_PATH.match(path))

    @staticmethod
    def _basic_auth(header: str | None) -> tuple[str, str] | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, password

    def _route(
        self,
        handler: _Handler,
        method: str,
        path: str,
        query: dict[str, str],
        form: dict[str, str],
        fault: str | None,
    ) -> None:
        list_match, item_match = MESSAGES_PATH.match(path), MESSAGE_PATH.match(path)
        match = list_match or item_match
        if match is None:
            return handler.send_json(404, error_body(20404, 404))
        if match["account"] != self.account_sid:
            return handler.send_json(404, error_body(20404, 404))
        if list_match and method == "POST":
            return self._create(handler, form, fault)
        if method != "GET":
            return handler.send_json(405, error_body(20004, 405, "Method not allowed"))
        if fault and self._apply_read_fault(handler, fault):
            return None
        if list_match:
            return self._list(handler, query)
        return self._fetch(handler, item_match["sid"])

    # faults

    def _stall(self) -> bool:
        """Wait ``stall_seconds`` (ended early by stop()); True when stopping."""
        return self._stopping.wait(self.stall_seconds)

    @staticmethod
    def _close(handler: _Handler) -> None:
        """Drop the connection without answering."""
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)

    def _apply_read_fault(self, handler: _Handler, fault: str) -> bool:
        """Apply a fault to a GET; True when the request was answered (or dropped)."""
        base = fault.removesuffix("_created")
        if base == "slow":
            self._stopping.wait(self.slow_seconds)
            return False
        if base == "429":
            handler.send_json(429, error_body(20429, 429))
        elif base == "500":
            handler.send_json(500, error_body(20500, 500))
        elif base == "timeout":
            if not self._stall():
                handler.send_json(500, error_body(20500, 500))
            else:
                self._close(handler)
        elif base == "drop":
            self._close(handler)
        return True

    def _create(self, handler: _Handler, form: dict[str, str], fault: str | None) -> None:
        """POST Messages.json, with the planned fault applied."""
        if fault == "slow":
            self._stopping.wait(self.slow_seconds)
            fault = None
        if fault == "429":
            return handler.send_json(429, error_body(20429, 429))
        if fault in ("500", "timeout", "drop"):
            return self._fail_without_creating(handler, fault)
        invalid = self._validate(form)
        if invalid is not None:
            return handler.send_json(400, error_body(invalid, 400))
        message = self._store(form)
        payload = message.to_json(
            status="accepted" if message.messaging_service_sid else "queued", sent=False
        )
        if fault == "500_created":
            return handler.send_json(500, error_body(20500, 500))
        if fault == "drop_created":
            return self._close(handler)
        if fault == "timeout_created" and self._stall():
            return self._close(handler)
        with contextlib.suppress(OSError):
            handler.send_json(201, payload)

    def _fail_without_creating(self, handler: _Handler, fault: str) -> None:
        if fault == "500":
            return handler.send_json(500, error_body(20500, 500))
        if fault == "drop" or self._stall():
            return self._close(handler)
        with contextlib.suppress(OSError):
            handler.send_json(500, error_body(20500, 500))

    def _validate(self, form: dict[str, str]) -> int | None:
        """The Twilio error code for an invalid create request, or None."""
        if not form.get("To"):
            return 21604
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return 21603
        if not form.get("Body"):
            return 21602
        if len(form["Body"]) > MAX_BODY_CHARS:
            return 21617
        with self._lock:
            return self._number_errors.get(form["To"])

    def _store(self, form: dict[str, str]) -> FakeMessage:
        """Create and remember a message."""
        now = self.clock()
        queued = "accepted" if form.get("MessagingServiceSid") else "queued"
        message = FakeMessage(
            sid="SM" + uuid.uuid4().hex,
            account_sid=self.account_sid,
            to=form["To"],
            from_=form.get("From") or None,
            messaging_service_sid=form.get("MessagingServiceSid") or None,
            body=form["Body"],
            status=queued if self.queue_messages else "sent",
            date_created=now,
            date_updated=now,
            date_sent=None if self.queue_messages else now,
            status_callback=form.get("StatusCallback") or None,
            validity_period=form.get("ValidityPeriod") or None,
            num_segments=count_segments(form["Body"]).segments,
        )
        message.history.append(message.status)
        with self._lock:
            self._messages.append(message)
            self._by_sid[message.sid] = message
        return message

    # reads

    def _fetch(self, handler: _Handler, sid: str) -> None:
        message = self.message(sid)
        if message is None:
            return handler.send_json(404, error_body(20404, 404))
        with self._lock:
            payload = message.to_json()
        handler.send_json(200, payload)

    def _list(self, handler: _Handler, query: dict[str, str]) -> None:
        """GET Messages.json with To / From / DateSent filters, newest first, paged."""
        with self._lock:
            candidates = list(reversed(self._messages))
            selected = [m.to_json() for m in candidates if self._matches(m, query)]
        page_size = max(1, min(int(query.get("PageSize") or 50), MAX_PAGE_SIZE))
        page = max(0, int(query.get("Page") or 0))
        start = page * page_size
        chunk = selected[start : start + page_size]
        handler.send_json(200, self._page_document(query, chunk, page, page_size, len(selected)))

    def _page_document(
        self, query: dict[str, str], chunk: list[dict[str, Any]], page: int, size: int, total: int
    ) -> dict[str, Any]:
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        filters = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}

        def uri(number: int) -> str:
            return base + "?" + urlencode({**filters, "PageSize": size, "Page": number})

        has_next = (page + 1) * size < total
        return {
            "messages": chunk,
            "page": page,
            "page_size": size,
            "start": page * size,
            "end": page * size + max(len(chunk) - 1, 0),
            "uri": uri(page),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1) if has_next else None,
            "previous_page_uri": uri(page - 1) if page > 0 else None,
        }

    @staticmethod
    def _matches(message: FakeMessage, query: dict[str, str]) -> bool:
        """Twilio's list filters: To, From, DateSent, DateSent< (<=), DateSent> (>=)."""
        if "To" in query and message.to != query["To"]:
            return False
        if "From" in query and message.from_ != query["From"]:
            return False
        for key, compare in (
            ("DateSent", lambda sent, bound: sent == bound),
            ("DateSent>", lambda sent, bound: sent >= bound),
            ("DateSent<", lambda sent, bound: sent <= bound),
        ):
            if key not in query:
                continue
            bound, date_only = _parse_filter_time(query[key])
            if bound is None or message.date_sent is None:
                return False
            sent = message.date_sent.replace(microsecond=0)
            if date_only:
                sent, bound = sent.replace(hour=0, minute=0, second=0), bound
            if not compare(sent, bound):
                return False
        return True


def main(argv: list[str] | None = None) -> None:
    """Run the fake in the foreground: python -m tests.fakes.fake_twilio --port 8099."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    fake = FakeTwilio(args.account_sid, args.auth_token, port=args.port, latency=args.latency)
    if args.fault_rate:
        fake.set_fault_rate(args.fault_rate, seed=args.seed)
    with fake:
        print(f"fake Twilio on {fake.base_url} (account {fake.account_sid}); Ctrl-C stops")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
