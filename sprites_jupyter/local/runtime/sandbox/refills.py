"""What a sandbox start used up ahead (spare user namespaces, a spare egress bridge),
made again once the start's first command has ended, or a moment after the start.

Not at once: each spare is a Python process to start, and the first command of a
sprite usually follows its start at once, on the same CPUs (a short one, as often,
is over before the spares would be)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

REFILL_GRACE = 0.5
"""How long after a start its spares are made again at the latest (no command came)."""


class Refills:
    """The refills one start left due; :meth:`run` makes them (once), whoever asks first:
    the end of the first command (or its failure to start), the sandbox's stop, or the
    timer."""

    def __init__(self) -> None:
        self._due: list[Callable[[], None]] = []
        self._timer: asyncio.TimerHandle | None = None

    def schedule(self, refills: list[Callable[[], None]]) -> None:
        """Make ``refills`` on the next :meth:`run`, at the latest after REFILL_GRACE."""
        self.run()
        self._due = refills
        self._timer = asyncio.get_running_loop().call_later(REFILL_GRACE, self.run)

    def run(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due, self._due = self._due, []
        for refill in due:
            refill()
