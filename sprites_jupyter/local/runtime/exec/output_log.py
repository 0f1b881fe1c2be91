"""A session's output as one byte-addressed log: scrollback for new attachers, a cursor for each.

Every byte a process writes gets an offset. An attacher reads from its own offset, so
replaying the scrollback and following live output are the same loop, and nothing is
dropped while some attacher still has to read it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

SCROLLBACK_BYTES = 1024 * 1024


@dataclass
class OutputLog:
    """Chunks of ``(stream, data)`` addressed by byte offset, trimmed to about ``limit`` bytes."""

    limit: int = SCROLLBACK_BYTES
    end: int = 0
    _offsets: list[int] = field(default_factory=list)
    _chunks: list[tuple[int, bytes]] = field(default_factory=list)
    _first: int = 0
    _retained: int = 0

    @property
    def start(self) -> int:
        """The offset of the oldest byte still kept (``end`` when nothing is kept)."""
        return self._offsets[self._first] if self._first < len(self._offsets) else self.end

    def append(self, stream: int, data: bytes) -> None:
        self._offsets.append(self.end)
        self._chunks.append((stream, data))
        self.end += len(data)
        self._retained += len(data)

    def read(self, cursor: int) -> list[tuple[int, bytes]]:
        """Every chunk from ``cursor`` to the end (the first one cut at ``cursor``)."""
        cursor = max(cursor, self.start)
        index = max(bisect.bisect_right(self._offsets, cursor, lo=self._first) - 1, self._first)
        found = []
        for position in range(index, len(self._chunks)):
            stream, data = self._chunks[position]
            skip = cursor - self._offsets[position]
            if skip < len(data):
                found.append((stream, data[max(skip, 0):]))
        return found

    def trim(self, keep_from: int) -> None:
        """Drop the oldest chunks beyond ``limit`` bytes, but none at or after ``keep_from``."""
        while self._first < len(self._chunks):
            size = len(self._chunks[self._first][1])
            if self._retained - size < self.limit or self._offsets[self._first] + size > keep_from:
                break
            self._retained -= size
            self._first += 1
        if self._first > 1024 and self._first * 2 > len(self._chunks):
            del self._offsets[:self._first], self._chunks[:self._first]
            self._first = 0
