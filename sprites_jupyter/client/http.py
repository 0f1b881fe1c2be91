"""One pooled HTTP session: base URL, Bearer auth, timeouts, retries, error mapping."""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import httpcore  # noqa: F401  (httpx imports it at the first Client: here, loading pays it)
import httpx

from .. import __version__
from .bulk_read import BulkReadTransport
from .errors import ConnectionFailed, HTTPStatusError, SpritesError, error_for_response

DEFAULT_BASE_URL = "https://api.sprites.dev"
LOCAL_HINT = "is the local Sprites server running? start it with `sprites-local serve`"
USER_AGENT = f"sprites-jupyter/{__version__}"

_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError,
              httpx.ReadError)
_GET_ATTEMPTS = 3
_BACKOFF = 0.2
_IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")

Relocate = Callable[[], tuple[str, str]]
"""Finds (or starts) the server again after it stopped answering: its new URL and token."""

Params = httpx.QueryParams | Mapping[str, Any] | list[tuple[str, Any]] | None


def segment(value: str) -> str:
    """Percent-encode one path segment (a sprite, service or checkpoint name)."""
    return quote(str(value), safe="")


def go_duration(seconds: float) -> str:
    """Seconds as a Go duration string: ``5s``, ``1.5s``, ``0s``."""
    if seconds != seconds or seconds < 0:
        raise ValueError(f"a duration must be zero or positive, not {seconds!r}")
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def _is_loopback(url: httpx.URL) -> bool:
    return url.host in ("127.0.0.1", "localhost", "::1") or url.host.startswith("127.")


@functools.cache
def _verifying_tls() -> ssl.SSLContext:
    """httpx's default TLS settings with its CA bundle, loaded once per process (a load
    costs ~20 ms, and every client would otherwise make its own)."""
    return httpx.create_ssl_context()


@functools.cache
def _plain_http_tls() -> ssl.SSLContext:
    """For plain HTTP to this machine: no CA bundle to load (and so it refuses any TLS)."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def tls_context(url: str) -> ssl.SSLContext:
    """The shared TLS settings for requests to ``url``."""
    parsed = httpx.URL(url)
    if parsed.scheme in ("http", "ws") and _is_loopback(parsed):
        return _plain_http_tls()
    return _verifying_tls()


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` points at this machine (a local server)."""
    try:
        return _is_loopback(httpx.URL(url))
    except httpx.InvalidURL:
        return False


class HttpSession:
    """The client's one ``httpx.Client`` and the rules every request follows.

    Plain requests get ``timeout`` seconds per phase; streams have no read timeout
    (events may be seconds apart). Only GETs are retried, and only on connection
    errors, with bounded backoff. With ``relocate`` (a server this process manages), a
    refused connection first finds or starts the server again, then the request is
    sent once more (a connection that broke mid-request: idempotent methods only).
    ``hint`` ends the message of a refused connection (say what to do, naming only
    settings that are set); ``on_wait`` is told when a WebSocket is slow to open.
    """

    def __init__(self, token: str, base_url: str = DEFAULT_BASE_URL, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, hint: str | None = None,
                 relocate: Relocate | None = None,
                 on_wait: Callable[[str], None] | None = None) -> None:
        if not token:
            raise SpritesError("no token: set SPRITES_TOKEN (or pass token=...)")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.on_wait = on_wait
        self._token = token
        self._relocate = relocate
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport, verify=tls_context(self.base_url),
        )
        self.is_local = _is_loopback(self._client.base_url)
        self._bulk: httpx.Client | None = None
        self.hint = hint if hint is not None else LOCAL_HINT if self.is_local else ""

    def __repr__(self) -> str:
        return f"<HttpSession {self.base_url}>"

    @property
    def auth_headers(self) -> dict[str, str]:
        """Headers for a WebSocket upgrade (same Bearer auth as HTTP)."""
        return {"Authorization": f"Bearer {self._token}"}

    def ws_url(self, path: str, params: Params = None) -> str:
        """The ``ws://``/``wss://`` form of ``base_url + path``."""
        base = "ws" + self.base_url.removeprefix("http")
        query = urlencode(list(params.items()) if isinstance(params, Mapping) else params or [],
                          doseq=True)
        return f"{base}{path}" + (f"?{query}" if query else "")

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***")

    def error(self, response: httpx.Response, *, what: str,
              conflict_words: tuple[str, ...] = ()) -> HTTPStatusError:
        """The exception for an error response (token blanked out)."""
        return error_for_response(response, what=what, secret=self._token,
                                  conflict_words=conflict_words)

    def connection_failed(self, exc: Exception, url: str) -> ConnectionFailed:
        """A one-line error for a network failure, with a hint for the local server."""
        if isinstance(exc, httpx.TimeoutException):
            reason = f"timed out ({type(exc).__name__})"
        else:
            reason = str(exc) or type(exc).__name__
        hint = f"; {self.hint}" if self.hint and isinstance(
            exc, httpx.ConnectError | ConnectionRefusedError) else ""
        return ConnectionFailed(self.redact(f"cannot reach {url}: {reason}{hint}"), url=url)

    def recover(self) -> bool:
        """Find or start the server again (``relocate``); whether a retry may now work.

        Raises :class:`SpritesError` with the launcher's message if it cannot be started.
        """
        if self._relocate is None:
            return False
        url, token = self._relocate()
        self.base_url = url.rstrip("/")
        self._token = token
        self._client.base_url = httpx.URL(self.base_url)
        self._client.headers["Authorization"] = f"Bearer {token}"
        if self._bulk is not None:
            self._bulk.close()
            self._bulk = None
        return True

    def _bulk_client(self) -> httpx.Client:
        """The client for large downloads: :mod:`.bulk_read` for plain HTTP to this
        machine, else the one client."""
        if not (self.is_local and self._client.base_url.scheme == "http"):
            return self._client
        if self._bulk is None:
            self._bulk = httpx.Client(
                base_url=self.base_url, headers=dict(self._client.headers),
                timeout=self._client.timeout, transport=BulkReadTransport())
        return self._bulk

    def request(self, method: str, path: str, *, what: str, params: Params = None,
                json: Any = None, content: bytes | Iterable[bytes] | None = None,
                headers: Mapping[str, str] | None = None, timeout: float | None = None,
                conflict_words: tuple[str, ...] = ()) -> httpx.Response:
        """Send one request; return the 2xx response or raise the mapped error."""
        response = self._send(method, path, params=params, json=json, content=content,
                              headers=headers, stream=False, timeout=timeout)
        if response.is_success:
            return response
        raise self.error(response, what=what, conflict_words=conflict_words)

    def stream(self, method: str, path: str, *, what: str, params: Params = None,
               json: Any = None, read_timeout: float | None = None,
               bulk: bool = False) -> httpx.Response:
        """Open a streaming response (caller closes it); errors are raised before streaming.
        ``bulk``: a large download (see :meth:`_bulk_client`)."""
        response = self._send(method, path, params=params, json=json, content=None,
                              headers=None, stream=True, timeout=None,
                              read_timeout=read_timeout, bulk=bulk)
        if response.is_success:
            return response
        try:
            response.read()
        except httpx.HTTPError:
            pass
        finally:
            response.close()
        raise self.error(response, what=what)

    def _send(self, method: str, path: str, *, params: Params, json: Any,
              content: bytes | Iterable[bytes] | None, headers: Mapping[str, str] | None,
              stream: bool, timeout: float | None,
              read_timeout: float | None = None, bulk: bool = False) -> httpx.Response:
        limits = httpx.Timeout(timeout or self.timeout, connect=min(self.timeout, 10.0))
        if stream:
            limits = httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0),
                                   read=read_timeout)
        attempts = _GET_ATTEMPTS if method == "GET" else 1
        attempt = 0
        recovered = False
        while True:
            client = self._bulk_client() if bulk else self._client
            request = client.build_request(method, path, params=params, json=json,
                                           content=content, headers=headers, timeout=limits)
            try:
                return client.send(request, stream=stream)
            except _RETRYABLE as exc:
                # Refused: nothing was sent, any request may go again; broken mid-way: an
                # idempotent one, or any whose server has gone (a new one answers now).
                if not recovered and self._relocate is not None:
                    recovered = True
                    gone = self.base_url
                    self.recover()
                    if (isinstance(exc, httpx.ConnectError) or method in _IDEMPOTENT
                            or self.base_url != gone):
                        continue
                attempt += 1
                if attempt >= attempts:
                    raise self.connection_failed(exc, str(request.url)) from None
                time.sleep(_BACKOFF * 3 ** (attempt - 1))
            except httpx.HTTPError as exc:
                raise self.connection_failed(exc, str(request.url)) from None

    def close(self) -> None:
        if self._bulk is not None:
            self._bulk.close()
        self._client.close()
