"""An httpx transport for large downloads from a local server: the standard library's
HTTP client, whose reads of a body go straight from the socket into 4 MiB chunks.

httpcore receives 64 KiB per system call and copies each piece three times on its way
out; for a file streamed from a server on this machine that, not the server, bounds
the transfer (200 MB: 0.7-1.1 s through httpcore, 0.3-0.45 s through ``http.client``
under the same load). Only plain HTTP to a loopback address uses it: no TLS, no proxy.
Its body also reads straight into a caller's memory (:class:`BodyReader`), so a pulled
array or ``bytes`` is filled by the socket itself, never copied from a chunk.
"""

from __future__ import annotations

import http.client
import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx

CHUNK = 4 << 20  # what one read of the body returns
BODY_EXTENSION = "sprites_jupyter.body"  # the response extension naming this transport's body


class BulkReadTransport(httpx.BaseTransport):
    """One connection per request, closed with its response (a download is long; a
    connect on loopback costs microseconds)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        connection = http.client.HTTPConnection(url.host, url.port or 80,
                                                timeout=timeouts.get("connect"))
        try:
            connection.connect()
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "timed out", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        try:
            if connection.sock is not None:
                connection.sock.settimeout(timeouts.get("read"))
            connection.request(request.method, url.raw_path.decode("ascii"),
                               body=request.read() or None,
                               headers=dict(request.headers.multi_items()))
            response = connection.getresponse()
        except TimeoutError as exc:
            connection.close()
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__,
                                            request=request) from None
        body = _Body(response, connection, request)
        return httpx.Response(response.status, headers=response.getheaders(), stream=body,
                              request=request, extensions={BODY_EXTENSION: body})


class _Body(httpx.SyncByteStream):
    def __init__(self, response: http.client.HTTPResponse,
                 connection: http.client.HTTPConnection, request: httpx.Request) -> None:
        self._response = response
        self._connection = connection
        self._request = request
        self._expected = response.length  # None: no Content-Length (chunked, or to EOF)
        self._received = 0

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self._reading(self._response.read, CHUNK):
            yield chunk

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the socket (at most what is left of the body); 0 at its end."""
        return len(buffer) and self._reading(self._response.readinto, buffer)

    def read_all(self) -> bytes:
        """The rest of the body as one ``bytes`` that the socket fills in place."""
        return self._reading(self._response.read)

    def _reading(self, read: Callable[..., Any], *args: Any) -> Any:
        try:
            got = read(*args)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=self._request) from None
        except http.client.IncompleteRead as exc:
            raise self._short(self._received + len(exc.partial)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__,
                                  request=self._request) from None
        count = got if isinstance(got, int) else len(got)
        self._received += count
        if not count and self._expected is not None and self._received < self._expected:
            raise self._short(self._received)
        return got

    def _short(self, received: int) -> httpx.ReadError:
        return httpx.ReadError(f"the server closed the connection after {received:,} of "
                               f"{self._expected:,} bytes", request=self._request)

    def close(self) -> None:
        self._response.close()
        self._connection.close()


class BodyReader(io.RawIOBase):
    """A streamed response's body as a readable binary file: from
    :class:`BulkReadTransport` the socket fills the caller's buffer in place; from any
    other transport the chunks httpx decodes are copied into it. ``broke`` turns an
    httpx error into the caller's exception. Closing it closes the response."""

    def __init__(self, response: httpx.Response,
                 broke: Callable[[httpx.HTTPError], Exception]) -> None:
        self.response = response
        self._broke = broke
        direct = response.extensions.get(BODY_EXTENSION)
        encoded = response.headers.get("content-encoding", "identity") != "identity"
        self._direct: _Body | None = None if encoded else direct
        self._chunks: Iterator[bytes] | None = None
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            if self._direct is not None:
                return self._direct.readinto(buffer)
            while not self._pending:
                if self._chunks is None:
                    self._chunks = self.response.iter_bytes()
                chunk = next(self._chunks, None)
                if chunk is None:
                    return 0
                self._pending = memoryview(chunk)
        except httpx.HTTPError as exc:
            raise self._broke(exc) from None
        count = min(len(buffer), len(self._pending))
        memoryview(buffer).cast("B")[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def readall(self) -> bytes:
        if self._direct is None:
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        try:
            return self._direct.read_all()
        except httpx.HTTPError as exc:
            raise self._broke(exc) from None

    def close(self) -> None:
        if not self.closed:
            self.response.close()
        super().close()
