"""The operations journal behind ``%sprite history``: what was done, and how it went.

Entries are kept per sprite and notebook where a new kernel finds them again (a
:class:`JournalStore`): the local home for the local server, a file on the sprite
for the real service. A restore rewinds a file kept on the sprite; the next save
writes it whole again from memory, so nothing this kernel knew is lost.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KEPT_ENTRIES", "Journal", "JournalEntry", "JournalStore", "Outcome",
           "decode_entries", "encode_entries"]

KEPT_ENTRIES = 1000  # per sprite and notebook; the oldest go first
SAVE_DELAY = 0.2
"""Seconds a save waits for more entries, so a run of short cells writes the file once."""
SAVER_LINGER = 5.0
"""Seconds the saver thread waits for more to save before it ends."""


@dataclass(frozen=True)
class JournalEntry:
    """One operation: when it started, on which sprite, what, on what, how it ended."""

    time: datetime
    sprite: str
    operation: str
    target: str
    outcome: str
    duration: float


def encode_entries(entries: list[JournalEntry]) -> bytes:
    """JSON lines, the newest :data:`KEPT_ENTRIES`."""
    lines = (json.dumps({**asdict(e), "time": e.time.isoformat()})
             for e in entries[-KEPT_ENTRIES:])
    return "".join(line + "\n" for line in lines).encode()


def decode_entries(data: bytes) -> list[JournalEntry]:
    """Entries from JSON lines; a line that is not one (a truncated write) is skipped."""
    entries = []
    for line in data.decode(errors="replace").splitlines():
        try:
            fields = json.loads(line)
            fields["time"] = datetime.fromisoformat(fields["time"])
            entries.append(JournalEntry(**fields))
        except (ValueError, TypeError, KeyError):
            continue
    return entries


class JournalStore(Protocol):
    """Where one notebook's journal of one sprite is kept between kernels."""

    def load(self, sprite: str) -> list[JournalEntry]: ...
    def save(self, sprite: str, entries: list[JournalEntry]) -> None: ...


class Outcome:
    """What a journaled block reports when it ends without an exception but not plainly
    ``ok`` (a command that exited 1 under ``--no-raise``, a stop of a stopped service)."""

    def __init__(self) -> None:
        self.text = "ok"

    def set(self, text: str) -> None:
        self.text = text


class Journal:
    """A thread-safe, append-only list of :class:`JournalEntry`: this kernel's, plus
    what earlier kernels left in the store (read when a sprite is first touched)."""

    def __init__(self, store: Callable[[], JournalStore | None] = lambda: None) -> None:
        self._entries: list[JournalEntry] = []
        self._earlier: dict[str, list[JournalEntry]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # what is to save, or was saved
        self._store = store
        self._dirty: dict[str, JournalStore] = {}  # sprites whose saved journal is behind
        self._writing = False  # the saver is writing what it took from _dirty
        self._flushes = 0  # flush() calls waiting: the saver writes at once
        self._saver: threading.Thread | None = None

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
            self._save_later(sprite)

    def _save_later(self, sprite: str) -> None:
        """Save in the background: a cell does not wait for its journal line. One saver
        thread writes for a whole run of cells, each file once per SAVE_DELAY at most
        (each save writes the sprite's whole journal)."""
        store = self._store()
        if store is None or not sprite:
            return
        with self._changed:
            self._dirty[sprite] = store
            if self._saver is None:
                self._saver = threading.Thread(target=self._save_dirty, daemon=True,
                                               name="sprites-journal")
                self._saver.start()
            self._changed.notify_all()

    def _save_dirty(self) -> None:
        try:
            while True:
                with self._changed:
                    if not self._changed.wait_for(lambda: self._dirty, SAVER_LINGER):
                        self._saver = None
                        return
                    self._changed.wait_for(lambda: self._flushes, SAVE_DELAY)
                    dirty, self._dirty = self._dirty, {}
                    self._writing = True
                try:
                    for sprite, store in dirty.items():
                        self._save(store, sprite)
                finally:
                    with self._changed:
                        self._writing = False
                        self._changed.notify_all()
        finally:
            with self._changed:  # ended by an error: the next entry starts another saver
                if self._saver is threading.current_thread():
                    self._saver = None
                self._changed.notify_all()

    def _save(self, store: JournalStore, sprite: str) -> None:
        # Only the saver thread saves; each save writes everything known when it runs.
        with self._lock:
            earlier = self._earlier.get(sprite)
        if earlier is None:
            earlier = self._load(store, sprite)
        with self._lock:
            entries = earlier + [e for e in self._entries if e.sprite == sprite]
        with contextlib.suppress(Exception):  # the sprite may be gone or restoring
            store.save(sprite, entries)

    def _load(self, store: JournalStore, sprite: str) -> list[JournalEntry]:
        try:
            loaded = store.load(sprite)
        except Exception:  # nothing kept yet, or the sprite is unreachable
            loaded = []
        with self._lock:
            mine = {(e.time, e.operation) for e in self._entries}
            return self._earlier.setdefault(
                sprite, [e for e in loaded if (e.time, e.operation) not in mine])

    def flush(self) -> None:
        """Save what is not saved yet, and wait for it (before the kernel lets go of its
        client)."""
        with self._changed:
            self._flushes += 1
            self._changed.notify_all()
            try:
                self._changed.wait_for(lambda: not self._writing and (
                    not self._dirty or self._saver is None))
            finally:
                self._flushes -= 1

    def frame(self, sprite: str = "") -> pd.DataFrame:
        """The journal as a DataFrame in the order the operations started, with what
        earlier kernels did on ``sprite``."""
        import pandas as pd
        store = self._store()
        earlier = self._load(store, sprite) if store is not None and sprite else []
        rows = sorted(earlier + self.entries, key=lambda entry: entry.time)
        return pd.DataFrame({
            "time": pd.Series(pd.to_datetime([e.time for e in rows], utc=True),
                              dtype="datetime64[ns, UTC]"),
            "sprite": pd.Series([e.sprite for e in rows], dtype="object"),
            "operation": pd.Series([e.operation for e in rows], dtype="object"),
            "target": pd.Series([e.target for e in rows], dtype="object"),
            "outcome": pd.Series([e.outcome for e in rows], dtype="object"),
            "duration": pd.Series([round(e.duration, 3) for e in rows], dtype="float64"),
        })
