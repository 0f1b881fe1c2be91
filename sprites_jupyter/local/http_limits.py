"""Limits on a request's head, answered at once: 414 for a long URL, 431 for big headers.

uvicorn hands a WebSocket upgrade to the ``websockets`` parser, which drops (without an
answer) any request line or header line over 8 KiB; plain HTTP requests had no limit
on headers at all. This protocol checks the head as ``httptools`` parses it, so both
get a clear JSON error before any of it reaches the app, and the connection is closed.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_URL = 8000
"""Bytes of request target; with the method and version it stays under websockets' 8 KiB."""
MAX_HEADER_LINE = 8000
MAX_HEADERS = 100
MAX_HEAD = 64 * 1024


class _Refused(Exception):
    """Raised inside a parser callback: httptools turns it into a parser error."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :data:`MAX_URL` and header limits."""

    _refusal: tuple[int, str, str] | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = 0
        self._refusal = None

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL:
            self._refuse(414, "uri_too_long", f"request URL too long (over {MAX_URL} bytes): "
                         "send large values in the request body, or on stdin for exec")

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_size += len(name) + len(value) + 4
        if (len(name) + len(value) + 2 > MAX_HEADER_LINE or len(self.headers) > MAX_HEADERS
                or self._head_size > MAX_HEAD):
            self._refuse(431, "request_header_fields_too_large",
                         f"request headers too large: at most {MAX_HEADERS} headers of "
                         f"{MAX_HEADER_LINE} bytes each, {MAX_HEAD // 1024} KiB in all")

    def _refuse(self, status: int, code: str, message: str) -> None:
        self._refusal = (status, code, message)
        raise _Refused(message)

    def send_400_response(self, msg: str) -> None:
        """The parser failed: answer a refused head with its own status, else as uvicorn does."""
        if self._refusal is None:
            super().send_400_response(msg)
            return
        status, code, message = self._refusal
        body = json.dumps({"error": code, "message": message}).encode()
        reason = {414: b"URI Too Long", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (status, reason, len(body), body))
        self.transport.close()
