"""What the exec sockets and the control connection's exec op share: the frame ids of
non-TTY streams, starting a session, and the text messages a client sends it (resize,
signal)."""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.websockets import WebSocket

from ..errors import LocalError
from ..runtime.exec.sessions import Attachment, Session
from ..state import SpriteRuntime, state_of
from ..wire import parse_signal
from .exec_query import ExecRequest

log = logging.getLogger(__name__)

STDIN, EXIT, STDIN_EOF = 0x00, 0x03, 0x04


async def start_session(conn: Request | WebSocket, runtime: SpriteRuntime,
                        exec_request: ExecRequest) -> tuple[Session, Attachment]:
    """``exec_request`` started as a new session of ``runtime`` (after any restore), its
    owner's attachment; the sprite counts as running from here."""
    await runtime.settled()
    session, owner = await runtime.sessions.start(
        exec_request.spec, workdir=exec_request.workdir,
        max_run_after_disconnect=exec_request.max_run_after_disconnect)
    note_running(conn, runtime)
    return session, owner


def note_running(conn: Request | WebSocket, runtime: SpriteRuntime) -> None:
    """Record that the sprite ran (its ``last_running_at``), unless it was just recorded."""
    if runtime.sessions.running_note_due():
        state_of(conn).store.touch_running(runtime.name)


def on_text(session: Session, text: str) -> None:
    """``resize`` and ``signal`` messages; anything else is ignored, as clients expect."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return
    if not isinstance(message, dict):
        return
    if message.get("type") == "resize":
        rows, cols = message.get("rows", session.rows), message.get("cols", session.cols)
        if isinstance(rows, int) and isinstance(cols, int):
            session.resize(rows, cols)
    elif message.get("type") == "signal":
        try:
            session.signal(parse_signal(message.get("signal")))
        except LocalError as err:
            log.info("ignored signal message on session %s: %s", session.id, err.message)
