"""Idle exit for servers nobody uses: no request, socket, process or service for a while.

A server a kernel started in the background outlives the kernel and JupyterLab; with
``--idle-exit S`` it ends itself once it has had nothing to do for ``S`` seconds. Open
requests and WebSockets (a followed log, an attached session) are clients; running
exec sessions and services are sprite activity; either keeps it alive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["IdleWatch"]

log = logging.getLogger("sprites_jupyter.local")


class IdleWatch:
    """ASGI middleware that knows how long the server has been idle."""

    def __init__(self, app: ASGIApp, busy: Callable[[], bool]) -> None:
        self.app = app
        self.busy = busy
        self.open = 0
        self.last = time.monotonic()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1
            self.last = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since anything happened; 0 while a client or a sprite is active."""
        if self.open or self.busy():
            self.last = time.monotonic()
            return 0.0
        return time.monotonic() - self.last

    async def exit_when_idle(self, limit: float, stop: Callable[[], None]) -> None:
        """Call ``stop`` once idle for ``limit`` seconds."""
        while True:
            await asyncio.sleep(min(30.0, max(0.05, limit / 4)))
            if self.idle_for() >= limit:
                log.warning("no client and no sprite activity for %g s: exiting", limit)
                stop()
                return
