"""The server's end of the bridge: receives the two sockets the bridge made in the
sprite's network namespace, over its inherited unix socket, and has the sprite's
:class:`~.proxy.EgressProxy` serve them.

What arrives is checked: only an IPv4 listening TCP socket and an IPv4 UDP socket are
taken (anything a process inside could make is a socket of the sprite's own network
namespace, and the policy applies on any socket anyway).
"""

from __future__ import annotations

import asyncio
import os
import socket

from .bridge import GREETING
from .proxy import EgressProxy

HANDOVER_TIMEOUT = 30.0


class HandoverError(Exception):
    """The bridge did not hand over usable sockets; the message says what came."""


async def take_over(proxy: EgressProxy, connection: socket.socket) -> None:
    """Receive the bridge's sockets on ``connection`` and serve them with ``proxy``.

    Keep ``connection`` open while they are served: closing it lets the bridge exit.
    """
    listener, resolver = await asyncio.wait_for(asyncio.to_thread(_receive, connection),
                                                HANDOVER_TIMEOUT)
    await proxy.serve(listener, resolver)
    connection.setblocking(False)
    await asyncio.get_running_loop().sock_sendall(connection, b"1")


def _receive(connection: socket.socket) -> tuple[socket.socket, socket.socket]:
    """The two sockets a bridge sends (blocking; run in a thread)."""
    connection.settimeout(HANDOVER_TIMEOUT)
    try:
        message, fds, _, _ = socket.recv_fds(connection, len(GREETING), 2)
    except OSError as error:
        raise HandoverError(f"the bridge sent nothing usable: {error}") from None
    sockets = []
    try:
        for fd in fds:
            sockets.append(socket.socket(fileno=fd))
    except OSError:
        for fd in fds[len(sockets):]:
            os.close(fd)
        for adopted in sockets:
            adopted.close()
        raise HandoverError("the bridge sent something that is not a socket") from None
    if not message and not sockets:
        raise HandoverError("the bridge exited without handing over its sockets")
    if message != GREETING or len(sockets) != 2:
        for adopted in sockets:
            adopted.close()
        raise HandoverError(f"not a bridge handover: {message[:40]!r}")
    listener, resolver = sockets
    if not (listener.family == socket.AF_INET and listener.type == socket.SOCK_STREAM
            and listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            and resolver.family == socket.AF_INET and resolver.type == socket.SOCK_DGRAM):
        listener.close()
        resolver.close()
        raise HandoverError("the bridge must send a listening TCP socket and a UDP socket")
    listener.setblocking(False)
    resolver.setblocking(False)
    return listener, resolver
