"""The TCP proxy socket (reference section 10): one WebSocket tunnels one TCP connection.

A local sprite's ports are processes on this machine's loopback, so only loopback
targets are dialled: the proxy must not turn the server into a relay to the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import LocalError
from ..state import state_of
from .errors import error_response

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
INIT_TIMEOUT = 30.0
DIAL_TIMEOUT = 10.0
CHUNK = 256 * 1024  # one frame per read: 32 KiB frames held a forward to 0.5x a direct read
BAD_INIT, DIAL_FAILED = 1003, 1011
_SOCKET_GONE = (WebSocketDisconnect, RuntimeError, OSError)


class _BadInit(Exception):
    """The first frame was not a usable ``{"host", "port"}`` message; closes with 1003."""


def _target(message: Mapping[str, Any]) -> tuple[str, int]:
    if message.get("text") is None:
        raise _BadInit("Expected JSON initialization message")
    try:
        init = json.loads(message["text"])
    except json.JSONDecodeError:
        raise _BadInit("Invalid JSON in initialization message") from None
    if not isinstance(init, dict):
        raise _BadInit("Invalid JSON in initialization message")
    port = init.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _BadInit("Invalid port number")
    host = init.get("host") or "localhost"
    if host not in LOOPBACK_HOSTS:
        raise _BadInit(f"Invalid host {host!r}: a local sprite's ports are on localhost")
    return host, port


async def proxy_socket(websocket: WebSocket) -> None:
    """Read ``{host, port}``, dial it, answer ``connected``, then relay bytes both ways."""
    state = state_of(websocket)
    try:
        state.require_sprite(websocket.path_params["name"])
    except LocalError as err:
        await websocket.send_denial_response(error_response(err))
        return
    await websocket.accept()
    try:
        message = await asyncio.wait_for(websocket.receive(), INIT_TIMEOUT)
        if message["type"] == "websocket.disconnect":
            return
        host, port = _target(message)
    except (_BadInit, TimeoutError) as err:
        reason = str(err) or "Expected JSON initialization message"
        await websocket.close(BAD_INIT, reason)
        return
    try:
        runtime = state.runtime(websocket.path_params["name"])
        reader, writer = await asyncio.wait_for(runtime.open_connection(port, host),
                                                DIAL_TIMEOUT)
    except (OSError, TimeoutError) as err:
        await websocket.close(DIAL_FAILED, f"Failed to connect to target: {err}"[:120])
        return
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        await websocket.send_text(json.dumps({"status": "connected", "target": target}))
        await _relay(websocket, reader, writer)
        await websocket.close(1000)
    except _SOCKET_GONE:
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _relay(websocket: WebSocket, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
    """Copy bytes both ways until either side ends."""
    upstream = asyncio.create_task(_to_target(websocket, writer))
    downstream = asyncio.create_task(_to_client(websocket, reader))
    try:
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (upstream, downstream):
            task.cancel()
        await asyncio.gather(upstream, downstream, return_exceptions=True)


async def _to_target(websocket: WebSocket, writer: asyncio.StreamWriter) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes"):
            writer.write(message["bytes"])
            await writer.drain()


async def _to_client(websocket: WebSocket, reader: asyncio.StreamReader) -> None:
    while data := await reader.read(CHUNK):
        await websocket.send_bytes(data)
