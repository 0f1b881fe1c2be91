"""Pooled control connections (reference section 5): per sprite, WebSockets on
``/v1/sprites/{name}/control`` that run execs one after another, so a command costs no
TCP connect and HTTP upgrade of its own.

As sprites-go's ``control_pool.go``: an idle connection is handed out, else a new one
is dialled; a connection serves a new operation only once its last one completed, and
one that broke meanwhile is dropped. Beyond it: a command hands its connection back as
soon as it has its exit code, with the wait for the operation's ``op.complete`` left to
the next checkout (by then it has long arrived), so a command's caller never waits for
that last frame; the idle ones close after :data:`IDLE_CLOSE` seconds (swept by the
process's one notice timer, not a thread of their own), and at most :data:`MAX_IDLE`
wait per sprite.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .http import HttpSession, segment
from .notices import Notice, notices
from .websocket import open_socket
from .ws_connection import WebSocket

IDLE_CLOSE = 30.0
"""Seconds an unused connection stays open (sprites-go's keep-alive window)."""
MAX_IDLE = 10
"""Idle connections kept per sprite (sprites-go drains its pool to 10)."""

_ACK = 'control:{"type": "op.ack"'
"""How the local server's ``op.ack`` starts (its JSON spacing is Python's)."""

Settle = Callable[[], bool]
"""Reads a handed-back connection's last operation to its end: True once it completed,
False when it never did (the connection is then closed, not reused)."""


class ControlPool:
    """The control connections of one sprite on one client.

    ``supported`` says whether control works, decided once: None until an exec tells,
    True once a command ran over it, False for the direct exec socket from then on.
    Against the service, as sprites-go, control is tried at once, and a refused upgrade
    (or a new connection that fails before its process starts) decides False. Against a
    server on this machine (the local server, an older one, a test double) the first
    exec goes direct and control is tried only if that upgrade ``offered`` it
    (``X-Sprite-Capabilities: control``), so a server without it never sees a
    ``/control`` request.
    """

    def __init__(self, session: HttpSession, sprite: str) -> None:
        self.sprite = sprite
        self.supported: bool | None = None
        self.offered = False
        self._session = session
        self._lock = threading.Lock()
        self._idle: list[tuple[float, WebSocket, Settle | None]] = []
        self._sweep: Notice | None = None
        self._closed = False

    def checkout(self) -> tuple[WebSocket, bool]:
        """An idle open connection (``False``: reused), else a newly dialled one
        (``True``); dialling raises as any WebSocket upgrade does."""
        while True:
            with self._lock:
                if not self._idle:
                    break
                _, ws, settle = self._idle.pop()  # the most recently used: the others expire
            if ws.is_open and (settle is None or settle()):
                return ws, False
            ws.close()
        ws = open_socket(self._session, f"/v1/sprites/{segment(self.sprite)}/control", [],
                         what=f"open a control connection to {self.sprite}")
        ws.unread = _is_ack
        return ws, True

    def checkin(self, ws: WebSocket, settle: Settle | None = None) -> None:
        """Take back a connection whose operation completed, or (with ``settle``) whose
        operation ends by itself: ``settle`` reads it to its end before the next use."""
        surplus: list[WebSocket] = []
        with self._lock:
            if self._closed or not ws.is_open:
                surplus.append(ws)
            else:
                self._idle.append((time.monotonic(), ws, settle))
                while len(self._idle) > MAX_IDLE:
                    surplus.append(self._idle.pop(0)[1])
                if self._sweep is None:
                    self._sweep = notices.after(IDLE_CLOSE, self._close_expired)
        for extra in surplus:
            extra.close()

    def _close_expired(self) -> None:
        cutoff = time.monotonic() - IDLE_CLOSE
        with self._lock:
            expired = [entry[1] for entry in self._idle if entry[0] <= cutoff]
            self._idle = [entry for entry in self._idle if entry[0] > cutoff]
            self._sweep = None
            if self._idle:
                wait = self._idle[0][0] + IDLE_CLOSE - time.monotonic()
                self._sweep = notices.after(max(wait, 0.0), self._close_expired)
        for ws in expired:
            ws.close()

    def close(self) -> None:
        """Close every idle connection; those in use close when their operation ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            if self._sweep is not None:
                self._sweep.cancel()
                self._sweep = None
        for _, ws, _ in idle:
            ws.close()


def _is_ack(message: str | bytes) -> bool:
    """An ``op.ack`` as the local server words it (SDKs ignore it; so does a command)."""
    return isinstance(message, str) and message.startswith(_ACK)


class ControlPools:
    """A client's control pools, one per sprite it ran a command on."""

    def __init__(self, session: HttpSession) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._pools: dict[str, ControlPool] = {}
        self._closed = False

    def pool(self, sprite: str) -> ControlPool | None:
        """The pool for ``sprite``; None once the client is closed."""
        with self._lock:
            if self._closed:
                return None
            pool = self._pools.get(sprite)
            if pool is None:
                pool = self._pools[sprite] = ControlPool(self._session, sprite)
            return pool

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
