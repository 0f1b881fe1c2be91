"""The control connection (reference section 5): operations one after another on one socket.

One reader owns the socket: ``op.start`` starts an operation (``op.busy`` while one
runs), every other frame goes to the running operation, ``{"type":"release"}`` ends it
early or is dropped between operations, and a data frame with no operation gets
``op.error op.not_active``. An operation ends with ``op.complete`` (exec adds
``exitCode``) or ``op.error``; the socket then serves the next one. SDK pools open many
such sockets per sprite; each is independent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import QueryParams
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import DISK_FULL, LocalError, is_disk_full
from ..state import state_of
from . import control_fs
from .control_channel import (
    RELEASE,
    Envelope,
    EnvelopeError,
    OpChannel,
    OpFailed,
    control_text,
    error_args,
    read_frame,
)
from .control_exec import exec_op
from .control_proxy import proxy_op
from .errors import error_response

log = logging.getLogger(__name__)

Operation = Callable[[OpChannel], Awaitable[dict[str, Any]]]
OPERATIONS: dict[str, Operation] = {"exec": exec_op, "proxy": proxy_op, **control_fs.OPERATIONS}
_SOCKET_GONE = (WebSocketDisconnect, RuntimeError, OSError)


async def control_socket(websocket: WebSocket) -> None:
    """``WSS /v1/sprites/{name}/control``: 404 for an unknown sprite, else serve ops; a
    query ``op=NAME`` (with the op's arguments) starts that op at once."""
    try:
        state_of(websocket).require_sprite(websocket.path_params["name"])
    except LocalError as err:
        await websocket.send_denial_response(error_response(err))
        return
    await websocket.accept()
    connection = _ControlConnection(websocket)
    first = websocket.query_params.get("op")
    if first:
        args = QueryParams([(k, v) for k, v in websocket.query_params.multi_items()
                            if k != "op"])
        await connection.start(Envelope(op=first, args=args, op_id=None, prefixed=True))
    await connection.serve()


class _ControlConnection:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.send_lock = asyncio.Lock()
        self.channel: OpChannel | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    async def serve(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                await self._route(message.get("text"), message.get("bytes"))
        except _SOCKET_GONE:
            pass
        finally:
            if self.task is not None:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task

    async def _route(self, text: str | None, data: bytes | None) -> None:
        if text is not None:
            try:
                frame = read_frame(text)
            except EnvelopeError as err:
                await self._send(control_text("op.error", None, error_args("op.invalid",
                                                                           str(err))))
                return
            if isinstance(frame, Envelope):
                await self.start(frame)
                return
            if frame == RELEASE:
                if self.busy and self.channel is not None:
                    self.channel.inbound.put_nowait(None)
                return
            if frame is not None:
                return  # another control message (keepalive and the like): nothing to do
        if self.busy and self.channel is not None:
            self.channel.inbound.put_nowait(text if text is not None else data)
            return
        await self._send(control_text("op.error", None, error_args(
            "op.not_active", "no operation is running on this control connection: send "
                             "control:{\"type\":\"op.start\",…} first")))

    async def start(self, envelope: Envelope) -> None:
        if self.busy and self.channel is not None:
            await _fail(OpChannel(self.websocket, envelope, self.send_lock), "op.busy",
                        f"operation {self.channel.envelope.op} is still running on this "
                        "connection: wait for its op.complete, or open another control "
                        "connection")
            return
        self.channel = OpChannel(self.websocket, envelope, self.send_lock)
        self.task = asyncio.create_task(_run(self.channel))

    async def _send(self, text: str) -> None:
        async with self.send_lock:
            await self.websocket.send_text(text)


async def _run(channel: OpChannel) -> None:
    """Run one operation and end it with ``op.complete`` or ``op.error``."""
    envelope = channel.envelope
    try:
        operation = OPERATIONS.get(envelope.op)
        if operation is None:
            raise OpFailed("op.not_found", f"unknown operation {envelope.op[:40]!r}: use "
                                           f"one of {', '.join(sorted(OPERATIONS))}")
        if envelope.prefixed:
            await channel.send_control("op.ack")
        result = await operation(channel)
        await channel.send_control("op.complete", {"ok": True, **result})
        if channel.close_after:
            await channel.websocket.close(1000)
    except OpFailed as err:
        await _fail(channel, err.code, err.message)
    except LocalError as err:
        await _fail(channel, _error_code(err), err.message, err.path)
    except _SOCKET_GONE:
        pass
    except Exception as exc:
        if is_disk_full(exc):
            await _fail(channel, "ENOSPC", DISK_FULL)
        else:
            log.exception("control operation %s failed", envelope.op)
            await _fail(channel, "op.failed", f"internal error: {exc}")


def _error_code(err: LocalError) -> str:
    """The code the HTTP answer to ``err`` would carry (an errno name for the filesystem)."""
    body = json.loads(bytes(error_response(err).body))
    return str(body["code"] if err.fs_code is not None else body["error"])


async def _fail(channel: OpChannel, code: str, message: str, path: str | None = None) -> None:
    """``op.error`` for prefixed starts; sprites-go's unprefixed helpers read an error
    object ``{"error", "code", "path"}`` as the operation's answer instead."""
    with contextlib.suppress(*_SOCKET_GONE):
        if channel.envelope.prefixed:
            args = error_args(code, message)
            if path is not None:
                args["path"] = path
            await channel.send_control("op.error", args)
        else:
            answer = {"error": message, "code": code, "status": "error"}
            if path is not None:
                answer["path"] = path
            await channel.send_json(answer)
