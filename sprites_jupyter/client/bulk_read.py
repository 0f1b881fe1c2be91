"""An httpx transport for large downloads from a local server: the standard library's
HTTP client, whose reads of a body go straight from the socket into 4 MiB chunks.

httpcore receives 64 KiB per system call and copies each piece three times on its way
out; for a file streamed from a server on this machine that, not the server, bounds
the transfer (200 MB: 0.7-1.1 s through httpcore, 0.3-0.45 s through ``http.client``
under the same load). Only plain HTTP to a loopback address uses it: no TLS, no proxy.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import httpx

CHUNK = 4 << 20  # what one read of the body returns


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
        return httpx.Response(response.status, headers=response.getheaders(),
                              stream=_Body(response, connection, request), request=request)


class _Body(httpx.SyncByteStream):
    def __init__(self, response: http.client.HTTPResponse,
                 connection: http.client.HTTPConnection, request: httpx.Request) -> None:
        self._response = response
        self._connection = connection
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        expected = self._response.length  # None: no Content-Length (chunked, or to EOF)
        received = 0
        try:
            while chunk := self._response.read(CHUNK):
                received += len(chunk)
                yield chunk
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=self._request) from None
        except (OSError, http.client.HTTPException) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__,
                                  request=self._request) from None
        if expected is not None and received < expected:
            raise httpx.ReadError(f"the server closed the connection after {received:,} of "
                                  f"{expected:,} bytes", request=self._request)

    def close(self) -> None:
        self._response.close()
        self._connection.close()
