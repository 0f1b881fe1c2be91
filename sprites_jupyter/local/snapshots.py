"""PLACEHOLDER (being written by the snapshot helper): content-addressed checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .store import Store


class Snapshotter:
    """Content-addressed, incremental snapshots of sprite trees under ``home``."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def snapshot(self, sprite: str, root: Path,
                 progress: Callable[[str], None] | None = None) -> str:
        """Snapshot ``root``; return the manifest id (a content hash) to store."""
        return "placeholder"

    def recover(self, sprite: str, root: Path, store: Store) -> None:
        """Finish or undo a restore interrupted by a crash; drop half-made work."""

    def discard(self, sprite: str) -> None:
        """Forget per-sprite caches when the sprite is deleted."""
