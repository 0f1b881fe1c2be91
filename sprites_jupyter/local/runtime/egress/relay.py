"""Copying a proxied connection both ways without copying bytes through Python.

Each direction is a kernel pipe between two non-blocking sockets, filled and drained
with ``splice(2)`` from the event loop's readiness callbacks: no thread, no userspace
copy, and at most :data:`PIPE_BYTES` in flight per direction (reading pauses while the
other side cannot take more). Also the small buffered reader the handshakes use on the
same raw sockets before the relay starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
from collections.abc import Callable

PIPE_BYTES = 256 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK


class SocketReader:
    """Buffered reads from a non-blocking socket through the loop, for handshakes; what it
    read beyond the handshake is :meth:`leftover`."""

    def __init__(self, sock: socket.socket, limit: int) -> None:
        self._sock = sock
        self._limit = limit
        self._buffer = bytearray()

    async def _fill(self) -> None:
        data = await asyncio.get_running_loop().sock_recv(self._sock, 65536)
        if not data:
            raise asyncio.IncompleteReadError(bytes(self._buffer), None)
        self._buffer += data

    async def readexactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def readuntil(self, separator: bytes) -> bytes:
        """Up to and including ``separator``; LimitOverrunError past the limit."""
        while (found := self._buffer.find(separator)) < 0 and len(self._buffer) <= self._limit:
            await self._fill()
        if found < 0 or found > self._limit:
            raise asyncio.LimitOverrunError("no separator within the limit", len(self._buffer))
        return await self.readexactly(found + len(separator))

    def leftover(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


class _Pump:
    """One direction: ``source`` → pipe → ``sink``, driven by readiness callbacks."""

    def __init__(self, source: socket.socket, sink: socket.socket,
                 finished: Callable[[_Pump, BaseException | None], None]) -> None:
        self.source, self.sink = source, sink
        self._finished = finished
        self._loop = asyncio.get_running_loop()
        self._read_end, self._write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._write_end, _F_SETPIPE_SZ, PIPE_BYTES)
        self._in_pipe = 0
        self._eof = False
        self.done = False
        self._loop.add_reader(source.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        try:
            moved = os.splice(self.source.fileno(), self._write_end, PIPE_BYTES,
                              flags=_SPLICE_FLAGS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._finish(error)
            return
        if moved == 0:
            self._eof = True
            self._loop.remove_reader(self.source.fileno())
        self._in_pipe += moved
        self._drain()

    def _drain(self) -> None:
        while self._in_pipe:
            try:
                moved = os.splice(self._read_end, self.sink.fileno(), self._in_pipe,
                                  flags=_SPLICE_FLAGS)
            except (BlockingIOError, InterruptedError):
                self._loop.remove_reader(self.source.fileno())
                self._loop.add_writer(self.sink.fileno(), self._on_writable)
                return
            except OSError as error:
                self._finish(error)
                return
            self._in_pipe -= moved
        if self._eof:
            self._finish(None)

    def _on_writable(self) -> None:
        self._loop.remove_writer(self.sink.fileno())
        self._drain()
        if not self._in_pipe and not self._eof and not self.done:
            self._loop.add_reader(self.source.fileno(), self._on_readable)

    def _finish(self, error: BaseException | None) -> None:
        if not self.done:
            self.stop()
            self._finished(self, error)

    def stop(self) -> None:
        """Stop watching the sockets and free the pipe (the sockets stay open)."""
        if self.done:
            return
        self.done = True
        self._loop.remove_reader(self.source.fileno())
        self._loop.remove_writer(self.sink.fileno())
        os.close(self._read_end)
        os.close(self._write_end)


class Relay:
    """Both directions between ``client`` and ``upstream`` until the upstream side ends
    (the client's EOF only half-closes) or :meth:`cut`; then both sockets are closed."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self._ended: asyncio.Future[None] | None = None
        self._pumps: list[_Pump] = []

    async def run(self) -> None:
        self._ended = asyncio.get_running_loop().create_future()
        self._pumps = [_Pump(self.client, self.upstream, self._pump_finished),
                       _Pump(self.upstream, self.client, self._pump_finished)]
        try:
            await self._ended
        finally:
            self._close()

    def _pump_finished(self, pump: _Pump, error: BaseException | None) -> None:
        if error is None and pump.source is self.client:
            with contextlib.suppress(OSError):
                self.upstream.shutdown(socket.SHUT_WR)
            return
        self.cut()

    def cut(self) -> None:
        """End the relay now (a policy change denied it, or the proxy closes)."""
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    def _close(self) -> None:
        for pump in self._pumps:
            pump.stop()
        for sock in (self.client, self.upstream):
            sock.close()
