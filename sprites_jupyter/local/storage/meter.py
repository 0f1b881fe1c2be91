"""What a snapshot stored and reused, and its progress lines."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Meter", "Progress"]

Progress = Callable[[str], None]
_PROGRESS_EVERY = 1.0


class Meter:
    """Counts the files a snapshot stores and the bytes that changed (a file read again
    with the content it had, touched or too fresh to cache last time, is no change);
    reports progress at most once a second."""

    def __init__(self, progress: Progress | None, unsettled_before: dict[str, str]) -> None:
        self.progress = progress
        self.files = self.bytes = self.changed = self.reused = 0
        self.unsettled_before = unsettled_before
        self.unsettled: dict[str, str] = {}
        self.last = time.monotonic()

    def add(self, rel: str, ref: str, size: int, settled: bool, cached_ref: str | None) -> None:
        self.files += 1
        self.bytes += size
        if ref != cached_ref and self.unsettled_before.get(rel) != ref:
            self.changed += size
        if not settled:
            self.unsettled[rel] = ref
        if self.progress and time.monotonic() - self.last >= _PROGRESS_EVERY:
            self.last = time.monotonic()
            self.progress(f"Stored {self.files:,} files ({self.bytes / 1e6:,.0f} MB) so far...")
