"""The ``%%sprite_python`` agent's channels: the protocol's output and captured streams.

Standard library only, Python 3.8+; uploaded beside ``python_agent.py``. Replies go
out as whole JSON lines on a private descriptor; what user code writes (Python-level
and descriptor-level, so subprocesses too) becomes ``stream`` events; a kept cell's
events are also written to its folder on the sprite.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import select
import signal
import threading
import time

FLUSH_INTERVAL = 0.05
FLUSH_SIZE = 64 * 1024


class Channel:
    """The protocol's output: one JSON object per line on a private descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()

    def send(self, message: dict) -> None:
        """Write one whole line: SIGINT waits until it is out (in the main thread its
        ``KeyboardInterrupt`` would cut the line, and the reply in it, short)."""
        data = (json.dumps(message, default=repr) + "\n").encode()
        main = threading.current_thread() is threading.main_thread()
        if main:
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with self.lock:
                view = memoryview(data)
                while view:
                    view = view[os.write(self.fd, view):]
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)


_KEPT_LETTERS = {"stdout": b"o", "stderr": b"e"}


class KeepingChannel(Channel):
    """The protocol's output, which also keeps a kept cell's output, displays and reply
    in its folder on the sprite (``cell_runner``'s records): a kernel that died
    mid-cell loses nothing, as a new one replays the folder."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self.kept = None
        self.kept_id = None

    def keep(self, request_id, kept) -> None:
        self.kept_id = request_id
        self.kept = kept

    def send(self, message: dict) -> None:
        kept = self.kept
        if kept is not None and message.get("id") == self.kept_id:
            main = threading.current_thread() is threading.main_thread()
            if main:  # a KeyboardInterrupt must not cut a record short
                previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                self._keep(kept, message)
            except OSError:
                pass  # a full disk must not fail the cell: the live kernel still gets it
            finally:
                if main:
                    signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        super().send(message)

    def _keep(self, kept, message: dict) -> None:
        kind = message.get("type")
        if kind == "stream":
            kept.append(_KEPT_LETTERS.get(str(message.get("name")), b"e"),
                        str(message.get("text", "")).encode("utf-8", "replace"))
        elif kind == "display":
            kept.append(b"d", json.dumps({"data": message.get("data"),
                                          "metadata": message.get("metadata")},
                                         default=repr).encode())
        elif kind == "done":
            self.kept = None
            final = {key: message.get(key) for key in ("status", "ename", "evalue",
                                                        "traceback")}
            kept.finish(0 if message.get("status") == "ok" else 1, final)


class Streams:
    """Captured output: Python-level writes and descriptor-level writes become events."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.request_id = None
        self.lock = threading.Lock()
        self.buffers: dict = {"stdout": [], "stderr": []}
        self.sizes = {"stdout": 0, "stderr": 0}
        self.pipes: dict = {}

    def write(self, name: str, text: str) -> None:
        if not text:
            return
        with self.lock:
            self.buffers[name].append(text)
            self.sizes[name] += len(text)
            large = self.sizes[name] >= FLUSH_SIZE
        if large:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            pending = [(name, "".join(parts)) for name, parts in self.buffers.items() if parts]
            for name in self.buffers:
                self.buffers[name] = []
                self.sizes[name] = 0
            for name, text in pending:
                self.channel.send({"type": "stream", "id": self.request_id, "name": name,
                                   "text": text})

    def capture_descriptors(self) -> None:
        """Point fds 1 and 2 at pipes read by threads (subprocess output is captured too)."""
        for fd, name in ((1, "stdout"), (2, "stderr")):
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            self.pipes[name] = read_end
            threading.Thread(target=self._pump, args=(read_end, name), daemon=True).start()
        threading.Thread(target=self._tick, daemon=True).start()

    def _pump(self, fd: int, name: str) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            data = os.read(fd, 65536)
            if not data:
                return
            self.write(name, decoder.decode(data))

    def _tick(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            self.flush()

    def drain(self) -> None:
        """Forward what subprocesses wrote so far, then flush everything."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            ready, _, _ = select.select(list(self.pipes.values()), [], [], 0)
            if not ready:
                break
            time.sleep(0.005)
        self.flush()


class StreamWriter(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` for user code."""

    def __init__(self, streams: Streams, name: str) -> None:
        self.streams = streams
        self.name = name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.streams.write(self.name, text)
        return len(text)

    def isatty(self) -> bool:
        return False
