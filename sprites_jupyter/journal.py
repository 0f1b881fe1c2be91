"""The operations journal behind ``%sprite history``: what this kernel did, and how it went."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

__all__ = ["Journal", "JournalEntry"]


@dataclass(frozen=True)
class JournalEntry:
    """One operation: when it started, on which sprite, what, on what, how it ended."""

    time: datetime
    sprite: str
    operation: str
    target: str
    outcome: str
    duration: float


class Journal:
    """A thread-safe, append-only list of :class:`JournalEntry` for this kernel."""

    def __init__(self) -> None:
        self._entries: list[JournalEntry] = []
        self._lock = threading.Lock()

    @property
    def entries(self) -> list[JournalEntry]:
        with self._lock:
            return list(self._entries)

    @contextmanager
    def record(self, sprite: str, operation: str, target: str = "") -> Iterator[None]:
        """Journal the enclosed operation: ``ok``, ``cancelled`` or ``error: …``."""
        started_at = datetime.now(UTC)
        started = time.monotonic()
        outcome = "ok"
        try:
            yield
        except KeyboardInterrupt:
            outcome = "cancelled"
            raise
        except BaseException as error:
            outcome = f"error: {error}"
            raise
        finally:
            entry = JournalEntry(started_at, sprite, operation, target, outcome,
                                 time.monotonic() - started)
            with self._lock:
                self._entries.append(entry)

    def frame(self) -> pd.DataFrame:
        """The journal as a DataFrame, oldest first."""
        rows = self.entries
        return pd.DataFrame({
            "time": pd.Series(pd.to_datetime([e.time for e in rows], utc=True),
                              dtype="datetime64[ns, UTC]"),
            "sprite": pd.Series([e.sprite for e in rows], dtype="object"),
            "operation": pd.Series([e.operation for e in rows], dtype="object"),
            "target": pd.Series([e.target for e in rows], dtype="object"),
            "outcome": pd.Series([e.outcome for e in rows], dtype="object"),
            "duration": pd.Series([e.duration for e in rows], dtype="float64"),
        })
