"""One exec'd process: forked by the sprite's init in its own session, on pipes or a pty
(made by the init, inside the sandbox), read without blocking.

Output is read straight from the pipe or pty file descriptors with ``loop.add_reader``
and handed to an async sink, one chunk at a time, so a slow consumer slows the process
down instead of filling memory. Input goes through non-blocking writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ...errors import Invalid
from ..sandbox.child import Child, SpawnFailed
from ..sandbox.machine import Sandbox

STDOUT, STDERR = 1, 2
# stdout's pipe capacity. Modest: a user's pipes share a kernel budget (pipe-user-pages-
# soft, 64 MiB by default) past which new pipes get one page.
PIPE_SIZE = 256 * 1024
# A read takes what the pipe holds, up to all of it, and becomes one message (with its
# stream id, at most 256 KiB): the work per message (framing, the ASGI send, the client's
# parse and hand-off) is paid once per read, not once per 32 KiB, and every SDK reads
# messages this large (sprites-py up to 10 MiB, sprites-go and -js without a limit).
READ_SIZE = PIPE_SIZE - 1
# How long to keep reading after the process exited while nothing arrives: a background
# child may hold the output open forever, and must not keep the exit from being sent.
DRAIN_GRACE = 0.25
# Reads of a busy fd between two turns given to the rest of the server.
_READS_PER_TURN = 2

Sink = Callable[[int, bytes], Awaitable[None]]


class SpawnError(Exception):
    """The executable could not be started; ``exit_code`` is what a shell would report."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class ExecSpec:
    """What to run: argv, the executable, the environment and the working directory (a
    sprite path, e.g. ``/home/sprite``)."""

    argv: list[str]
    executable: str
    env: dict[str, str]
    cwd: str
    tty: bool = False
    stdin: bool = False
    rows: int = 24
    cols: int = 80


def exit_status(returncode: int) -> int:
    """A wait status as a shell reports it: signal deaths are 128+n, clamped into 0-255."""
    code = 128 - returncode if returncode < 0 else returncode
    return code if 0 <= code <= 255 else 255


def _set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


async def _wait_fd(fd: int, *, writable: bool = False) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    add, remove = (loop.add_writer, loop.remove_writer) if writable else (
        loop.add_reader, loop.remove_reader)
    add(fd, wake)
    try:
        await ready
    finally:
        remove(fd)


class ExecProcess:
    """A running process whose output :meth:`pump` delivers and whose input :meth:`write` feeds."""

    def __init__(self, process: Child, spec: ExecSpec,
                 outputs: list[tuple[int, int]], stdin_fd: int | None) -> None:
        self.process = process
        self.pid = process.pid
        self.tty = spec.tty
        self._outputs = outputs
        self._stdin_fd = stdin_fd
        self._write_lock = asyncio.Lock()
        self._bytes_read = 0
        self._in_sink = 0
        self._finished = False

    @classmethod
    async def spawn(cls, spec: ExecSpec, sandbox: Sandbox) -> ExecProcess:
        """Start ``spec`` in a new session in the sprite's sandbox.

        Raises :class:`SpawnError` when the executable cannot run, Invalid when the working
        directory does not exist in the sprite.
        """
        cwd = sandbox.location(spec.cwd)
        executable = sandbox.executable(spec.executable)
        parent_fds: list[int] = []
        child_fds: list[int] = []
        try:
            if spec.tty:
                process, master = await sandbox.spawn(
                    spec.argv, executable, spec.env, cwd, tty=True, rows=spec.rows,
                    cols=spec.cols)
                assert master is not None
                os.set_blocking(master, False)
                return cls(process, spec, [(master, STDOUT)], master)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            parent_fds += [out_r, err_r]
            child_fds += [out_w, err_w]
            outputs = [(out_r, STDOUT), (err_r, STDERR)]
            if spec.stdin:
                in_r, in_w = os.pipe()
                parent_fds.append(in_w)
                child_fds.append(in_r)
                stdin, stdin_fd = in_r, in_w
            else:
                stdin = os.open(os.devnull, os.O_RDONLY)
                child_fds.append(stdin)
                stdin_fd = None
            for fd in parent_fds:
                os.set_blocking(fd, False)
            _widen_pipe(out_r)
            process, _ = await sandbox.spawn(spec.argv, executable, spec.env, cwd,
                                             stdio=(stdin, out_w, err_w))
        except SpawnFailed as exc:
            _close_all(parent_fds)
            if exc.stage == "cwd":
                raise Invalid(f"working directory {spec.cwd!r} does not exist in the "
                              "sprite: create it first or pass another dir") from None
            if exc.errno == errno.ENOENT:
                raise SpawnError(127, f"{spec.executable}: command not found") from None
            if exc.errno == errno.EACCES:
                raise SpawnError(126, f"{spec.executable}: permission denied") from None
            raise SpawnError(126, f"{spec.executable}: {exc.strerror}") from None
        except BaseException:
            _close_all(parent_fds)
            raise
        finally:
            _close_all(child_fds)
        return cls(process, spec, outputs, stdin_fd)

    async def pump(self, sink: Sink) -> int:
        """Deliver all output to ``sink``; return the exit status once output is drained."""
        readers = [asyncio.create_task(self._read(fd, stream, sink))
                   for fd, stream in self._outputs]
        try:
            returncode = await self.process.wait()
            pending = {task for task in readers if not task.done()}
            progress = self._bytes_read
            while pending:
                _, pending = await asyncio.wait(pending, timeout=DRAIN_GRACE)
                if pending and self._bytes_read == progress and not self._in_sink:
                    break
                progress = self._bytes_read
            if self.process.ended_by is not None:
                await sink(STDERR, f"{self.process.ended_by}\n".encode())
        finally:
            self._finished = True
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            async with self._write_lock:
                fds = [fd for fd, _ in self._outputs]
                if self._stdin_fd is not None and not self.tty:
                    fds.append(self._stdin_fd)
                self._outputs, self._stdin_fd = [], None
                _close_all(fds)
        return exit_status(returncode)

    async def _read(self, fd: int, stream: int, sink: Sink) -> None:
        """Read until the fd would block, then wait for it again (a turn for others now
        and then, so a fast writer does not hold the server)."""
        reads = 0
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                await _wait_fd(fd)
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # a pty whose every slave end is closed
                    return
                raise
            if not data:
                return
            self._bytes_read += len(data)
            self._in_sink += 1
            try:
                await sink(stream, data)
            finally:
                self._in_sink -= 1
            reads += 1
            if reads % _READS_PER_TURN == 0:
                await asyncio.sleep(0)

    async def write(self, data: bytes) -> None:
        """Feed ``data`` to stdin (the pty in TTY mode); dropped once input is closed."""
        async with self._write_lock:
            view = memoryview(data)
            while view and self._stdin_fd is not None and not self._finished:
                try:
                    written = os.write(self._stdin_fd, view)
                except BlockingIOError:
                    # Bounded waits: a process that stopped reading must not pin the lock.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(_wait_fd(self._stdin_fd, writable=True),
                                               DRAIN_GRACE)
                    continue
                except OSError:  # the reader is gone (EPIPE, or EIO on a closed pty)
                    return
                view = view[written:]

    async def close_stdin(self) -> None:
        """End of input for a piped stdin; a pty has no EOF (send Ctrl-D as data instead)."""
        if self.tty:
            return
        async with self._write_lock:
            fd, self._stdin_fd = self._stdin_fd, None
            if fd is not None:
                os.close(fd)

    def resize(self, rows: int, cols: int) -> None:
        """Set the pty's window size; the kernel sends SIGWINCH to the foreground group."""
        if self.tty and self._stdin_fd is not None:
            _set_winsize(self._stdin_fd, rows, cols)

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process group; a group already gone is not an error."""
        self.process.signal_group(sig)


def _widen_pipe(fd: int) -> None:
    """Give the stdout pipe PIPE_SIZE bytes (best effort): a fast writer then runs ahead
    further before it blocks, and each read returns a full frame more often."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
