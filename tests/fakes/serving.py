"""The HTTP plumbing every fake provider shares: a threaded server on loopback whose handlers
register their connections with the fake, so ``stop()`` can end stalled ones."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class TrackedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a deep accept queue and a link back to the fake."""

    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], fake: Any, handler: type[BaseHTTPRequestHandler]
    ) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore connections closed under us (clients that timed out, stop())."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class TrackedHandler(BaseHTTPRequestHandler):
    """Registers its connection with the fake (``_track`` / ``_untrack``) and stays quiet."""

    protocol_version = "HTTP/1.1"
    server: TrackedServer

    def setup(self) -> None:
        """Register the connection so stop() can close it; no Nagle delay on small answers."""
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._track(self.connection, threading.current_thread())

    def finish(self) -> None:
        """Unregister the connection."""
        with contextlib.suppress(OSError):
            super().finish()
        self.server.fake._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""


def stop_serving(fake: Any, join_timeout: float = 5.0) -> None:
    """Stop ``fake``'s server, end stalled handlers, close connections and join every thread
    (the fake holds ``_server``, ``_stopping``, ``_lock``, ``_connections`` and ``_thread``)."""
    server, fake._server = fake._server, None
    if server is None:
        return
    fake._stopping.set()
    server.shutdown()
    server.server_close()
    with fake._lock:
        open_connections = dict(fake._connections)
    for connection in open_connections:
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
    for thread in {*open_connections.values(), fake._thread}:
        if thread is not None and thread is not threading.current_thread():
            thread.join(join_timeout)


class ServedFake:
    """A fake served on a free loopback port in a background thread: start, stop, endpoint and
    the connection tracking ``stop()`` needs. Subclasses set ``handler_class`` and
    ``thread_name``."""

    handler_class: type[BaseHTTPRequestHandler]
    thread_name = "fake-server"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._server: TrackedServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._stopping = threading.Event()

    def start(self) -> Any:
        """Bind a free port and serve in a background thread."""
        self._stopping.clear()
        self._server = TrackedServer(("127.0.0.1", 0), self, self.handler_class)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end stalled handlers, close connections, join threads."""
        stop_serving(self)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """http://127.0.0.1:<port> (the clients' endpoint override)."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _track(self, connection: socket.socket, thread: threading.Thread) -> None:
        with self._lock:
            self._connections[connection] = thread

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.pop(connection, None)
