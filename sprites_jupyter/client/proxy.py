"""A TCP connection to a port inside a sprite, tunnelled over the ``/proxy`` WebSocket."""

from __future__ import annotations

import contextlib
import json
import socket
from types import TracebackType

from websockets.exceptions import ConnectionClosed

from .errors import ConnectionFailed, ProtocolError
from .http import HttpSession, segment
from .websocket import open_socket

CONNECTED_WAIT = 30.0
_EOF_CODES = (1000, 1001)


class PortConnection:
    """One TCP connection to ``host:port`` in the sprite: ``send`` bytes, ``recv`` bytes.

    ``recv`` returns ``b""`` once the target closes the connection.
    """

    def __init__(self, session: HttpSession, sprite: str, port: int,
                 host: str = "localhost") -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"invalid port {port!r}: give a number from 1 to 65535")
        what = f"connect to {host}:{port} in {sprite}"
        self._ws = open_socket(session, f"/v1/sprites/{segment(sprite)}/proxy", [], what=what)
        self._url = session.base_url
        try:
            self._ws.send(json.dumps({"host": host, "port": port}))
            answer = self._ws.recv(timeout=CONNECTED_WAIT)
        except (ConnectionClosed, TimeoutError) as exc:
            self.close()
            reason = getattr(getattr(exc, "rcvd", None), "reason", "") or "no answer"
            raise ConnectionFailed(f"{what}: {reason}", url=self._url) from None
        status = json.loads(answer).get("status") if isinstance(answer, str) else None
        if status != "connected":
            self.close()
            raise ProtocolError(f"{what}: unexpected answer {answer!r:.100}")
        self.target: str = json.loads(answer).get("target", f"{host}:{port}")

    def __repr__(self) -> str:
        return f"<PortConnection {self.target}>"

    def send(self, data: bytes | str) -> None:
        payload = data.encode() if isinstance(data, str) else bytes(data)
        try:
            self._ws.send(payload)
        except ConnectionClosed:
            raise ConnectionFailed(f"the connection to {self.target} is closed",
                                   url=self._url) from None

    def recv(self, timeout: float | None = None) -> bytes:
        """The next bytes from the target (``b""`` at end of stream)."""
        while True:
            try:
                message = self._ws.recv(timeout=timeout)
            except ConnectionClosed as exc:
                if exc.rcvd is None or exc.rcvd.code in _EOF_CODES:
                    return b""
                raise ConnectionFailed(f"the connection to {self.target} failed: "
                                       f"{exc.rcvd.reason or exc.rcvd.code}",
                                       url=self._url) from None
            if isinstance(message, bytes):
                return message

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()

    def abort(self) -> None:
        """Close at once, from any thread, also while another thread is blocked sending: a
        graceful :meth:`close` waits for that send, which a peer that stopped reading
        never lets finish."""
        with contextlib.suppress(OSError):
            self._ws.socket.shutdown(socket.SHUT_RDWR)
        self.close()

    def __enter__(self) -> PortConnection:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
