"""The control connection's envelope (reference section 5.2) and what one operation sees.

Two framings reach the same operations, and each operation is answered in the one it was
started with:

* ``control:{"type":"op.start","id":…,"op":"exec","args":{…}}`` — sprites-js, -py and
  sprites-go's exec: the envelope is prefixed, ``args`` an object of strings or lists of
  strings; the server answers ``control:op.ack`` / ``op.complete`` / ``op.error``.
* ``{"type":"op.start","op":"fs.read","args":"path=a&workingDir=/"}`` and
  ``{"type":"start","operation":"proxy","params":{…}}`` — sprites-go's filesystem and
  proxy helpers: no prefix, ``args`` a URL-encoded string (or ``params``); they read the
  first answer as the operation's result, so nothing is sent before it (no ack) and the
  final ``op.complete`` comes unprefixed too.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import QueryParams
from starlette.websockets import WebSocket

PREFIX = "control:"
RELEASE = "release"


class EnvelopeError(Exception):
    """A control frame that cannot be read; answered with ``op.error`` (``op.invalid``)."""


class OpFailed(Exception):
    """An operation that ends in ``op.error`` with ``code`` (``op.not_found`` …)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Envelope:
    """A parsed ``op.start``: which operation, its arguments, and the framing to answer in."""

    op: str
    args: QueryParams
    op_id: str | None
    prefixed: bool


def _arg_values(name: str, value: object) -> list[str]:
    """One argument as query values: SDKs send strings and lists of strings; numbers and
    booleans are taken in their query spelling rather than dropped."""
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, str | int | float):
        return [str(value)]
    if isinstance(value, list) and not any(isinstance(entry, list | dict) for entry in value):
        return [item for entry in value for item in _arg_values(name, entry)]
    raise EnvelopeError(f"invalid argument {name[:40]!r}: use a string or a list of strings")


def _args(raw: object) -> QueryParams:
    if raw is None:
        return QueryParams("")
    if isinstance(raw, str):
        return QueryParams(parse_qsl(raw, keep_blank_values=True))
    if isinstance(raw, dict):
        return QueryParams([(str(k), v) for k, value in raw.items()
                            for v in _arg_values(str(k), value)])
    raise EnvelopeError("invalid args: send an object of strings or a URL-encoded string")


def _envelope(message: dict[str, Any], prefixed: bool) -> Envelope | None:
    kind = message.get("type")
    if kind == "op.start":
        op, raw = message.get("op"), message.get("args")
    elif kind == "start" and not prefixed:
        op, raw = message.get("operation"), message.get("params")
    else:
        return None
    if not isinstance(op, str) or not op:
        raise EnvelopeError("op.start without an op name: say which operation, e.g. exec")
    op_id = message.get("id")
    return Envelope(op=op, args=_args(raw), prefixed=prefixed,
                    op_id=str(op_id) if isinstance(op_id, str | int) else None)


def read_frame(text: str) -> Envelope | str | None:
    """What a text frame is: an ``op.start`` (an :class:`Envelope`), ``release``, another
    control message (its type), or ``None`` for op data (a resize, say)."""
    prefixed = text.startswith(PREFIX)
    body = text[len(PREFIX):] if prefixed else text
    try:
        message = json.loads(body)
    except json.JSONDecodeError:
        if prefixed:
            raise EnvelopeError("control frame is not JSON: send control:{\"type\": …}") from None
        return None
    if not isinstance(message, dict):
        if prefixed:
            raise EnvelopeError("control frame is not a JSON object")
        return None
    envelope = _envelope(message, prefixed)
    if envelope is not None:
        return envelope
    kind = message.get("type")
    if kind == RELEASE:
        return RELEASE
    if prefixed:
        return str(kind) if isinstance(kind, str) else "unknown"
    return None


def control_text(kind: str, op_id: str | None, args: dict[str, Any] | None = None, *,
                 prefixed: bool = True, op: str | None = None) -> str:
    message: dict[str, Any] = {"type": kind}
    if op_id is not None:
        message["id"] = op_id
    if op is not None:
        message["op"] = op
    if args is not None:
        message["args"] = args
    text = json.dumps(message)
    return PREFIX + text if prefixed else text


def error_args(code: str, message: str) -> dict[str, str]:
    """``op.error`` arguments: the server's ``message`` and the ``error`` SDKs read."""
    return {"code": code, "message": message, "error": message}


@dataclass
class OpChannel:
    """One operation's view of its socket: the frames sent to it, and ways to answer."""

    websocket: WebSocket
    envelope: Envelope
    send_lock: asyncio.Lock
    inbound: asyncio.Queue[str | bytes | None] = field(default_factory=asyncio.Queue)
    close_after: bool = False  # close the socket after op.complete (the peer saw an end)

    @property
    def args(self) -> QueryParams:
        return self.envelope.args

    async def receive(self) -> str | bytes | None:
        """The next frame for this op; ``None`` once the client released it or left."""
        return await self.inbound.get()

    async def send_bytes(self, data: bytes) -> None:
        async with self.send_lock:
            await self.websocket.send_bytes(data)

    async def send_text(self, text: str) -> None:
        async with self.send_lock:
            await self.websocket.send_text(text)

    async def send_json(self, value: dict[str, Any]) -> None:
        await self.send_text(json.dumps(value))

    async def send_control(self, kind: str, args: dict[str, Any] | None = None) -> None:
        await self.send_text(control_text(kind, self.envelope.op_id, args,
                                          prefixed=self.envelope.prefixed,
                                          op=self.envelope.op if kind == "op.error" else None))
