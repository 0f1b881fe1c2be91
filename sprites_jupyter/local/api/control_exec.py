"""``exec`` over the control connection (reference section 5.3): a new process, or an
attach when ``args.id`` names a session.

The frames are those of a direct exec socket, in the op's framing: ``session_info``
first (attach learns TTY-ness from it), output, then the exit (``0x03 code`` without a
TTY, the text ``exit`` with one), then ``op.complete`` with ``exitCode``. Stdin without a
TTY comes in either SDK framing: sprites-go sends raw bytes, sprites-js and -py
``0x00``-prefixed frames; both end it with the single byte ``0x04``. sprites-go always
names ``path`` and the others never do, so ``path`` selects raw bytes; otherwise the
op's first input frame decides. sprites-js sends ``resize``/``signal`` as binary JSON;
those are recognised in either mode.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from ..errors import LocalError
from ..runtime.exec.process import STDERR, SpawnError
from ..runtime.exec.sessions import Attachment, Session
from ..state import SpriteRuntime, state_of
from ..wire import query_bool
from .control_channel import OpChannel, OpFailed
from .exec_query import parse_exec_query
from .exec_session import EXIT, STDIN, STDIN_EOF, note_running, on_text, start_session

_CONTROL_JSON = (b'{"type":"resize"', b'{"type":"signal"', b'{"type": "resize"',
                 b'{"type": "signal"')


def _runtime(channel: OpChannel) -> SpriteRuntime:
    server = state_of(channel.websocket)
    name = channel.websocket.path_params["name"]
    server.require_sprite(name)
    return server.runtime(name)


async def exec_op(channel: OpChannel) -> dict[str, Any]:
    runtime = _runtime(channel)
    sid = channel.args.get("id")
    if sid:
        session = runtime.sessions.get(sid)
        if session is None:
            raise OpFailed("op.not_found", f"session not found: {sid[:80]}: list sessions "
                                           "with GET /v1/sprites/NAME/exec")
        note_running(channel.websocket, runtime)
        return await _relay(channel, session, session.attach(), is_owner=False)
    tty = query_bool(channel.args.get("tty"), False)
    try:
        exec_request = parse_exec_query(channel.args, runtime.sandbox)
    except LocalError as err:
        await _report_exit(channel, tty, f"{err.message}\n".encode(), 1)
        raise
    try:
        session, owner = await start_session(channel.websocket, runtime, exec_request)
    except SpawnError as err:
        spec = exec_request.spec
        await channel.send_json({
            "type": "session_info", "session_id": "0", "command": " ".join(spec.argv),
            "created": int(time.time()), "cols": spec.cols if tty else 0,
            "rows": spec.rows if tty else 0, "is_owner": True, "tty": tty})
        await _report_exit(channel, tty, f"{err}\n".encode(), err.exit_code)
        return {"exitCode": err.exit_code}
    return await _relay(channel, session, owner, is_owner=True)


async def _report_exit(channel: OpChannel, tty: bool, message: bytes, code: int) -> None:
    """What a process that never ran reports: the reason on stderr, then its exit, so a
    client that reads only the exec frames (sprites-go) ends too."""
    if tty:
        await channel.send_bytes(message.replace(b"\n", b"\r\n"))
        await channel.send_json({"type": "exit", "exit_code": code})
    else:
        await channel.send_bytes(bytes([STDERR]) + message)
        await channel.send_bytes(bytes([EXIT, code]))


async def _relay(channel: OpChannel, session: Session, attachment: Attachment, *,
                 is_owner: bool) -> dict[str, Any]:
    """Until the process exits (``exitCode``) or the client releases the op or leaves."""
    try:
        await channel.send_json(session.info(is_owner=is_owner))
    except BaseException:
        session.detach(attachment)
        raise
    output = asyncio.create_task(_send_output(channel, session, attachment))
    raw = "path" in channel.args
    source = asyncio.create_task(_receive_input(channel, session, raw_stdin=raw))
    try:
        await asyncio.wait({output, source}, return_when=asyncio.FIRST_COMPLETED)
        if output.done():
            return {"exitCode": output.result()}
        return {"detached": True}
    finally:
        for task in (output, source):
            task.cancel()
        await asyncio.gather(output, source, return_exceptions=True)
        session.detach(attachment)


async def _send_output(channel: OpChannel, session: Session, attachment: Attachment) -> int:
    async for item in session.output(attachment):
        if isinstance(item, dict):
            await channel.send_json(item)
        elif session.tty:
            await channel.send_bytes(item[1])
        else:
            await channel.send_bytes(bytes([item[0]]) + item[1])
    code = await session.wait()
    if session.tty:
        await channel.send_json({"type": "exit", "exit_code": code})
    else:
        await channel.send_bytes(bytes([EXIT, code]))
    return code


def _control_json(data: bytes) -> str | None:
    """A ``resize``/``signal`` message that sprites-js sent as a binary frame."""
    if not data.startswith(_CONTROL_JSON):
        return None
    try:
        message = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data.decode() if isinstance(message, dict) else None


async def _receive_input(channel: OpChannel, session: Session, *, raw_stdin: bool) -> None:
    prefixed: bool | None = False if raw_stdin else None
    while (frame := await channel.receive()) is not None:
        if isinstance(frame, str):
            on_text(session, frame)
            continue
        if (text := _control_json(frame)) is not None:
            on_text(session, text)
        elif session.tty:
            await session.write(frame)
        elif frame == bytes([STDIN_EOF]):
            await session.close_stdin()
        elif frame:
            if prefixed is None:
                prefixed = frame[0] == STDIN
            if not prefixed:
                await session.write(frame)
            elif frame[0] == STDIN:
                await session.write(frame[1:])
