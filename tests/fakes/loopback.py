"""A small threaded HTTP server on 127.0.0.1 that the domestic-provider fakes build on.

It tracks every connection so ``stop()`` ends stalled handlers, and queues faults:
"500" (nothing created, HTTP 500), "500_created" (created, then HTTP 500), "timeout"
(stalls, nothing created), "timeout_created" (created, then stalls), "drop" /
"drop_created" (connection closed without an answer).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections import deque
from collections.abc import Mapping
from typing import Any

import requests

from tests.fakes.serving import ServedFake, TrackedHandler

FAULT_KINDS = frozenset(
    {"500", "500_created", "timeout", "timeout_created", "drop", "drop_created"}
)
CREATING = frozenset({"500_created", "timeout_created", "drop_created"})


class IncompleteRequest(Exception):
    """The client closed the connection before sending the whole body."""


class _Handler(TrackedHandler):
    """Routes every request to the fake's ``_dispatch``."""

    def do_POST(self) -> None:
        """Handle a POST."""
        self.server.fake._dispatch(self)

    do_GET = do_POST

    def body(self) -> bytes:
        """The request body (always consumed); IncompleteRequest when the client went away first."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            raise IncompleteRequest(f"{len(raw)} of {length} bytes")
        return raw

    def send_json(self, status: int, payload: Mapping[str, Any] | list[Any]) -> None:
        """Write a JSON answer."""
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", self.server.fake.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class LoopbackFake(ServedFake):
    """Serving, stopping, fault queue; subclasses implement ``handle(handler)``."""

    thread_name = "fake-provider"
    handler_class = _Handler
    content_type = "application/json; charset=utf-8"

    def __init__(self) -> None:
        super().__init__()
        self._faults: deque[str] = deque()
        self.latency = 0.0
        self._in_flight = 0  # requests being answered now (in their latency wait or handled)

    def fail_next(self, n: int = 1, kind: str = "500") -> None:
        """Make the next ``n`` sends fail with ``kind`` (see the module docstring)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults.extend([kind] * n)

    def draw_fault(self) -> str | None:
        """The next queued fault, if any."""
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def apply_fault(self, handler: _Handler, fault: str) -> None:
        """Answer a request as ``fault`` says (after the send was, or was not, created)."""
        if fault.startswith("timeout"):
            self._stopping.wait(30)
            return
        if fault.startswith("drop"):
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            handler.close_connection = True
            return
        handler.send_json(500, {"error": "internal"})

    @property
    def in_flight(self) -> int:
        """How many requests the fake is answering now (a test can kill a client mid-request)."""
        with self._lock:
            return self._in_flight

    def _dispatch(self, handler: _Handler) -> None:
        with self._lock:
            self._in_flight += 1
        try:
            if self.latency:
                self._stopping.wait(self.latency)
            self.handle(handler)
        except IncompleteRequest:
            # A client killed mid-request: like the providers, nothing is done, nothing counted.
            handler.close_connection = True
        finally:
            with self._lock:
                self._in_flight -= 1

    def handle(self, handler: _Handler) -> None:  # pragma: no cover - abstract
        """Answer one request."""
        raise NotImplementedError

    @staticmethod
    def post_json(url: str, payload: Any) -> requests.Response:
        """POST JSON to a callback URL (what the provider's push does)."""
        return requests.post(url, json=payload, timeout=10)
