"""One reader's bounded queue of a service's events.

Output lines beyond the bound are not buffered: they are counted, and the reader gets
one ``error`` event saying how many lines it missed, at the place they were lost
(the full output stays in the service's log file). Lifecycle events (``started``,
``exit``, ...) are few and always kept, so a slow reader still learns how a run ended.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from ...wire import now_ms

Event = dict[str, Any]
MAX_BUFFERED_BYTES = 2 * 1024 * 1024
MAX_BUFFERED_EVENTS = 16384
MAX_BATCH = 256


def drop_notice(count: int, log_file: str) -> Event:
    """The ``error`` event that tells a reader ``count`` output lines were dropped."""
    return {"type": "error", "dropped": count, "timestamp": now_ms(),
            "data": f"{count} lines dropped: this reader fell behind the service's output "
                    f"(all of it is in {log_file})"}


class Subscription:
    """Events of one service for one reader, output bounded by bytes and count."""

    def __init__(self, log_file: str, *, max_bytes: int = MAX_BUFFERED_BYTES,
                 max_events: int = MAX_BUFFERED_EVENTS) -> None:
        self.log_file = log_file
        self._max_bytes = max_bytes
        self._max_events = max_events
        self._events: deque[Event] = deque()
        self._bytes = 0
        self._dropped = 0
        self._ready = asyncio.Event()

    def put(self, event: Event) -> None:
        """A lifecycle event: always kept."""
        self._flush_drops()
        self._events.append(event)
        self._ready.set()

    def put_output(self, event: Event) -> None:
        """An output event (``data``: one read's lines): if it does not fit, its lines are
        counted as dropped."""
        data = event["data"]
        size = len(data)
        if len(self._events) >= self._max_events or self._bytes + size > self._max_bytes:
            self._dropped += data.count("\n") or 1
        else:
            self._flush_drops()
            self._events.append(event)
            self._bytes += size
        self._ready.set()

    def _flush_drops(self) -> None:
        if self._dropped:
            self._events.append(drop_notice(self._dropped, self.log_file))
            self._dropped = 0

    def empty(self) -> bool:
        return not self._events and not self._dropped

    def take(self) -> list[Event]:
        """Up to MAX_BATCH queued events (with a pending drop notice), without waiting."""
        if not self._events:
            self._flush_drops()
        batch: list[Event] = []
        while self._events and len(batch) < MAX_BATCH:
            event = self._events.popleft()
            if "data" in event and event["type"] in ("stdout", "stderr"):
                self._bytes -= len(event["data"])
            batch.append(event)
        if self.empty():
            self._ready.clear()
        return batch

    async def next_batch(self) -> list[Event]:
        """The next events, waiting for at least one."""
        while self.empty():
            self._ready.clear()
            await self._ready.wait()
        return self.take()
