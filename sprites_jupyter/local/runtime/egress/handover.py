"""The server's end of the bridge: a unix socket on which the in-sprite bridge hands over
its listening sockets, which the sprite's :class:`~.proxy.EgressProxy` then serves.

Anything a sprite process sends here is checked: only an IPv4 listening TCP socket and
an IPv4 UDP socket are taken, and those can only be sockets of the sprite's own network
namespace, so a forged handover gains nothing (the policy applies on any socket).
Each accepted handover replaces the previous one (the sandbox was restarted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from pathlib import Path

from .bridge import GREETING
from .proxy import EgressProxy

log = logging.getLogger("sprites_jupyter.local.egress")

HANDOVER_TIMEOUT = 10.0


class BridgeListener:
    """Accepts handovers on ``path`` for ``proxy``."""

    def __init__(self, proxy: EgressProxy, path: Path) -> None:
        self.proxy = proxy
        self.path = path
        self._socket: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._bridge: socket.socket | None = None
        self.handed_over = asyncio.Event()
        """Set once a bridge's sockets are being served."""

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listening.bind(str(self.path))
        os.chmod(self.path, 0o666)
        listening.listen(8)
        listening.setblocking(False)
        self._socket = listening
        self._accepting = asyncio.get_running_loop().create_task(self._accept_forever())

    async def close(self) -> None:
        """Stop listening, let go of the bridge (it exits) and close the proxy."""
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
        if self._socket is not None:
            self._socket.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._drop_bridge()
        await self.proxy.close()

    async def _accept_forever(self) -> None:
        assert self._socket is not None
        loop = asyncio.get_running_loop()
        while True:
            connection, _ = await loop.sock_accept(self._socket)
            try:
                listener, resolver = await asyncio.to_thread(_receive, connection)
            except (OSError, ValueError) as error:
                log.warning("sprite %s: egress handover refused: %s", self.proxy.sprite, error)
                with contextlib.suppress(OSError):
                    connection.send(b"0")
                connection.close()
                continue
            await self.proxy.serve(listener, resolver)
            self._drop_bridge()
            connection.setblocking(False)
            await loop.sock_sendall(connection, b"1")
            self._bridge = connection
            self.handed_over.set()

    def _drop_bridge(self) -> None:
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None


def _receive(connection: socket.socket) -> tuple[socket.socket, socket.socket]:
    """The two sockets a bridge sends (blocking; run in a thread)."""
    connection.settimeout(HANDOVER_TIMEOUT)
    message, fds, _, _ = socket.recv_fds(connection, len(GREETING), 2)
    sockets = []
    try:
        for fd in fds:
            sockets.append(socket.socket(fileno=fd))
    except OSError:
        for fd in fds[len(sockets):]:
            os.close(fd)
        for adopted in sockets:
            adopted.close()
        raise ValueError("the bridge sent something that is not a socket") from None
    if message != GREETING or len(sockets) != 2:
        for adopted in sockets:
            adopted.close()
        raise ValueError("not a bridge handover")
    listener, resolver = sockets
    if not (listener.family == socket.AF_INET and listener.type == socket.SOCK_STREAM
            and listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            and resolver.family == socket.AF_INET and resolver.type == socket.SOCK_DGRAM):
        listener.close()
        resolver.close()
        raise ValueError("the bridge must send a listening TCP socket and a UDP socket")
    listener.setblocking(False)
    resolver.setblocking(False)
    return listener, resolver
