"""A process a sprite's init forked, as the server sees it: its pid, how it ended, and
how to signal it; and the error of one that could not start."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

__all__ = ["Child", "ChildsSandbox", "SpawnFailed"]


class ChildsSandbox(Protocol):
    """What a child needs of its sandbox (:class:`.machine.Sandbox`)."""

    def memory_kill_note(self, returncode: int, oom_kills_before: int) -> str | None: ...

    def send_signal(self, pid: int, sig: int) -> None: ...


class SpawnFailed(OSError):
    """The init could not start a command; ``stage`` is ``cwd`` or ``exec``."""

    def __init__(self, code: int, message: str, stage: str) -> None:
        super().__init__(code, message)
        self.stage = stage


class Child:
    """A process the init forked: its pid (in the sprite's PID namespace) and its end."""

    def __init__(self, sandbox: ChildsSandbox, pid: int, oom_kills_before: int = 0,
                 on_end: Callable[[], None] = lambda: None) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.ended_by: str | None = None
        """Why the sprite's limits ended it, when they did (the memory total)."""
        self._sandbox = sandbox
        self._oom_kills_before = oom_kills_before
        self._on_end = on_end
        self._done = asyncio.Event()

    def _finish(self, returncode: int) -> None:
        if self.returncode is None:
            self.returncode = returncode
            self.ended_by = self._sandbox.memory_kill_note(returncode, self._oom_kills_before)
            self._done.set()
            self._on_end()

    async def wait(self) -> int:
        """The return code (negative: killed by that signal), once the process has ended."""
        await self._done.wait()
        assert self.returncode is not None
        return self.returncode

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the process's group (it leads its own session)."""
        if self.returncode is None:
            self._sandbox.send_signal(self.pid, sig)
