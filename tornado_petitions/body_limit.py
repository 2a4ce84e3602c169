"""Bodies over the size limit: the JSON 413 for any size, as nginx answers ``client_max_body_size``.

Tornado's own ``max_body_size`` closes the connection without a usable answer
(a bare 400, then a reset while the client is still sending).  Here the HTTP
server wraps every request in ``BodyLimit``, which decides before the
application sees the request: from ``Content-Length`` before any of the body
is read, and for a chunked body as soon as it passes the limit.  The 413 is
written at once; what the client goes on sending is discarded, never
buffered, for at most ``DRAIN_SECONDS``, so that a client that only reads
after it has sent everything (``requests``, ``httpx``) still gets the answer
instead of a reset; then the connection is closed (``Connection: close``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Any

import tornado.httpserver
from tornado import httputil
from tornado.http1connection import HTTP1Connection, is_transfer_encoding_chunked

from . import wire
from .errors import ApiError

access_log = logging.getLogger("tornado_petitions.access")

# How long a refused body is read and thrown away so the client sees the 413 (seconds).
DRAIN_SECONDS = 10.0
# Chunked bodies are counted here, not by Tornado (whose limit answers with a bare 400).
_UNCOUNTED = 2**62


class BodyLimit(httputil.HTTPMessageDelegate):
    """One request's guard: passes it on to ``delegate`` unless its body is over ``limit`` bytes."""

    def __init__(
        self,
        delegate: httputil.HTTPMessageDelegate,
        connection: HTTP1Connection,
        limit: int,
        metrics: Any = None,
    ) -> None:
        self.delegate = delegate
        self.connection = connection
        self.limit = limit
        self.metrics = metrics
        self.received = 0
        self.refused = False
        self.started = time.monotonic()
        self.start_line: httputil.RequestStartLine | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self.start_line = start_line
        length = _content_length(headers)
        if length is not None and length > self.limit:
            # Let Tornado read (and this delegate discard) the declared body, for DRAIN_SECONDS at most.
            self.connection.set_max_body_size(length)
            self.connection.set_body_timeout(DRAIN_SECONDS)
            # With "Expect: 100-continue" the client waits: answer and close before it sends anything.
            self._refuse(close_now=headers.get("Expect", "").lower() == "100-continue")
            return None
        if is_transfer_encoding_chunked(headers):
            self.connection.set_max_body_size(_UNCOUNTED)
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self.refused:
            return None  # discarded
        self.received += len(chunk)
        if self.received > self.limit:
            self.delegate.on_connection_close()  # the application forgets what it was given
            self._refuse(close_now=False)
            return None
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        if not self.refused:
            self.delegate.finish()
            return
        # The whole refused body has been read and discarded: keep the Connection: close promise.
        self.connection.finish()
        self.connection.close()

    def on_connection_close(self) -> None:
        if not self.refused:
            self.delegate.on_connection_close()

    def _refuse(self, close_now: bool) -> None:
        """Write the JSON 413 now; with ``close_now``, close once it is written."""
        self.refused = True
        error = ApiError(
            413,
            "payload_too_large",
            f"the body is larger than {self.limit} bytes: send at most {self.limit} bytes",
        )
        body = wire.dumps(error.body()).encode()
        headers = httputil.HTTPHeaders(
            {
                "Content-Type": "application/json; charset=UTF-8",
                "Content-Length": str(len(body)),
                "Connection": "close",
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Date": httputil.format_timestamp(time.time()),
            }
        )
        assert self.start_line is not None
        start_line = httputil.ResponseStartLine("HTTP/1.1", 413, "Payload Too Large")
        self.connection.write_headers(start_line, headers, None if self.start_line.method == "HEAD" else body)
        if close_now:
            self.connection.finish()  # Tornado closes after the write: nothing of the body was sent
        self._log()

    def _log(self) -> None:
        """The access line and request metrics, as the application writes them for its own answers."""
        assert self.start_line is not None
        seconds = time.monotonic() - self.started
        method, path = self.start_line.method, self.start_line.path.split("?", 1)[0]
        context = getattr(self.connection, "context", None)
        address = getattr(context, "remote_ip", "-")
        access_log.info("%s %s 413 %.1fms user=- ip=%s", method, path, seconds * 1000, address)
        if self.metrics is not None:
            self.metrics.request_done("oversized_body", method, 413, seconds)


def _content_length(headers: httputil.HTTPHeaders) -> int | None:
    """The declared body length; None when absent or malformed (Tornado answers those with 400)."""
    value = headers.get("Content-Length")
    if value is None:
        return None
    first = value.split(",", 1)[0].strip()
    return int(first) if first.isascii() and first.isdigit() else None


class LimitedHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server with every request behind a ``BodyLimit`` of ``body_limit`` bytes."""

    def initialize(self, *args: Any, body_limit: int, metrics: Any = None, **kwargs: Any) -> None:
        self.body_limit = body_limit
        self.body_metrics = metrics
        super().initialize(*args, max_body_size=body_limit, **kwargs)

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> BodyLimit:
        delegate = super().start_request(server_conn, request_conn)
        assert isinstance(request_conn, HTTP1Connection)
        return BodyLimit(delegate, request_conn, self.body_limit, self.body_metrics)
