"""Chunked request bodies (no Content-Length) are bounded like any other body.

werkzeug silently truncates a chunked body at MAX_CONTENT_LENGTH, so a huge chunked POST would be
parsed as a cut-down form. This WSGI middleware reads at most MAX_CONTENT_LENGTH + 1 bytes of such
a body and states its length: werkzeug then answers 413 (through the app's error pages) exactly as
for an oversized body that declared its Content-Length, and a body within the limit is read as
usual. (The Transfer-Encoding header is dropped with it: werkzeug ignores Content-Length on a
chunked request.)
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BoundedChunkedBody:
    """Wrap a WSGI app: buffer a chunked body up to the limit (returned by ``limit()``) + 1."""

    def __init__(self, app: WSGIApp, limit: Callable[[], int | None]) -> None:
        self._app = app
        self._limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Give a chunked body a Content-Length (limit + 1 when it is too large), then call on."""
        limit = self._limit()
        if limit is not None and is_unsized_body(environ):
            data = environ["wsgi.input"].read(limit + 1)
            environ["wsgi.input"] = io.BytesIO(data)
            environ["CONTENT_LENGTH"] = str(len(data))
            environ.pop(
                "HTTP_TRANSFER_ENCODING", None
            )  # no longer chunked: werkzeug reads the length
        return self._app(environ, start_response)


def is_unsized_body(environ: dict[str, Any]) -> bool:
    """True when the server passes a body of unknown length (chunked) through."""
    return not environ.get("CONTENT_LENGTH") and bool(environ.get("wsgi.input_terminated"))
