"""The kernel's process in the sprite: a detached exec session we watch and signal.

Detached (``max_run_after_disconnect``) so a dropped connection or a sprite that went
cold does not end the kernel: the watcher re-attaches by session id, which wakes the
sprite, and only a session the sprite no longer has counts as the kernel's end.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from ..client import Command, NotFound, Sprite, SpritesError

# How long the kernel outlives a lost connection to it (Jupyter's server gone, say).
DETACHED_LIFETIME = 24 * 3600.0
REATTACH_TRIES = 5
REATTACH_PAUSE = 1.0
LOST = -1  # the exit code when the session vanished without telling us one
TAIL_LINES = 20


class KernelProcess:
    """``argv`` started in ``sprite`` with cwd ``directory``; output goes to ``log``."""

    def __init__(self, sprite: Sprite, argv: Sequence[str], directory: str,
                 log: logging.Logger) -> None:
        self.sprite = sprite
        self.log = log
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.exit_code: int | None = None
        self._command: Command = sprite.command(*argv, dir=directory, stdin=False,
                                                max_run_after_disconnect=DETACHED_LIFETIME)
        self.session_id = self._command.session_id
        self._stopping = False
        self._ended = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True,
                                         name=f"sprite kernel {sprite.name}")
        self._watcher.start()

    @property
    def running(self) -> bool:
        return not self._ended.is_set()

    def last_words(self) -> str:
        """The last line the kernel printed (for a one-line failure)."""
        lines = [line for line in self.tail if line.strip()]
        return lines[-1].strip() if lines else ""

    def signal(self, sig: str | int) -> None:
        if self.running:
            self._command.signal(sig)

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds."""
        self._ended.wait(timeout)
        return self.exit_code

    def stop(self) -> None:
        """Kill the process if it still runs and stop watching (idempotent)."""
        self._stopping = True
        if self.running:
            with contextlib.suppress(SpritesError, OSError):
                self._command.signal("KILL")
            self._ended.wait(5.0)
        self._command.detach()
        self._watcher.join(5.0)

    def _watch(self) -> None:
        command = self._command
        while True:
            try:
                for chunk in command:
                    self._absorb(chunk.data)
                self.exit_code = command.exit_code
                break
            except (SpritesError, OSError) as error:
                if self._stopping:
                    break
                self.log.info("Sprite kernel on %s: connection lost (%s); reconnecting",
                              self.sprite.name, error)
                reattached = self._reattach()
                if reattached is None:
                    self.exit_code = LOST
                    break
                command = self._command = reattached
        self._ended.set()

    def _reattach(self) -> Command | None:
        if self.session_id is None:
            return None
        for _ in range(REATTACH_TRIES):
            try:
                return self.sprite.attach(self.session_id)
            except NotFound:
                return None
            except (SpritesError, OSError):
                time.sleep(REATTACH_PAUSE)
        return None

    def _absorb(self, data: bytes) -> None:
        for line in data.decode(errors="replace").splitlines():
            self.tail.append(line)
            self.log.info("[sprite %s] %s", self.sprite.name, line)
