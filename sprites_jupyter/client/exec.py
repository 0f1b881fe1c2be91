"""Exec over WebSocket: the frame protocol and the running-process handle, :class:`Command`.

The frames are :mod:`.exec_protocol`'s; TTY frames are raw terminal bytes and the exit
arrives as a text ``{"type": "exit"}`` message. Built on a thread-based WebSocket
(:mod:`.ws_connection`), so it works inside a Jupyter kernel's running event loop.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

from websockets.exceptions import ConnectionClosed

from .control_pool import ControlPool
from .errors import (
    ConnectionFailed,
    ExecError,
    ExecTimeout,
    NotFound,
    ProtocolError,
    SpritesError,
)
from .exec_control import ControlOp, capabilities, open_exec
from .exec_protocol import EXIT, STDERR, STDIN, STDIN_EOF, STDOUT, exec_params, signal_name
from .http import HttpSession, segment
from .models import ExecResult, OutputChunk
from .websocket import open_socket
from .ws_connection import WebSocket

CHUNK = 32 * 1024
INTERRUPT_GRACE = 2.0
KILL_GRACE = 2.0
SESSION_INFO_WAIT = 10.0
_TAIL = 2000


class Command:
    """A process running in a sprite, reached over one exec WebSocket (its own, or an
    operation on a pooled control connection: :mod:`.exec_control`).

    Iterate it for :class:`OutputChunk` s as they arrive; ``write``/``close_stdin`` feed
    it; ``signal``/``kill`` stop it; ``wait`` returns the exit code. A KeyboardInterrupt
    while iterating or waiting sends SIGINT, then SIGKILL after a grace period, before
    re-raising. Closing a command you started kills it if it still runs (use ``detach``
    to leave it running); closing an attachment only detaches.
    """

    def __init__(self, session: HttpSession, sprite: str, ws: WebSocket | ControlOp, *,
                 command: str, tty: bool, owner: bool) -> None:
        self.command = command
        self.tty = tty
        self.exit_code: int | None = None
        self.ports: list[dict[str, Any]] = []
        self._session = session
        self._sprite = sprite
        self._ws = ws
        self._owner = owner
        self._session_id: str | None = None
        self._pending: deque[str | bytes] = deque()
        self._stdin_open = True
        self._can_signal = "signal" in capabilities(ws.response)

    def __repr__(self) -> str:
        state = "running" if self.exit_code is None else f"exited {self.exit_code}"
        return f"<Command {self.command!r} on {self._sprite} ({state})>"

    # -- reading ---------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        """The exec session id (from ``session_info``), waiting briefly for it if needed."""
        if self._session_id is None and self.exit_code is None and not self._pending:
            with contextlib.suppress(TimeoutError, ConnectionClosed):
                self._pending.append(self._ws.recv(timeout=SESSION_INFO_WAIT))
                self._absorb_text()
        return self._session_id

    def __iter__(self) -> Iterator[OutputChunk]:
        while True:
            try:  # not self._interruptible(): it would cost a context manager per chunk
                chunk = self._next_chunk(None)
            except KeyboardInterrupt:
                self.interrupt()
                raise
            if chunk is None:
                return
            yield chunk

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit code; output not read yet is discarded.

        Raises :class:`ExecTimeout` after ``timeout`` seconds (the process keeps running).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._interruptible():
            while self._next_chunk(deadline) is not None:
                pass
        assert self.exit_code is not None
        return self.exit_code

    def follow(self, seconds: float | None = None) -> Iterator[OutputChunk]:
        """Output as it arrives, until the process exits or ``seconds`` pass. Unlike
        iterating, the end of ``seconds`` and Ctrl-C only detach: the process keeps
        running (watching a session one does not own)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            while (chunk := self._next_chunk(deadline)) is not None:
                yield chunk
        except ExecTimeout:
            self.detach()
        except KeyboardInterrupt:
            self.detach()
            raise

    def _receive(self, deadline: float | None) -> str | bytes:
        if self._pending:
            return self._pending.popleft()
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return self._ws.recv(timeout=remaining)
        except TimeoutError:
            raise ExecTimeout(f"command {self.command!r} is still running") from None
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            if self.tty and code == 1000:
                self.exit_code = 0
                return b""
            raise ProtocolError(f"the exec connection closed before the exit status arrived "
                                f"(close code {code})") from None

    def _next_chunk(self, deadline: float | None) -> OutputChunk | None:
        """The next output chunk, or ``None`` once the process has exited."""
        while self.exit_code is None:
            message = self._receive(deadline)
            if isinstance(message, str):
                self._on_text(message)
            elif not message:
                continue
            elif self.tty:
                return OutputChunk("stdout", message)
            elif message[0] in (STDOUT, STDERR):
                if len(message) > 1:
                    return OutputChunk("stdout" if message[0] == STDOUT else "stderr",
                                       message[1:])
            elif message[0] == EXIT:
                self._exited(message[1] if len(message) > 1 else 0)  # as sprites-go reads it
        return None

    def _absorb_text(self) -> None:
        """Handle a peeked text message at once (so ``session_info`` is not left pending)."""
        if self._pending and isinstance(first := self._pending[0], str):
            self._pending.popleft()
            self._on_text(first)

    def _on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "session_info":
            if message.get("session_id") is not None:
                self._session_id = str(message["session_id"])
            if isinstance(message.get("tty"), bool):
                self.tty = message["tty"]
        elif kind == "exit":
            code = message.get("exit_code")  # absent means 0 (Go's omitempty), as SDKs read it
            self._exited(code if isinstance(code, int) and not isinstance(code, bool) else 0)
        elif kind in ("port_opened", "port_closed"):
            self.ports.append(message)

    def _exited(self, code: int) -> None:
        self.exit_code = code
        self._close_socket()

    # -- writing and control ---------------------------------------------------

    def write(self, data: bytes | str) -> None:
        """Send bytes to the process's stdin."""
        if not self._stdin_open:
            raise SpritesError("stdin is closed: open the command with stdin=True and write "
                               "before close_stdin()")
        payload = data.encode() if isinstance(data, str) else bytes(data)
        start = 0
        while start < len(payload):
            end = start + CHUNK
            end -= end == len(payload) - 1  # no 1-byte last piece: over control, b"\x04" is EOF
            piece = payload[start:end]
            self._send(piece if self.tty else bytes([STDIN]) + piece, quiet=False)
            start = end

    def feed(self, data: bytes) -> threading.Thread:
        """Write ``data`` then end the input, from a thread of its own (so output keeps
        flowing meanwhile); a failure shows on the reading side. Returns that thread."""
        writer = threading.Thread(target=_feed, args=(self, data), daemon=True,
                                  name="sprites-exec-stdin")
        writer.start()
        return writer

    def close_stdin(self) -> None:
        """Send end-of-input (a TTY gets Ctrl-D as data)."""
        if self._stdin_open:
            self._stdin_open = False
            self._send(b"\x04" if self.tty else bytes([STDIN_EOF]))

    def resize(self, cols: int, rows: int) -> None:
        """Tell a TTY process its new terminal size."""
        self._send(json.dumps({"type": "resize", "cols": cols, "rows": rows}))

    def signal(self, sig: str | int) -> None:
        """Send a signal (``"INT"``, ``"SIGTERM"``, ``15``…) to the process group."""
        name = signal_name(sig)
        if self.exit_code is not None:
            return
        if self._can_signal or self.session_id is None:
            self._send(json.dumps({"type": "signal", "signal": name}))
            return
        path = f"/v1/sprites/{segment(self._sprite)}/exec/{segment(self.session_id)}/kill"
        try:
            response = self._session.stream("POST", path, what=f"signal {name}",
                                             params={"signal": name, "timeout": "0s"})
            response.close()
        except NotFound:
            pass

    def kill(self) -> None:
        """SIGKILL the process."""
        self.signal("KILL")

    def _send(self, message: str | bytes, *, quiet: bool = True) -> None:
        """Send one message; a closed connection is reported by the reading side
        (which still has the exit status queued), unless ``quiet`` is false."""
        try:
            self._ws.send(message)
        except ConnectionClosed:
            if not quiet:
                raise ConnectionFailed("the exec connection is closed (the process has "
                                       "ended?)", url=self._session.base_url) from None

    # -- ending ----------------------------------------------------------------

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        try:
            yield
        except KeyboardInterrupt:
            self.interrupt()
            raise

    def interrupt(self, grace: float = INTERRUPT_GRACE) -> None:
        """SIGINT the process, SIGKILL it if it is still running after ``grace`` seconds."""
        try:
            for sig, wait_for in (("INT", grace), ("KILL", KILL_GRACE)):
                if self.exit_code is not None:
                    break
                self.signal(sig)
                deadline = time.monotonic() + wait_for
                with contextlib.suppress(ExecTimeout):
                    while self._next_chunk(deadline) is not None:
                        pass
        except KeyboardInterrupt:
            with contextlib.suppress(SpritesError, OSError):
                self.signal("KILL")
        except (SpritesError, OSError):
            pass
        finally:
            self._close_socket()

    def detach(self) -> None:
        """Close the connection and leave the process running (see ``list_sessions``)."""
        self._close_socket()

    def close(self) -> None:
        """Release the connection; a command this handle started is killed if still running."""
        if self.exit_code is None and self._owner:
            with contextlib.suppress(SpritesError, OSError):
                self.signal("KILL")
                with contextlib.suppress(ExecTimeout):
                    self.wait(KILL_GRACE)
        self._close_socket()

    def _close_socket(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()

    def __enter__(self) -> Command:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.interrupt()
        self.close()


def start_command(session: HttpSession, sprite: str, argv: Sequence[str], *,
                  env: dict[str, str] | None = None, dir: str | None = None, tty: bool = False,
                  stdin: bool = True, max_run_after_disconnect: float | None = None,
                  size: tuple[int, int] | None = None,
                  pool: ControlPool | None = None) -> Command:
    """Start ``argv`` in ``sprite``; without ``stdin`` its input ends at once.

    ``max_run_after_disconnect`` (seconds, 0 = forever) is how long it may outlive
    the connection; the server's default applies when it is ``None``. ``size`` is a
    TTY's ``(cols, rows)`` at start. With a ``pool`` it runs over one of the sprite's
    control connections where the server offers them.
    """
    cols, rows = size if size is not None else (None, None)
    params = exec_params(argv, env=env, dir=dir, tty=tty, stdin=stdin, rows=rows, cols=cols,
                         max_run_after_disconnect=max_run_after_disconnect)
    command = " ".join(argv)
    ws = open_exec(session, pool, sprite, params, tty=tty, what=f"exec {command!r} on {sprite}")
    handle = Command(session, sprite, ws, command=command, tty=tty, owner=True)
    if isinstance(ws, ControlOp):  # its session_info came already: the id is known now
        handle._pending.append(ws.recv())
        handle._absorb_text()
    if not stdin and not tty:
        handle.close_stdin()
    return handle


def attach_command(session: HttpSession, sprite: str, session_id: str, *,
                   stdin: bool = False, tty: bool = False) -> Command:
    """Attach to a running session: its scrollback, then live output.

    As sprites-go does: ``/exec/{id}`` first, and on a 404 the legacy ``/exec?id=`` form
    (servers that have only that one speak TTY there). ``session_info`` may come after
    replayed output, so none is waited for; ``stdin=false`` unless input will be sent.
    """
    what = f"attach to session {session_id} on {sprite}"
    base = f"/v1/sprites/{segment(sprite)}/exec"
    flag = [("stdin", "true" if stdin else "false")]
    try:
        ws = open_socket(session, f"{base}/{segment(session_id)}", flag, what=what)
    except NotFound:
        ws = open_socket(session, base, [("id", session_id), *flag], what=what)
        tty = True
    handle = Command(session, sprite, ws, command=f"session {session_id}", tty=tty,
                     owner=False)
    handle._session_id = session_id
    return handle


def run_command(handle: Command, stdin: bytes | None, timeout: float | None,
                check: bool, started: float) -> ExecResult:
    """Collect a command's output to its end (the ``Sprite.run`` engine).

    ``started`` is the ``time.monotonic()`` at which the command was requested.
    """
    deadline = None if timeout is None else started + timeout
    out: list[bytes] = []
    err: list[bytes] = []
    writer = handle.feed(stdin) if stdin is not None else None
    try:
        with handle._interruptible():
            while (chunk := handle._next_chunk(deadline)) is not None:
                (out if chunk.stream == "stdout" else err).append(chunk.data)
    except ExecTimeout:
        handle.interrupt(grace=0)
        raise ExecTimeout(f"command {handle.command!r} did not finish within {timeout:g}s; "
                          "it was killed") from None
    finally:
        handle.close()
        if writer is not None:
            writer.join()
    assert handle.exit_code is not None
    result = ExecResult(stdout=b"".join(out).decode("utf-8", "replace"),
                        stderr=b"".join(err).decode("utf-8", "replace"),
                        exit_code=handle.exit_code, duration=time.monotonic() - started)
    if check and result.exit_code != 0:
        raise ExecError(handle.command, result.exit_code, result.stdout[-_TAIL:],
                        result.stderr[-_TAIL:])
    return result


def _feed(handle: Command, data: bytes) -> None:
    with contextlib.suppress(SpritesError, ConnectionClosed, OSError):
        handle.write(data)
        handle.close_stdin()
