"""Exec sessions of one sprite: processes that outlive their sockets, with scrollback.

A :class:`Session` owns one :class:`~.exec_process.ExecProcess`. Its output goes into an
:class:`~.output_log.OutputLog`; every socket (or HTTP exec response) reading it is an
:class:`Attachment` with its own cursor. When the last attachment leaves, the process
keeps running for ``max_run_after_disconnect`` seconds (0 = forever), then is killed.
Attachments also get ``port_opened``/``port_closed`` notices, from polling ``/proc``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import signal
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from ...wire import rfc3339
from ..sandbox.machine import Sandbox
from .output_log import SCROLLBACK_BYTES, OutputLog
from .ports import listening_ports
from .process import ExecProcess, ExecSpec

# Output is held back from the process when an attacher is this far behind.
MAX_LAG_BYTES = 2 * SCROLLBACK_BYTES
ACTIVE_WINDOW = 10.0
RATE_WINDOW = 5.0
EXITED_REMEMBERED = 1024
TERMINATE_WAIT = 10.0
PORT_POLL = 1.0
# How stale a sprite's last_running_at may get while it runs commands.
RUNNING_NOTE_INTERVAL = 1.0

Notice = dict[str, Any]

log = logging.getLogger(__name__)


class _Changed:
    """Wake every waiter whenever the session's output, cursors or state change."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._event.wait()


class Attachment:
    """One reader of a session's output, at its own byte offset, with its pending notices."""

    def __init__(self, cursor: int) -> None:
        self.cursor = cursor
        self.notices: list[Notice] = []


class Session:
    """A running exec'd process, its output log and the attachments reading it."""

    def __init__(self, process: ExecProcess, spec: ExecSpec, *, workdir: str,
                 max_run_after_disconnect: float) -> None:
        self.process = process
        self.id = str(process.pid)
        self.argv = spec.argv
        self.tty = spec.tty
        self.stdin = spec.stdin
        self.rows, self.cols = (spec.rows, spec.cols) if spec.tty else (0, 0)
        self.workdir = workdir
        self.max_run_after_disconnect = max_run_after_disconnect
        self.created = time.time()
        self.last_activity = self.created
        self.exit_code: int | None = None
        self._spec = spec
        self._log = OutputLog()
        self._attachments: set[Attachment] = set()
        self._changed = _Changed()
        self._recent: deque[tuple[float, int]] = deque()
        self._expiry: asyncio.TimerHandle | None = None
        self._ports: set[tuple[int, str, int]] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        """Whether the process exited and all of its output is in the log."""
        return self.exit_code is not None

    def start(self, on_done: Callable[[Session], None]) -> None:
        """Begin reading the process's output."""
        self._task = asyncio.create_task(self._run(on_done), name=f"exec-{self.id}")

    async def _run(self, on_done: Callable[[Session], None]) -> None:
        code = 255
        try:
            code = await self.process.pump(self._append)
        except Exception:
            log.exception("reading the output of exec session %s failed", self.id)
            self.process.signal(signal.SIGKILL)
        finally:
            if self._expiry is not None:
                self._expiry.cancel()
            self.exit_code = code
            self._changed.notify()
            on_done(self)

    async def _append(self, stream: int, data: bytes) -> None:
        await self._changed.wait_for(lambda: self._lag() < MAX_LAG_BYTES)
        now = time.time()
        self.last_activity = now
        self._recent.append((now, len(data)))
        self._forget_old_output(now)
        self._log.append(stream, data)
        self._log.trim(self._slowest())
        self._changed.notify()

    def _forget_old_output(self, now: float) -> None:
        while self._recent and self._recent[0][0] < now - RATE_WINDOW:
            self._recent.popleft()

    def _slowest(self) -> int:
        return min((a.cursor for a in self._attachments), default=self._log.end)

    def _lag(self) -> int:
        return self._log.end - self._slowest()

    def attach(self) -> Attachment:
        """A new reader starting at the scrollback; stops any disconnect countdown."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        attachment = Attachment(self._log.start)
        self._attachments.add(attachment)
        return attachment

    def detach(self, attachment: Attachment) -> None:
        """Forget a reader; when it was the last, start the disconnect countdown."""
        self._attachments.discard(attachment)
        self._changed.notify()
        if not self._attachments and not self.done and self.max_run_after_disconnect > 0:
            self._expiry = asyncio.get_running_loop().call_later(
                self.max_run_after_disconnect, self.signal, signal.SIGKILL)

    async def output(self, attachment: Attachment
                     ) -> AsyncIterator[tuple[int, bytes] | Notice]:
        """Yield ``(stream, data)`` from the cursor, and notices, until all output is read."""
        while True:
            await self._changed.wait_for(lambda: attachment.cursor < self._log.end
                                         or bool(attachment.notices) or self.done)
            notices, attachment.notices = attachment.notices, []
            for notice in notices:
                yield notice
            chunks = self._log.read(attachment.cursor)
            if not chunks and not notices:
                return
            for stream, data in chunks:
                yield stream, data
                attachment.cursor += len(data)
                self._changed.notify()

    async def wait(self) -> int:
        """The exit status, once the process is done."""
        await self._changed.wait_for(lambda: self.done)
        assert self.exit_code is not None
        return self.exit_code

    async def wait_closed(self) -> None:
        """Until the process is done and every attachment has left."""
        await self._changed.wait_for(lambda: self.done and not self._attachments)

    async def write(self, data: bytes) -> None:
        """Input from any attachment; dropped when the session was started without stdin."""
        if self.stdin and data:
            self.last_activity = time.time()
            await self.process.write(data)

    async def close_stdin(self) -> None:
        await self.process.close_stdin()

    def resize(self, rows: int, cols: int) -> None:
        if self.tty and rows > 0 and cols > 0:
            self.rows, self.cols = rows, cols
            self.process.resize(rows, cols)

    def signal(self, sig: signal.Signals) -> None:
        """Signal the session's process group."""
        if not self.done:
            self.process.signal(sig)

    def update_ports(self, listening: set[tuple[int, str, int]]) -> None:
        """Tell the attachments which ports opened or closed since the last look."""
        changes = [("port_opened", entry) for entry in sorted(listening - self._ports)]
        changes += [("port_closed", entry) for entry in sorted(self._ports - listening)]
        self._ports = listening
        for kind, (port, address, pid) in changes:
            for attachment in self._attachments:
                attachment.notices.append(
                    {"type": kind, "port": port, "address": address, "pid": pid})
        if changes:
            self._changed.notify()

    @functools.cached_property
    def _resolved(self) -> str:
        """The executable's path, looked up when first listed (not on every start)."""
        return _resolve_executable(self._spec)

    def info(self, *, is_owner: bool) -> dict[str, Any]:
        """The ``session_info`` message sent first on every exec and attach socket."""
        return {"type": "session_info", "session_id": self.id, "command": " ".join(self.argv),
                "created": int(self.created), "cols": self.cols, "rows": self.rows,
                "is_owner": is_owner, "tty": self.tty}

    def summary(self) -> dict[str, Any]:
        """The session object of ``GET /exec`` (reference section 4.1)."""
        now = time.time()
        self._forget_old_output(now)
        return {
            "id": self.id,
            "command": " ".join([self._resolved, *self.argv[1:]]),
            "workdir": self.workdir,
            "created": rfc3339(self.created),
            "bytes_per_second": round(sum(size for _, size in self._recent) / RATE_WINDOW),
            "is_active": now - self.last_activity < ACTIVE_WINDOW,
            "last_activity": rfc3339(self.last_activity),
            "tty": self.tty,
        }


def _resolve_executable(spec: ExecSpec) -> str:
    if "/" in spec.executable:
        return spec.executable
    path = spec.env.get("PATH", os.defpath)
    return shutil.which(spec.executable, path=path) or spec.executable


class SessionManager:
    """The exec sessions (processes started over exec) of one sprite."""

    def __init__(self, sprite: str, sandbox: Sandbox) -> None:
        self.sprite = sprite
        self.sandbox = sandbox
        self._sessions: dict[str, Session] = {}
        self._exited: OrderedDict[str, int] = OrderedDict()
        self._port_watch: asyncio.Task[None] | None = None
        self._running_noted_at = -RUNNING_NOTE_INTERVAL

    def running_note_due(self) -> bool:
        """Whether the sprite's ``last_running_at`` should be written now: at most once
        per RUNNING_NOTE_INTERVAL, so a loop of short commands does not pay a database
        write on the event loop per command."""
        now = time.monotonic()
        if now - self._running_noted_at < RUNNING_NOTE_INTERVAL:
            return False
        self._running_noted_at = now
        return True

    async def start(self, spec: ExecSpec, *, workdir: str, max_run_after_disconnect: float
                    ) -> tuple[Session, Attachment]:
        """Spawn ``spec`` as a new session attached to its owner; raises ``SpawnError``."""
        process = await ExecProcess.spawn(spec, self.sandbox)
        session = Session(process, spec, workdir=workdir,
                          max_run_after_disconnect=max_run_after_disconnect)
        owner = session.attach()
        self._sessions[session.id] = session
        self._exited.pop(session.id, None)
        session.start(self._forget)
        if self._port_watch is None or self._port_watch.done():
            self._port_watch = asyncio.create_task(self._watch_ports())
        return session, owner

    async def _watch_ports(self) -> None:
        """Poll the listening ports of every session's process group while sessions live."""
        while self._sessions:
            await asyncio.sleep(PORT_POLL)
            sessions = [s for s in self._sessions.values() if not s.done]
            if not sessions or not self.sandbox.running:
                continue
            proc = await self.sandbox.proc_root()
            found = await asyncio.to_thread(listening_ports, {int(s.id) for s in sessions}, proc)
            for session in sessions:
                session.update_ports(found.get(int(session.id), set()))

    def _forget(self, session: Session) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        self._exited[session.id] = session.exit_code or 0
        while len(self._exited) > EXITED_REMEMBERED:
            self._exited.popitem(last=False)

    def get(self, sid: str) -> Session | None:
        """The live session with id ``sid``."""
        return self._sessions.get(sid)

    def exited_with(self, sid: str) -> int | None:
        """The exit status of ``sid`` if it was a session of this sprite that has exited."""
        return self._exited.get(sid)

    def list(self) -> list[dict[str, Any]]:
        """The live sessions as the objects of ``GET /exec``."""
        return [session.summary() for session in self._sessions.values()]

    async def terminate_all(self) -> None:
        """Kill every session's process group; attached sockets get exit 137 and are closed."""
        sessions = list(self._sessions.values())
        for session in sessions:
            session.signal(signal.SIGKILL)
        if sessions:
            waiters = [asyncio.create_task(s.wait_closed()) for s in sessions]
            await asyncio.wait(waiters, timeout=TERMINATE_WAIT)
            for waiter in waiters:
                waiter.cancel()
        if self._port_watch is not None:
            self._port_watch.cancel()
