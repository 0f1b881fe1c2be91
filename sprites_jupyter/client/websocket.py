"""Opening a WebSocket with the client's auth, timeouts and error mapping."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .errors import ProtocolError
from .http import USER_AGENT, HttpSession


def open_socket(session: HttpSession, path: str, params: Sequence[tuple[str, str]],
                what: str) -> ClientConnection:
    """Upgrade to a WebSocket; a refused upgrade raises the same errors as HTTP."""
    url = session.ws_url(path, params)
    try:
        connection = connect(url, additional_headers=session.auth_headers, compression=None,
                             open_timeout=session.timeout, ping_interval=15, ping_timeout=45,
                             close_timeout=2, max_size=16 * 1024 * 1024, max_queue=64,
                             user_agent_header=USER_AGENT)
        # Entered as a context manager on the caller's behalf: the caller closes it.
        return connection.__enter__()
    except InvalidStatus as exc:
        answer = exc.response
        kept = {k: v for k, v in answer.headers.raw_items()
                if k.lower() in ("content-type", "retry-after")}
        response = httpx.Response(answer.status_code, headers=kept,
                                  content=bytes(answer.body or b""))
        raise session.error(response, what=what) from None
    except InvalidHandshake as exc:
        raise ProtocolError(f"{what}: the WebSocket handshake failed ({exc})") from None
    except (OSError, TimeoutError) as exc:
        failure = session.connection_failed(
            httpx.ConnectError(str(exc)) if isinstance(exc, ConnectionRefusedError) else exc,
            url.split("?", 1)[0])
        raise failure from None
