"""Opening a WebSocket with the client's auth, timeouts and error mapping."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .errors import ProtocolError, one_line
from .http import USER_AGENT, HttpSession, tls_context
from .notices import notices
from .ws_connection import QueuedWriteConnection

OPEN_TIMEOUT = 60.0
"""At least this long for the upgrade: a cold sprite wakes first (10 s was too short;
sprites-go allows 30 s)."""
WAKING_NOTICE_AFTER = 3.0


def open_socket(session: HttpSession, path: str, params: Sequence[tuple[str, str]],
                what: str) -> ClientConnection:
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


def _open(session: HttpSession, path: str, params: Sequence[tuple[str, str]],
          what: str) -> ClientConnection:
    url = session.ws_url(path, params)
    notice = None
    if (on_wait := session.on_wait) is not None:
        text = f"{one_line(what, 100)}: waking the sprite…"
        notice = notices.after(WAKING_NOTICE_AFTER, lambda: on_wait(text))
    try:
        # No proxy lookup for the local server; the shared TLS settings for wss://. No
        # keepalive pings (and their thread) on loopback: nothing between us can drop an
        # idle connection, and a server that dies resets it.
        tls = {"ssl": tls_context(url)} if url.startswith("wss:") else {}
        connection = connect(url, additional_headers=session.auth_headers, compression=None,
                             proxy=None if session.is_local else True, **tls,
                             open_timeout=max(session.timeout, OPEN_TIMEOUT),
                             ping_interval=None if session.is_local else 15,
                             ping_timeout=45, close_timeout=2, max_size=16 * 1024 * 1024,
                             max_queue=64, user_agent_header=USER_AGENT,
                             create_connection=QueuedWriteConnection)
        # Entered as a context manager on the caller's behalf: the caller closes it.
        return connection.__enter__()
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
    finally:
        if notice is not None:
            notice.cancel()


def _unreachable(session: HttpSession, path: str, exc: ConnectionError) -> Exception:
    failure = httpx.ConnectError(str(exc)) if isinstance(exc, ConnectionRefusedError) else exc
    return session.connection_failed(failure, session.base_url + path)
