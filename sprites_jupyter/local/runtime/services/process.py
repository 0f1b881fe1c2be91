"""One launched service process: its process group, output pumps, log file and exit.

Each service runs in the sprite's sandbox in its own session (so its own process
group); its stdout and stderr are split into lines, appended to the service's log file
(in the platform directory, ``/.sprite/logs/services`` inside) with an RFC 3339 time
stamp and ``[stdout]``/``[stderr]``, and handed to the supervisor as ServiceLogEvents.
Unsandboxed, process groups are also recorded in a small file outside the sprite's
tree, so a server killed with SIGKILL can end its orphans when it comes back (a
sandbox needs no record: its processes end with its init).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from ...storage.paths import SPRITE_HOME
from ...wire import now_ms, rfc3339
from ..sandbox.child import Child, SpawnFailed
from ..sandbox.machine import Sandbox
from .definitions import ServiceDef

log = logging.getLogger("sprites_jupyter.local.services")

Event = dict[str, Any]
_CHUNK = 65536  # the longest piece of a line sent as one event
_READ = 65536  # one event per read: large reads, few objects per byte
_PUMP_GRACE = 2.0
_PAUSE_FACTOR = 2.0  # a pump's pause after a read, in units of the time that read took
_ENV_PASSED = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")
_LOG_LINE = re.compile(r"^(\S+) \[(stdout|stderr)\] ")
# Receives one read's output: the stream's name, its text (whole lines, or a piece of one
# line) and its time stamp (Unix ms).
OutputSink = Callable[[str, str, int], None]


def service_event(kind: str, **fields: Any) -> Event:
    """A ServiceLogEvent with its Unix-millisecond ``timestamp``."""
    return {"type": kind, **fields, "timestamp": now_ms()}


def exit_code_of(returncode: int) -> int:
    """A process's exit code, with death by signal N reported as 128 + N, as shells do."""
    return returncode if returncode >= 0 else 128 - returncode


def service_env(sandbox: Sandbox, definition: ServiceDef) -> dict[str, str]:
    """The base environment (PATH, locale, HOME as the sprite sees it) plus ``env``."""
    base = {key: os.environ[key] for key in _ENV_PASSED if key in os.environ}
    base.update(sandbox.base_env(), USER="sprite", LOGNAME="sprite")
    return {**base, **definition.env}


def read_log(path: Path, lines: int | None) -> list[Event]:
    """The last ``lines`` lines (all when None) of a service log (its rotated part
    first), as stdout/stderr events: consecutive lines of one read (same stream, same
    time stamp) in one event, as they were followed."""
    tail: deque[str] = deque(maxlen=lines)
    for part in (rotated(path), path):
        try:
            handle = part.open(encoding="utf-8", errors="replace", newline="\n")
        except FileNotFoundError:
            continue
        with handle:
            tail.extend(handle)
    events: list[Event] = []
    pieces: list[str] = []
    last: tuple[str, str] | None = None
    for line in tail:
        match = _LOG_LINE.match(line)
        if match is None:
            continue
        time_text, stream = match.group(1), match.group(2)
        if (time_text, stream) != last:
            if pieces:
                events[-1]["data"] = "".join(pieces)
            last = (time_text, stream)
            try:
                stamp = int(datetime.fromisoformat(time_text).timestamp() * 1000)
            except ValueError:
                stamp = now_ms()
            events.append({"type": stream, "data": "", "timestamp": stamp})
            pieces = []
        pieces.append(line[match.end():])
    if pieces:
        events[-1]["data"] = "".join(pieces)
    return events


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a live process from a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


class ProcessGroups:
    """A record of the service process groups this sprite has running, kept on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, list[Any]]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _write(self, records: dict[str, list[Any]]) -> None:
        """Best effort: without the record only the orphan clean-up is lost."""
        try:
            if not records:
                self.path.unlink(missing_ok=True)
                return
            temp = self.path.with_name(self.path.name + ".tmp")
            temp.write_text(json.dumps(records))
            os.replace(temp, self.path)
        except OSError as exc:
            log.warning("cannot record service process groups in %s: %s", self.path, exc)

    def add(self, name: str, pid: int) -> None:
        self._write({**self._read(), name: [pid, _start_time(pid)]})

    def remove(self, name: str, pid: int) -> None:
        records = self._read()
        if records.get(name, [None])[0] == pid:
            del records[name]
            self._write(records)

    def kill_orphans(self) -> None:
        """SIGKILL groups left by an earlier server that died without stopping them."""
        if not self.path.parent.is_dir():
            return
        for pid, started in self._read().values():
            if started is not None and _start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        self._write({})


async def _reader(fd: int) -> asyncio.StreamReader:
    """An asyncio stream reading the pipe ``fd`` (which it then owns)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2 * _CHUNK, loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop),
                                 os.fdopen(fd, "rb", buffering=0))
    return reader


def rotated(path: Path) -> Path:
    """Where a service log's previous part goes when it reaches its cap."""
    return path.with_name(path.name + ".1")


class _LogFile:
    """A service's log file, rotated once it would pass ``max_bytes`` (0: never): the
    full file becomes ``NAME.log.1`` (replacing an older one) and a new one starts, so a
    chatty service keeps at most twice the cap on disk."""

    def __init__(self, path: Path, max_bytes: int = 0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._max = max_bytes
        self._file: TextIO = path.open("a", encoding="utf-8")
        self._size = self._file.tell()

    def write(self, kind: str, stamp: float, text: str) -> None:
        """Append ``text`` (whole lines, each ending in a newline) under one time stamp,
        rotating between lines whenever the next would pass the cap (a starved pump hands
        over large batches)."""
        prefix = f"{rfc3339(stamp)} [{kind}] "
        if not self._max or self._size + len(text) * 4 <= self._max:  # fits, however encoded
            self._append([prefix + text[:-1].replace("\n", "\n" + prefix) + "\n"])
            return
        lines = [line + "\n" for line in text[:-1].split("\n")]
        part: list[str] = []
        part_size = 0
        for line in lines:
            size = len(prefix) + len(line.encode("utf-8", "surrogateescape"))
            if self._max and self._size + part_size + size > self._max and (
                    part or self._size):
                self._append(part)
                self._rotate()
                part, part_size = [], 0
            part.append(prefix + line)
            part_size += size
        self._append(part)

    def _append(self, entries: list[str]) -> None:
        if entries:
            text = "".join(entries)
            self._file.write(text)
            self._file.flush()
            self._size += len(text.encode("utf-8", "surrogateescape"))

    def _rotate(self) -> None:
        self._file.close()
        os.replace(self._path, rotated(self._path))
        self._file = self._path.open("a", encoding="utf-8")
        self._size = 0

    def close(self) -> None:
        self._file.close()


class ServiceProcess:
    """A running service; :attr:`exited` is set once its output is drained and it is reaped."""

    def __init__(self, proc: Child, outputs: tuple[asyncio.StreamReader, asyncio.StreamReader],
                 log: _LogFile, emit: OutputSink,
                 on_exit: Callable[[ServiceProcess], None]) -> None:
        self._proc = proc
        self._log = log
        self._emit = emit
        self.pid = proc.pid
        self.exited = asyncio.Event()
        self.exit_code: int | None = None
        self.ended_by: str | None = None
        """Why the sprite's limits ended it, when they did (see ``Child.ended_by``)."""
        self._pumps = [asyncio.create_task(self._pump(outputs[0], "stdout")),
                       asyncio.create_task(self._pump(outputs[1], "stderr"))]
        self._watcher = asyncio.create_task(self._watch(on_exit))

    @classmethod
    async def launch(cls, definition: ServiceDef, sandbox: Sandbox, log_path: Path,
                     emit: OutputSink,
                     on_exit: Callable[[ServiceProcess], None]) -> ServiceProcess:
        """Start the process; raises OSError (or Invalid for a bad ``dir``) if it cannot."""
        directory = definition.dir or SPRITE_HOME
        cwd = sandbox.location(directory)
        log = _LogFile(log_path, sandbox.isolation.limits.service_log_bytes)
        fds = [*os.pipe(), *os.pipe(), os.open(os.devnull, os.O_RDONLY)]
        out_r, out_w, err_r, err_w, null = fds
        try:
            proc, _ = await sandbox.spawn([definition.cmd, *definition.args],
                                          sandbox.executable(definition.cmd),
                                          service_env(sandbox, definition), cwd,
                                          stdio=(null, out_w, err_w))
            outputs = (await _reader(out_r), await _reader(err_r))
        except BaseException as exc:
            log.close()
            for fd in (out_r, err_r):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if isinstance(exc, SpawnFailed) and exc.stage == "cwd":
                raise OSError(exc.errno, exc.strerror, directory) from None
            if isinstance(exc, SpawnFailed):
                raise OSError(exc.errno, exc.strerror, definition.cmd) from None
            raise
        finally:
            for fd in (out_w, err_w, null):
                os.close(fd)
        return cls(proc, outputs, log, emit, on_exit)

    async def _pump(self, stream: asyncio.StreamReader, kind: str) -> None:
        """Per chunk read: one time stamp, one log write, one emit, then a pause twice as
        long as that took (the pipe's reads and the followers' sends cost about as much
        again), so a service writing without pause gets at most about two thirds of the
        server's time (its pipe fills and it waits) and other requests still get answered."""
        pending = b""
        while chunk := await stream.read(_READ):
            started = time.perf_counter()
            pending += chunk
            cut = pending.rfind(b"\n") + 1
            if cut == 0 and len(pending) >= _CHUNK:
                cut = len(pending)
            if cut:
                self._output(kind, pending[:cut])
                pending = pending[cut:]
            await asyncio.sleep(_PAUSE_FACTOR * (time.perf_counter() - started))
        if pending:
            self._output(kind, pending)

    def _output(self, kind: str, raw: bytes) -> None:
        """Log and emit ``raw``: whole lines, or a piece of one line (too long, or the last)."""
        text = raw.decode("utf-8", errors="replace")
        stamp = time.time()
        self._log.write(kind, stamp, text if text.endswith("\n") else text + "\n")
        self._emit(kind, text, int(stamp * 1000))

    async def _watch(self, on_exit: Callable[[ServiceProcess], None]) -> None:
        returncode = await self._proc.wait()
        self.signal(signal.SIGKILL)  # leftover children of the group would keep the pipes open
        _, late = await asyncio.wait(self._pumps, timeout=_PUMP_GRACE)
        for pump in late:
            pump.cancel()
        self.ended_by = self._proc.ended_by
        if self.ended_by is not None:
            self._output("stderr", f"{self.ended_by}\n".encode())
        self._log.close()
        self.exit_code = exit_code_of(returncode)
        self.exited.set()
        on_exit(self)

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the whole process group."""
        self._proc.signal_group(sig)

    async def wait(self, timeout: float) -> bool:
        """Whether the process ended (and was drained) within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self.exited.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def terminate(self, timeout: float) -> int:
        """SIGTERM the group, wait up to ``timeout``, then SIGKILL; the exit code."""
        self.signal(signal.SIGTERM)
        if not await self.wait(timeout):
            self.signal(signal.SIGKILL)
            await self.exited.wait()
        assert self.exit_code is not None
        return self.exit_code
