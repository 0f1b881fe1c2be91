"""Exec endpoints (reference sections 3 and 4): exec and attach sockets, HTTP exec, sessions, kill.

Non-TTY sockets carry ``0x01``/``0x02``-prefixed output, ``0x00`` input and ``0x04``
end-of-input, and end with ``0x03 <code>``; TTY sockets carry raw bytes and end with the
text ``exit`` message. Either way the exit comes after all output, then a 1000 close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import LocalError
from ..runtime.exec.process import STDERR, SpawnError
from ..runtime.exec.sessions import Attachment, Session, SessionManager
from ..state import SpriteRuntime, state_of
from ..wire import (
    parse_duration,
    parse_signal,
    query_bool,
    read_body,
    read_json_object,
)
from .errors import ApiError, error_response
from .exec_query import ExecRequest, parse_exec_query
from .exec_session import EXIT, STDIN, STDIN_EOF, note_running, on_text, start_session
from .ndjson import ndjson_response

log = logging.getLogger(__name__)

CAPABILITIES = [(b"x-sprite-capabilities", b"signal, control")]
KILL_TIMEOUT = 10.0
MAX_HTTP_STDIN = 64 * 1024 * 1024
HTTP_STDIN_RULE = ("HTTP exec takes at most 64 MiB of stdin: stream more through the exec "
                   "WebSocket")
# Signals as a closed or vanished socket reports them, whichever side noticed first.
_SOCKET_GONE = (WebSocketDisconnect, RuntimeError, OSError)


def _runtime(conn: Request | WebSocket) -> SpriteRuntime:
    server = state_of(conn)
    name = conn.path_params["name"]
    server.require_sprite(name)
    return server.runtime(name)


def _live_session(sessions: SessionManager, sid: str) -> Session:
    session = sessions.get(sid)
    if session is None:
        raise ApiError(404, f"session not found: {sid[:80]}")
    return session


# --- sessions over plain HTTP -------------------------------------------------------


async def list_sessions(request: Request) -> Response:
    """``GET /exec``: the live sessions; ``HEAD /exec``: just the ``Sprite-Version`` header."""
    runtime = _runtime(request)
    if request.method == "HEAD":
        return Response(status_code=200)
    sessions = runtime.sessions.list()
    return JSONResponse({"sessions": sessions, "count": len(sessions)})


async def get_session(request: Request) -> Response:
    runtime = _runtime(request)
    return JSONResponse(_live_session(runtime.sessions, request.path_params["sid"]).summary())


async def kill_session(request: Request) -> Response:
    """Signal a session's group, wait ``timeout``, escalate to SIGKILL; stream what happened."""
    runtime = _runtime(request)
    sid = request.path_params["sid"]
    session = runtime.sessions.get(sid)
    if session is None:
        code = runtime.sessions.exited_with(sid)
        if code is not None:
            raise ApiError(410, f"session {sid} already exited with code {code}")
        raise ApiError(404, f"session not found: {sid[:80]}")
    query = request.query_params
    body: dict[str, Any] = {}
    if "signal" not in query or "timeout" not in query:
        body = await read_json_object(request, allow_empty=True)
    sig = parse_signal(query.get("signal") or body.get("signal") or "SIGTERM")
    return ndjson_response(_kill_events(session, sig, _kill_timeout(query.get("timeout"), body)))


def _kill_timeout(text: str | None, body: dict[str, Any]) -> float:
    """The query's Go duration, else the body's seconds or duration (the Python SDK's form)."""
    if text is not None:
        return parse_duration(text, KILL_TIMEOUT, name="timeout")
    value = body.get("timeout")
    if value is None:
        return KILL_TIMEOUT
    if isinstance(value, int | float) and not isinstance(value, bool):
        return parse_duration(repr(float(value)), KILL_TIMEOUT, name="timeout")
    if isinstance(value, str):
        return parse_duration(value, KILL_TIMEOUT, name="timeout")
    raise ApiError(400, f"invalid timeout {value!r}: use seconds or a Go duration such as 10s")


async def _kill_events(session: Session, sig: signal.Signals, timeout: float
                       ) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "signal", "message": f"Signaling {sig.name} to process group {session.id}",
           "signal": sig.name, "pid": int(session.id)}
    session.signal(sig)
    if timeout == 0:
        # Send and return at once: the status is only known if the process is already gone.
        yield {"type": "complete", "exit_code": session.exit_code if session.done else -1}
        return
    try:
        code = await asyncio.wait_for(session.wait(), timeout)
        yield {"type": "exited", "message": "Process exited"}
    except TimeoutError:
        yield {"type": "timeout", "message": f"Process did not exit within {timeout:g}s"}
        session.signal(signal.SIGKILL)
        code = await session.wait()
        yield {"type": "killed", "message": f"Sent SIGKILL to process group {session.id}"}
    yield {"type": "complete", "exit_code": code}


async def http_exec(request: Request) -> Response:
    """``POST /exec?cmd=…``: run without a socket; the body is stdin when ``stdin=true``."""
    runtime = _runtime(request)
    query = request.query_params
    if "id" in query:
        raise ApiError(400, "id (attach) is not supported by HTTP exec: use the exec WebSocket")
    for name in ("tty", "detachable", "cc"):
        if query_bool(query.get(name), False):
            raise ApiError(400, f"{name} is not supported by HTTP exec: use the exec WebSocket")
    exec_request = parse_exec_query(query, runtime.sandbox)
    stdin = (await read_body(request, MAX_HTTP_STDIN, HTTP_STDIN_RULE)
             if exec_request.spec.stdin else b"")
    try:
        session, owner = await start_session(request, runtime, exec_request)
    except SpawnError as err:
        frames = bytes([STDERR]) + f"{err}\n".encode() + bytes([EXIT, err.exit_code])
        return Response(frames, media_type="application/octet-stream")
    return StreamingResponse(_http_frames(session, owner, stdin),
                             media_type="application/octet-stream")


async def _http_frames(session: Session, owner: Attachment, stdin: bytes
                       ) -> AsyncIterator[bytes]:
    feeder = asyncio.create_task(_feed(session, stdin)) if session.stdin else None
    try:
        async for item in session.output(owner):
            if isinstance(item, tuple):
                yield bytes([item[0]]) + item[1]
        yield bytes([EXIT, await session.wait()])
    finally:
        if feeder is not None:
            feeder.cancel()
        session.detach(owner)


async def _feed(session: Session, data: bytes) -> None:
    await session.write(data)
    await session.close_stdin()


# --- sockets ------------------------------------------------------------------------


async def exec_socket(websocket: WebSocket) -> None:
    """A new process (``cmd=…``), or the legacy attach form ``/exec?id=SID``."""
    sid = websocket.query_params.get("id")
    if sid:
        await _attach(websocket, sid)
        return
    try:
        runtime = _runtime(websocket)
        exec_request = parse_exec_query(websocket.query_params, runtime.sandbox)
        session, owner = await start_session(websocket, runtime, exec_request)
    except LocalError as err:
        await websocket.send_denial_response(error_response(err))
        return
    except SpawnError as err:
        await _report_spawn_failure(websocket, exec_request, err)
        return
    await _serve(websocket, session, owner, is_owner=True)


async def attach_socket(websocket: WebSocket) -> None:
    """Attach to a running session: ``session_info``, the scrollback, live output, the exit."""
    await _attach(websocket, websocket.path_params["sid"])


async def _attach(websocket: WebSocket, sid: str) -> None:
    try:
        runtime = _runtime(websocket)
        session = _live_session(runtime.sessions, sid)
    except LocalError as err:
        await websocket.send_denial_response(error_response(err))
        return
    note_running(websocket, runtime)
    await _serve(websocket, session, session.attach(), is_owner=False)


async def _report_spawn_failure(websocket: WebSocket, exec_request: ExecRequest,
                                err: SpawnError) -> None:
    """A process that never started still gets its exit (127 or 126) over the protocol.

    Its ``session_id`` is ``"0"``: there is no process, so nothing can attach or kill it.
    """
    spec = exec_request.spec
    info = {"type": "session_info", "session_id": "0", "command": " ".join(spec.argv),
            "created": int(time.time()), "cols": spec.cols if spec.tty else 0,
            "rows": spec.rows if spec.tty else 0, "is_owner": True, "tty": spec.tty}
    message = f"{err}\n".encode()
    with contextlib.suppress(*_SOCKET_GONE):
        await websocket.accept(headers=CAPABILITIES)
        await websocket.send_text(json.dumps(info))
        if spec.tty:
            await websocket.send_bytes(message.replace(b"\n", b"\r\n"))
            await websocket.send_text(json.dumps({"type": "exit", "exit_code": err.exit_code}))
        else:
            await websocket.send_bytes(bytes([STDERR]) + message)
            await websocket.send_bytes(bytes([EXIT, err.exit_code]))
        await websocket.close(1000)


async def _serve(websocket: WebSocket, session: Session, attachment: Attachment, *,
                 is_owner: bool) -> None:
    """Relay one socket to a session until the process exits or the client leaves."""
    tasks: list[asyncio.Task[None]] = []
    try:
        await websocket.accept(headers=CAPABILITIES)
        await websocket.send_text(json.dumps(session.info(is_owner=is_owner)))
        tasks = [asyncio.create_task(_send_output(websocket, session, attachment)),
                 asyncio.create_task(_receive_input(websocket, session))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except _SOCKET_GONE:
        pass
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("exec socket of session %s failed", session.id)
        session.detach(attachment)


async def _send_output(websocket: WebSocket, session: Session, attachment: Attachment) -> None:
    try:
        async for item in session.output(attachment):
            if isinstance(item, dict):
                await websocket.send_text(json.dumps(item))
            elif session.tty:
                await websocket.send_bytes(item[1])
            else:
                await websocket.send_bytes(bytes([item[0]]) + item[1])
        code = await session.wait()
        if session.tty:
            await websocket.send_text(json.dumps({"type": "exit", "exit_code": code}))
        else:
            await websocket.send_bytes(bytes([EXIT, code]))
        await websocket.close(1000)
    except _SOCKET_GONE:
        pass


async def _receive_input(websocket: WebSocket, session: Session) -> None:
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await _on_binary(session, message["bytes"])
            elif message.get("text") is not None:
                on_text(session, message["text"])
    except _SOCKET_GONE:
        pass


async def _on_binary(session: Session, data: bytes) -> None:
    if session.tty:
        await session.write(data)
    elif data[:1] == bytes([STDIN]):
        await session.write(data[1:])
    elif data[:1] == bytes([STDIN_EOF]):
        await session.close_stdin()
