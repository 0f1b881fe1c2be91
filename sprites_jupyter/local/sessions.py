"""PLACEHOLDER (being written by the exec helper): exec sessions of one sprite."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class SessionManager:
    """The exec sessions (processes started over exec) of one sprite."""

    def __init__(self, sprite: str, root: Path) -> None:
        self.sprite = sprite
        self.root = root

    def list(self) -> list[dict[str, Any]]:
        return []

    async def terminate_all(self) -> None:
        """Kill every session's process group; attached sockets get exit 137."""
