"""The connection to the Python agent on a sprite: start, attach, requests, replies.

The agent (:mod:`sprites_jupyter.remote.python_agent`) is uploaded through the
filesystem API under a name that carries its hash (so a changed agent is uploaded
again), then started as an exec session that outlives the connection. Replies are
JSON lines on its stdout; a reader thread turns them into a queue, so the kernel's
main thread stays free to take Ctrl-C and send SIGINT to the sprite.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import queue
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from IPython.core.error import UsageError

from ...client import Command, NotFound, Sprite, SpritesError

__all__ = ["STATE_DIR", "PythonSession", "SessionEnded", "agent_dir"]

STATE_DIR = ".sprites_jupyter/python"
HOME = "/home/sprite"
PYTHON = "python3"
HANDSHAKE_WAIT = 60.0
STOP_WAIT = 5.0
# How long an agent outlives its last connection (a kernel restart, a dropped network).
# A finite week rather than 0: the reference promises 0 = forever only for TTY sessions.
DETACHED_LIFETIME = 7 * 24 * 3600.0
_NO_PYTHON = 127
_OLD_PYTHON = 3


class SessionEnded(Exception):
    """The agent's process ended (or can no longer be reached) before it replied."""


AGENT_FILES = ("python_agent.py", "python_agent_io.py", "python_agent_values.py",
               "python_agent_parts.py", "python_agent_process.py",
               "python_state.py", "cell_runner.py")


def _agent_sources() -> dict[str, bytes]:
    folder = resources.files("sprites_jupyter.remote")
    return {name: folder.joinpath(name).read_bytes() for name in AGENT_FILES}


def agent_dir() -> str:
    """Where this version of the agent lives on the sprite (relative to the home): a
    folder named by the hash of its files, so a changed agent is uploaded anew."""
    digest = hashlib.sha256()
    for name, source in _agent_sources().items():
        digest.update(name.encode() + b"\0" + source)
    return f"{STATE_DIR}/agent-{digest.hexdigest()[:12]}"


def _upload_agent(sprite: Sprite) -> str:
    """The agent's entry point on the sprite, uploading its files when missing."""
    folder = agent_dir()
    entry = f"{folder}/{AGENT_FILES[0]}"
    try:
        sprite.stat(f"{HOME}/{entry}")
    except NotFound:
        for name, source in sorted(_agent_sources().items(), reverse=True):
            sprite.write_file(f"{HOME}/{folder}/{name}", source)
    return entry


class PythonSession:
    """One agent process on one sprite, as seen from this kernel."""

    def __init__(self, sprite: Sprite, command: Command) -> None:
        self.sprite = sprite
        self.command = command
        self.session_id = command.session_id or ""
        self.started_at = datetime.now(UTC)
        self.python = PYTHON
        self.info: dict[str, Any] = {}
        self.exit_code: int | None = None
        self.lost = False
        # Held while a request is in flight: replies are read from one queue, so a
        # checkpoint taken from another thread (the browser) must not read alongside.
        self.in_use = threading.RLock()
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._prefix = uuid.uuid4().hex[:8]
        self._ids = itertools.count(1)
        self._stderr: deque[str] = deque(maxlen=20)
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f"sprite-python-{sprite.name}")
        self._reader.start()

    # -- starting ----------------------------------------------------------------

    @classmethod
    def start(cls, sprite: Sprite, python: str | None = None) -> PythonSession:
        """Upload the agent if needed and start it on ``python`` (default ``python3``);
        one-line errors for a missing or too old interpreter."""
        path = _upload_agent(sprite)
        interpreter = python or PYTHON
        command = sprite.command(interpreter, "-u", path,
                                 max_run_after_disconnect=DETACHED_LIFETIME)
        session = cls(sprite, command)
        session.python = interpreter
        session._handshake()
        return session

    @classmethod
    def attach(cls, sprite: Sprite, session_id: str) -> PythonSession:
        """Reconnect to a running agent (its replayed output is skipped)."""
        session = cls(sprite, sprite.attach(session_id, stdin=True))
        session._handshake()
        return session

    def _handshake(self) -> None:
        try:
            done = self.call("hello", timeout=HANDSHAKE_WAIT, session_id=self.session_id)
        except SessionEnded:
            raise UsageError(self._start_failure()) from None
        if done.get("status") != "ok":
            raise UsageError(f"The Python agent on sprite {self.sprite.name} did not start: "
                             f"{done.get('ename')}: {done.get('evalue')}")
        self.info = done
        started = done.get("started")
        if isinstance(started, int | float):
            self.started_at = datetime.fromtimestamp(started, UTC)

    def _start_failure(self) -> str:
        self._reader.join(STOP_WAIT)
        name = self.sprite.name
        if self.exit_code == _NO_PYTHON and self.python != PYTHON:
            return (f"Sprite {name} has no {self.python}: give the path of a Python 3.8 or "
                    "newer there (e.g. --python /home/sprite/.venv/bin/python)")
        if self.exit_code == _NO_PYTHON:
            return (f"Sprite {name} has no {PYTHON}: install Python 3.8 or newer there "
                    f"(e.g. %sprite exec apt-get install -y python3) to use %%sprite_python")
        detail = self.stderr_tail() or (f"exit code {self.exit_code}" if self.exit_code
                                        is not None else "no answer")
        if self.exit_code == _OLD_PYTHON:
            return f"Sprite {name}: {detail} (%%sprite_python needs it)"
        return f"The Python agent on sprite {name} did not start: {detail}"

    def stderr_tail(self) -> str:
        """The last line the agent's process wrote to its own stderr, if any."""
        lines = "".join(self._stderr).strip().splitlines()
        return lines[-1] if lines else ""

    # -- the connection ----------------------------------------------------------

    def _read(self) -> None:
        pending = b""
        try:
            for chunk in self.command:
                if chunk.stream == "stderr":
                    self._stderr.append(chunk.data.decode(errors="replace"))
                    continue
                pending += chunk.data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    with contextlib.suppress(ValueError):
                        message = json.loads(line)
                        if isinstance(message, dict):
                            self._messages.put(message)
            self.exit_code = self.command.exit_code
        except (SpritesError, OSError):
            self.lost = True
        finally:
            self._messages.put(None)

    @property
    def alive(self) -> bool:
        """Still connected to a running agent."""
        return self.exit_code is None and not self.lost

    def request(self, op: str, **fields: Any) -> str:
        """Send one request; returns its id (replies carry it)."""
        if not self.alive:
            raise SessionEnded(op)
        request_id = f"{self._prefix}-{next(self._ids)}"
        line = json.dumps({"op": op, "id": request_id, **fields}) + "\n"
        try:
            self.command.write(line.encode())
        except SpritesError as error:
            self._reader.join(STOP_WAIT)
            self.lost = self.lost or self.exit_code is None
            raise SessionEnded(op) from error
        return request_id

    def next_message(self, request_id: str, timeout: float) -> dict[str, Any] | None:
        """The next event or the final ``done`` of ``request_id`` (``None`` on timeout).

        Output sent between requests (``id`` null) is passed on too; replies to other
        requests (an abandoned cell, another kernel's) are skipped.
        """
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = self._messages.get(timeout=remaining)
            except queue.Empty:
                return None
            if message is None:
                self._messages.put(None)
                raise SessionEnded(request_id)
            if message.get("id") in (request_id, None):
                return message
        return None

    def call(self, op: str, *, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """A request whose only interesting reply is its ``done`` message."""
        with self.in_use:
            return self._call(op, timeout, fields)

    def _call(self, op: str, timeout: float | None, fields: dict[str, Any]) -> dict[str, Any]:
        return self.wait_done(self.request(op, **fields), timeout)

    def wait_done(self, request_id: str, timeout: float | None = None) -> dict[str, Any]:
        """The ``done`` message of a request sent with :meth:`request` (hold ``in_use``
        from the request on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 0.5 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise SessionEnded(request_id)
            message = self.next_message(request_id, min(left, 0.5))
            if message is not None and message.get("type") == "done" \
                    and message.get("id") == request_id:
                return message

    def capabilities(self) -> dict[str, bool]:
        """What the session can import, asked again (a package may have been installed)."""
        done = self.call("has", timeout=HANDSHAKE_WAIT)
        if done.get("status") == "ok" and isinstance(done.get("value"), dict):
            self.info["has"] = done["value"]
        return dict(self.info.get("has") or {})

    def interrupt(self) -> None:
        """SIGINT the agent's process group: ``KeyboardInterrupt`` in the running cell."""
        with contextlib.suppress(SpritesError, OSError):
            self.command.signal("INT")

    def wait_ended(self, timeout: float) -> None:
        """Give an ending process ``timeout`` seconds to be seen as ended."""
        self._reader.join(timeout)

    def kill(self) -> None:
        """End the agent's process without the ``exit`` request (which would discard
        its saved namespace)."""
        with contextlib.suppress(SpritesError, OSError):
            self.command.kill()
        self._reader.join(STOP_WAIT)
        self.lost = self.lost or self.exit_code is None

    def stop(self) -> None:
        """Ask the agent to exit; kill it if it does not within a few seconds."""
        with contextlib.suppress(SessionEnded):
            self.request("exit")
        self._reader.join(STOP_WAIT)
        if self._reader.is_alive():
            with contextlib.suppress(SpritesError, OSError):
                self.command.kill()
            self._reader.join(STOP_WAIT)
        self.command.detach()
        self.exit_code = self.exit_code if self.exit_code is not None else 0

    def detach(self) -> None:
        """Leave the agent running (``%sprite python attach`` finds it again)."""
        self.command.detach()
        self._reader.join(STOP_WAIT)
