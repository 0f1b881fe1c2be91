"""Exec over a pooled control connection (reference section 5.3), as sprites-go runs it.

``control:{"type":"op.start","op":"exec","args":{…}}`` starts the command on an idle
control socket; then the frames of a direct exec socket flow, and the server ends the
operation with ``control:op.complete``. :class:`ControlOp` shows :class:`~.exec.Command`
such an operation as the direct socket it would otherwise read, so a command behaves
the same either way. Where the two differ, sprites-go decides: stdin goes raw (no
``0x00`` prefix) and ends with the single byte ``0x04``; signals go as the direct
socket's, by ``POST …/kill`` unless the upgrade advertised the ``signal`` capability.

:func:`open_exec` chooses: control when the server offers it, else (a refused upgrade,
an op refused before it started, a pooled connection that broke) the direct exec
socket, so the user never sees the difference.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from .control_pool import ControlPool
from .errors import (
    ConnectionFailed,
    HTTPStatusError,
    ProtocolError,
    RateLimited,
    SpritesError,
    one_line,
)
from .exec_protocol import EXIT, STDIN, STDIN_EOF
from .http import HttpSession, segment
from .websocket import OPEN_TIMEOUT, open_socket, waking_notice
from .ws_connection import WebSocket

PREFIX = "control:"
COMPLETE_WAIT = 5.0
"""Seconds to wait for ``op.complete`` once the process exited (or was released)
before the connection is closed rather than reused."""
_LIST_ARGS = ("cmd", "env")
_op_ids = itertools.count(1)


class ControlOp:
    """One exec on a control connection, read and written as a direct exec socket."""

    def __init__(self, pool: ControlPool, ws: WebSocket, *, tty: bool) -> None:
        self._pool = pool
        self._ws = ws
        self._tty = tty
        self._id = f"exec-{next(_op_ids)}"
        self._read_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._exited = False
        self._completed = False
        self._failed: str | None = None
        self._done = False  # handed back or closed: no more reads or writes
        self._held = b""  # a lone 0x04 data byte, which raw framing would read as EOF
        self._no_input = False  # started with stdin=false: there is no input to end
        self._early: deque[str | bytes] = deque()  # frames read, not yet by recv()
        self._exit_code = 0

    @property
    def response(self) -> Response | None:
        return self._ws.response

    def start(self, args: dict[str, str | list[str]], timeout: float) -> bool:
        """Send ``op.start`` and wait for the process's ``session_info`` (kept, with any
        frame before it, for :meth:`recv`). False when the operation did not start: the
        server refused it (``op.error``), or the connection broke first."""
        start = {"type": "op.start", "id": self._id, "op": "exec", "args": args}
        self._no_input = not self._tty and args.get("stdin") == "false"
        try:
            self._ws.send(PREFIX + json.dumps(start))
            while True:
                message = self._ws.recv(timeout=timeout)
                if isinstance(message, str) and message.startswith(PREFIX):
                    self._on_control(message)
                    if self._completed and self._failed is None:
                        return True  # it ran, though no session_info came
                    if self._completed:
                        self._early.clear()  # a refusal, reported as a process would be
                        self._release()
                        return False
                    continue
                self._note(message)
                if isinstance(message, str) and _kind(message) == "session_info":
                    return True
        except ConnectionClosed:
            self._ws.close()
            return False
        except BaseException:
            self._ws.close()
            raise

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The operation's next exec frame; control frames are consumed here."""
        if not self._read_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("another thread is reading this command")
        try:
            while True:
                if self._done:  # closed, or handed back for another command's use
                    raise ConnectionClosed(None, None)
                if self._early:
                    return self._early.popleft()
                if self._completed and not self._exited:
                    return self._end_of_op()
                message = self._ws.recv(timeout=timeout)
                if isinstance(message, str) and message.startswith(PREFIX):
                    self._on_control(message)
                else:
                    self._note(message)
        finally:
            self._read_lock.release()

    def _note(self, message: str | bytes) -> None:
        """Queue an exec frame for :meth:`recv`, noting whether it is the exit."""
        if isinstance(message, bytes):
            self._exited |= not self._tty and message[:1] == bytes([EXIT])
        else:
            self._exited |= _kind(message) == "exit"
        self._early.append(message)

    def _end_of_op(self) -> str:
        """What the end of the operation means to a reader still waiting for the exit."""
        if self._failed is not None:
            raise ProtocolError(f"the sprite ended the command: {one_line(self._failed, 200)}")
        self._exited = True  # an exit carried by op.complete alone (older servers, TTY)
        return json.dumps({"type": "exit", "exit_code": self._exit_code})

    def _on_control(self, text: str) -> None:
        try:
            message = json.loads(text[len(PREFIX):])
        except json.JSONDecodeError:
            return
        if not isinstance(message, dict) or message.get("id") not in (None, self._id):
            return
        args = message.get("args")
        if not isinstance(args, dict):
            args = {}
        kind = message.get("type")
        if kind == "op.error" and args.get("code") != "op.not_active":
            self._completed = True
            self._failed = str(args.get("error") or args.get("message") or "op.error")
        elif kind == "op.complete":
            self._completed = True
            code = args.get("exitCode")
            if isinstance(code, int) and not isinstance(code, bool):
                self._exit_code = code
            if args.get("ok") is False:
                self._failed = str(args.get("error") or "the operation failed")

    def send(self, message: str | bytes) -> None:
        """Send one exec frame, in control framing: stdin raw, its end the byte 0x04.

        A write of that byte alone cannot be told from the end, so it waits to lead the
        next write; followed by nothing but the end, it is lost in it (as from sprites-go:
        the framing has no way to say it). Writes of more bytes, however they end, arrive
        as written. The end of an input the op was started without (``stdin=false``) is
        not sent, as sprites-go sends none: the server reads no input then."""
        with self._send_lock:
            if self._done:
                raise ConnectionClosed(None, None)
            if self._no_input and message == bytes([STDIN_EOF]):
                return
            if isinstance(message, bytes) and not self._tty:
                if message[:1] == bytes([STDIN]):
                    message = self._held + message[1:]
                    self._held = b""
                    if message in (b"", bytes([STDIN_EOF])):
                        self._held = message
                        return
                elif message == bytes([STDIN_EOF]):
                    self._held = b""  # a lone 0x04 held back would read as this same end
            self._ws.send(message)

    def close(self) -> None:
        """End this command's use of the connection: back to the pool (a running process
        is released: it keeps running, as on a closed direct socket), its ``op.complete``
        read by the next checkout; closed instead when another thread is reading."""
        with self._send_lock:
            if self._done:
                return
            self._done = True
        if not self._read_lock.acquire(blocking=False):
            self._ws.close()  # another thread is reading: it must see the end, not a reuse
            return
        try:
            self._release()
        finally:
            self._read_lock.release()

    def _release(self) -> None:
        self._done = True
        if not self._completed and not self._exited:
            try:
                self._ws.send(json.dumps({"type": "release"}))
            except ConnectionClosed:
                self._ws.close()
                return
        self._pool.checkin(self._ws, None if self._completed else self._settle)

    def _settle(self) -> bool:
        """Read the rest of this operation up to its ``op.complete`` (the pool calls it
        before the connection's next use): False when it did not come."""
        try:
            while not self._completed:
                message = self._ws.recv(timeout=COMPLETE_WAIT)
                if isinstance(message, str) and message.startswith(PREFIX):
                    self._on_control(message)
        except (ConnectionClosed, TimeoutError):
            return False
        return True


def _kind(text: str) -> str | None:
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return None
    return message.get("type") if isinstance(message, dict) else None


def _op_args(params: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """The exec query as ``op.start`` args: strings, lists for repeatable ones."""
    args: dict[str, str | list[str]] = {}
    for name, value in params:
        if name in _LIST_ARGS:
            listed = args.setdefault(name, [])
            assert isinstance(listed, list)
            listed.append(value)
        else:
            args[name] = value
    return args


def open_exec(session: HttpSession, pool: ControlPool | None, sprite: str,
              params: list[tuple[str, str]], *, tty: bool, what: str) -> WebSocket | ControlOp:
    """A new process's exec frames: over a control connection where the server offers
    one, else over a direct exec socket (see :attr:`ControlPool.supported`)."""
    direct = f"/v1/sprites/{segment(sprite)}/exec"
    if pool is None or pool.supported is False:
        return open_socket(session, direct, params, what=what)
    if pool.supported is None and session.is_local and not pool.offered:
        socket = open_socket(session, direct, params, what=what)
        pool.offered = "control" in capabilities(socket.response)
        if not pool.offered:
            pool.supported = False
        return socket
    op, refused = _start_on_control(session, pool, params, tty=tty, what=what)
    if op is not None:
        pool.supported = True
        return op
    socket = open_socket(session, direct, params, what=what)
    if refused and pool.supported is None:
        pool.supported = False
    return socket


def _start_on_control(session: HttpSession, pool: ControlPool, params: list[tuple[str, str]],
                      *, tty: bool, what: str) -> tuple[ControlOp | None, bool]:
    """The started operation, or None and whether the server refused control (an
    upgrade refused, or a new connection that failed before the process started)."""
    try:
        ws, fresh = pool.checkout()
    except (HTTPStatusError, ProtocolError) as err:  # a refused upgrade, a proxy's answer
        return None, not isinstance(err, RateLimited)
    except (SpritesError, OSError):
        return None, False  # unreachable: the direct socket says so
    op = ControlOp(pool, ws, tty=tty)
    try:
        with waking_notice(session, what):
            started = op.start(_op_args(params), max(session.timeout, OPEN_TIMEOUT))
    except TimeoutError:
        raise ConnectionFailed(f"{what}: the sprite did not answer within "
                               f"{OPEN_TIMEOUT:g} s", url=session.base_url) from None
    return (op, False) if started else (None, fresh)


def capabilities(response: Response | None) -> set[str]:
    """The tokens of an upgrade's ``X-Sprite-Capabilities`` (``signal``, ``control``)."""
    text = response.headers.get("X-Sprite-Capabilities", "") if response is not None else ""
    return {token.strip() for token in text.split(",") if token.strip()}
