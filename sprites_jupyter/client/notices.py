"""Delayed notices ("waking the sprite…") from one thread shared by every connection.

A notice is due only if its operation is still waiting when the delay is over, so most
are cancelled unseen; a ``threading.Timer`` for each would start a thread for every
exec, which costs more than the rest of the client's side of a short command. For the
same reason the thread wakes at most every :data:`SLACK` seconds: a run of short
commands leaves a cancelled notice due every few milliseconds, and waking for each
would cost a thread switch per command.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

SLACK = 0.5
"""Seconds a notice may run late (they are seconds long; a sweep is half a minute)."""


class Notice:
    """A scheduled call; :meth:`cancel` before it is due and it never runs."""

    def __init__(self, due: float, action: Callable[[], None]) -> None:
        self.due = due
        self.action = action
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class NoticeTimer:
    """Runs each notice's action at its time (up to :data:`SLACK` later), in one daemon
    thread started on first use."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, Notice]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def after(self, delay: float, action: Callable[[], None]) -> Notice:
        """Call ``action()`` in ``delay`` seconds unless the returned notice is cancelled."""
        notice = Notice(time.monotonic() + delay, action)
        with self._wake:
            heapq.heappush(self._queue, (notice.due, next(self._order), notice))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="sprites-notices")
                self._thread.start()
            if self._queue[0][2] is notice:  # else the timer already wakes sooner
                self._wake.notify()
        return notice

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._queue and self._queue[0][2].cancelled:
                    heapq.heappop(self._queue)
                if not self._queue:
                    self._wake.wait()
                    continue
                wait = self._queue[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(max(wait, SLACK))
                    continue
                notice = heapq.heappop(self._queue)[2]
            if not notice.cancelled:
                notice.action()


notices = NoticeTimer()
"""The process's one timer for notices."""
