"""Bridges started ahead: a sandbox start hands its network namespace to a bridge whose
Python already runs, so the start does not wait for (or share the CPU with) one more
interpreter start.

A spare bridge holds nothing of any sprite until it is told a namespace over its own
socket pair; it exits when the server's end closes (the server went away), so a spare
never outlives its server. Each spare is used once.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import bridge

_BRIDGE_SOURCE = Path(bridge.__file__).read_text()


@dataclass
class StartedBridge:
    """A bridge process waiting for its namespace on ``server_end`` (the server's end)."""

    process: subprocess.Popen[bytes]
    server_end: socket.socket

    def discard(self) -> None:
        """Let it go unused: closing its socket makes it exit; reap it."""
        self.server_end.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


def launch_bridge() -> StartedBridge:
    """Start a bridge that imports what it needs and waits for its namespace (blocking)."""
    server_end, bridge_end = socket.socketpair()
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BRIDGE_SOURCE, str(bridge_end.fileno()),
             "--netns-later"], pass_fds=[bridge_end.fileno()], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    except BaseException:
        server_end.close()
        raise
    finally:
        bridge_end.close()
    return StartedBridge(process, server_end)


class SpareBridges:
    """Hands out started bridges, the next one made ahead in the background."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: Future[StartedBridge] | None = None
        self._maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spare-bridge")

    def take(self) -> StartedBridge:
        """A started bridge, the spare if it is alive, else a new one (blocking; raises
        OSError when none can start)."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(OSError):
                started = spare.result()
                if started.process.poll() is None:
                    return started
                started.discard()
        return launch_bridge()

    def make_ahead(self) -> None:
        """Start the next spare unless one is made or on its way; call it once a sandbox
        is up, so the spare's start does not take CPU from the start that waits."""
        with self._lock:
            if self._spare is None:
                self._spare = self._maker.submit(launch_bridge)
