"""``proxy`` over the control connection: one TCP connection to a port of the sprite.

Started as ``op.start`` with ``args.host``/``args.port`` (the server's form) or as
sprites-go's ``{"type":"start","operation":"proxy","params":{…}}``; answered like the
proxy socket (section 10): ``{"status":"connected","target":…}``, then binary frames
both ways. The client ends it with ``release`` (sprites-go's ``Close``), which keeps the
socket for the next op. When the target closes first, a sprites-go socket is closed after
``op.complete``: its tunnel reads only binary frames, and a close is the only end it sees.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from ..state import state_of
from .control_channel import OpChannel, OpFailed
from .proxy import CHUNK, DIAL_TIMEOUT, LOOPBACK_HOSTS


def _target(channel: OpChannel) -> tuple[str, int]:
    host = channel.args.get("host") or "localhost"
    port_text = channel.args.get("port", "")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise OpFailed("op.invalid", f"invalid port {port_text[:20]!r}: use 1 to 65535")
    if host not in LOOPBACK_HOSTS:
        raise OpFailed("op.invalid", f"invalid host {host[:80]!r}: a local sprite's ports "
                                     "are on localhost")
    return host, int(port_text)


async def proxy_op(channel: OpChannel) -> dict[str, Any]:
    server = state_of(channel.websocket)
    name = channel.websocket.path_params["name"]
    server.require_sprite(name)
    host, port = _target(channel)
    try:
        reader, writer = await asyncio.wait_for(
            server.runtime(name).open_connection(port, host), DIAL_TIMEOUT)
    except (OSError, TimeoutError) as err:
        raise OpFailed("op.dial_failed", f"Failed to connect to target {host}:{port}: "
                                         f"{err or 'timed out'}") from None
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    tasks: set[asyncio.Task[None]] = set()
    try:
        await channel.send_json({"status": "connected", "target": target})
        downstream = asyncio.create_task(_to_client(channel, reader))
        tasks = {asyncio.create_task(_to_target(channel, writer)), downstream}
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if done == {downstream}:
            channel.close_after = not channel.envelope.prefixed
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return {}


async def _to_target(channel: OpChannel, writer: asyncio.StreamWriter) -> None:
    while (frame := await channel.receive()) is not None:
        if isinstance(frame, bytes) and frame:
            writer.write(frame)
            await writer.drain()


async def _to_client(channel: OpChannel, reader: asyncio.StreamReader) -> None:
    while data := await reader.read(CHUNK):
        await channel.send_bytes(data)
