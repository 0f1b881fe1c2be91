"""Opening a WebSocket with the client's auth, timeouts and error mapping."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidStatus

from .errors import ProtocolError, one_line
from .http import USER_AGENT, HttpSession, tls_context
from .notices import notices
from .ws_connection import WebSocket, connect

OPEN_TIMEOUT = 60.0
"""At least this long for the upgrade: a cold sprite wakes first (10 s was too short;
sprites-go allows 30 s)."""
WAKING_NOTICE_AFTER = 3.0


def open_socket(session: HttpSession, path: str, params: list[tuple[str, str]],
                what: str) -> WebSocket:
    """Upgrade to a WebSocket; a refused upgrade raises the same errors as HTTP.

    While the upgrade takes longer than a few seconds, ``session.on_wait`` is told that
    the sprite is waking. A refused connection to a server this client manages finds or
    starts it again, then tries once more (nothing was sent), as does one reset by a
    server that has gone since.
    """
    try:
        return _open(session, path, params, what)
    except ConnectionError as exc:
        gone = session.base_url
        if not session.recover() or (not isinstance(exc, ConnectionRefusedError)
                                     and session.base_url == gone):
            raise _unreachable(session, path, exc) from None
    try:
        return _open(session, path, params, what)
    except ConnectionError as exc:
        raise _unreachable(session, path, exc) from None


@contextlib.contextmanager
def waking_notice(session: HttpSession, what: str) -> Iterator[None]:
    """While the block takes longer than a few seconds, ``session.on_wait`` is told that
    the sprite is waking (the wait for an upgrade, or for a command to start)."""
    notice = None
    if (on_wait := session.on_wait) is not None:
        text = f"{one_line(what, 100)}: waking the sprite…"
        notice = notices.after(WAKING_NOTICE_AFTER, lambda: on_wait(text))
    try:
        yield
    finally:
        if notice is not None:
            notice.cancel()


def _open(session: HttpSession, path: str, params: list[tuple[str, str]],
          what: str) -> WebSocket:
    url = session.ws_url(path, params)
    with waking_notice(session, what):
        return _connect(session, url, what)


def _connect(session: HttpSession, url: str, what: str) -> WebSocket:
    try:
        # No proxy lookup for the local server; the shared TLS settings for wss://. No
        # keepalive pings (and their thread) on loopback: nothing between us can drop an
        # idle connection, and a server that dies resets it.
        return connect(url, headers=list(session.auth_headers.items()), user_agent=USER_AGENT,
                       tls=tls_context(url) if url.startswith("wss:") else None,
                       proxy=None if session.is_local else _proxy_for(url),
                       open_timeout=max(session.timeout, OPEN_TIMEOUT),
                       ping_interval=None if session.is_local else 15, ping_timeout=45,
                       close_timeout=2, max_size=16 * 1024 * 1024, max_queue=64)
    except InvalidStatus as exc:
        answer = exc.response
        kept = {k: v for k, v in answer.headers.raw_items()
                if k.lower() in ("content-type", "retry-after")}
        response = httpx.Response(answer.status_code, headers=kept,
                                  content=bytes(answer.body or b""))
        raise session.error(response, what=what) from None
    except InvalidMessage as exc:  # the peer closed before answering: a reset
        raise ConnectionResetError(f"the connection closed during the handshake ({exc})"
                                   ) from None
    except InvalidHandshake as exc:
        raise ProtocolError(f"{what}: the WebSocket handshake failed ({exc})") from None
    except ConnectionError:
        raise
    except ConnectionClosed as exc:  # the peer went away mid-handshake: a reset
        raise ConnectionResetError(f"the connection closed during the handshake ({exc})"
                                   ) from None
    except (OSError, TimeoutError) as exc:
        raise session.connection_failed(exc, url.split("?", 1)[0]) from None


def _unreachable(session: HttpSession, path: str, exc: ConnectionError) -> Exception:
    failure = httpx.ConnectError(str(exc)) if isinstance(exc, ConnectionRefusedError) else exc
    return session.connection_failed(failure, session.base_url + path)


def _proxy_for(url: str) -> tuple[str, int] | None:
    """The HTTP proxy the environment names for ``url`` (``https_proxy``, ``no_proxy``…,
    as httpx reads them), or None."""
    parts = urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxy = urllib.request.getproxies().get("https" if parts.scheme == "wss" else "http")
    if not proxy:
        return None
    where = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if where.scheme != "http" or not where.hostname:
        raise ProtocolError(f"the proxy {proxy} is not an http:// proxy, the only kind "
                            "this client tunnels WebSockets through: set no_proxy for "
                            f"{parts.hostname}, or an http:// proxy")
    return where.hostname, where.port or 80
