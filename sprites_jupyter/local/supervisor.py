"""PLACEHOLDER (being written by the services helper): a sprite's services."""

from __future__ import annotations

from pathlib import Path


class ServiceManager:
    """Runs a sprite's services from their on-disk definitions."""

    def __init__(self, sprite: str, root: Path) -> None:
        self.sprite = sprite
        self.root = root

    def running(self) -> list[str]:
        """Names of services whose process is running."""
        return []

    async def start_all(self) -> None:
        """Start every defined, not explicitly stopped service in dependency order."""

    async def stop_all(self) -> None:
        """Stop every running service (dependents first), as before a restore."""

    async def shutdown(self) -> None:
        """Stop all processes when the server exits or the sprite is deleted."""
