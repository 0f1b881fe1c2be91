"""The operations journal behind ``%sprite history``: what this kernel did, and how it went."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


__all__ = ["Journal", "JournalEntry", "Outcome"]


@dataclass(frozen=True)
class JournalEntry:
    """One operation: when it started, on which sprite, what, on what, how it ended."""

    time: datetime
    sprite: str
    operation: str
    target: str
    outcome: str
    duration: float


class Outcome:
    """What a journaled block reports when it ends without an exception but not plainly
    ``ok`` (a command that exited 1 under ``--no-raise``, a stop of a stopped service)."""

    def __init__(self) -> None:
        self.text = "ok"

    def set(self, text: str) -> None:
        self.text = text


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
    def record(self, sprite: str, operation: str, target: str = "") -> Iterator[Outcome]:
        """Journal the enclosed operation: ``ok`` (or what the block set on the yielded
        :class:`Outcome`), ``cancelled`` or ``error: …``."""
        started_at = datetime.now(UTC)
        started = time.monotonic()
        reported = Outcome()
        outcome = "ok"
        try:
            yield reported
            outcome = reported.text
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
        """The journal as a DataFrame in the order the operations started."""
        import pandas as pd
        rows = sorted(self.entries, key=lambda entry: entry.time)
        return pd.DataFrame({
            "time": pd.Series(pd.to_datetime([e.time for e in rows], utc=True),
                              dtype="datetime64[ns, UTC]"),
            "sprite": pd.Series([e.sprite for e in rows], dtype="object"),
            "operation": pd.Series([e.operation for e in rows], dtype="object"),
            "target": pd.Series([e.target for e in rows], dtype="object"),
            "outcome": pd.Series([e.outcome for e in rows], dtype="object"),
            "duration": pd.Series([round(e.duration, 3) for e in rows], dtype="float64"),
        })
