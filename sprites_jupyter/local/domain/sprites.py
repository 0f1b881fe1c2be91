"""Sprites themselves: create one (its seeded tree, its sandbox launched and started in
the background while the base snapshot reads the tree) and delete one (everything it
runs, its row, its files)."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from ..errors import Conflict, is_disk_full
from ..runtime.sandbox.files import remove_sprite_dir
from ..state import ServerState
from ..storage.store import SpriteRow

__all__ = ["create_sprite", "delete_sprite"]


async def create_sprite(server: ServerState, name: str, *, url_settings: dict[str, Any],
                        labels: list[str]) -> SpriteRow:
    """A new sprite ``name`` (a valid name: the caller checked it), or Conflict."""
    async with server.creation_lock:
        if server.store.get_sprite(name) is not None:
            raise Conflict(f"sprite already exists: {name}", code="sprite_exists")
        root = await asyncio.to_thread(server.seed_tree, name)
        # Seeded as a start leaves it, the tree does not change under the snapshot, and
        # nothing runs in the sprite before it exists (its row is the last step).
        try:
            await server.runtime(name).sandbox.launch_ahead()
            server.start_sandbox_soon(name)
            async with server.storage.storing():
                manifest = await asyncio.to_thread(server.snapshots.snapshot, name, root)
                return server.store.create_sprite(name, url_settings=url_settings,
                                                  labels=labels, base_manifest=manifest)
        except BaseException:
            await server.discard_runtime(name)
            raise


async def delete_sprite(server: ServerState, name: str) -> None:
    """Stop everything the sprite runs, then forget it and free its files (and, in the
    background, the stored data only it used)."""
    server.require_sprite(name)
    runtime = server.runtime(name)
    async with runtime.lock:
        await server.discard_runtime(name)
        try:
            server.store.delete_sprite(name)
        except sqlite3.OperationalError as exc:
            if not is_disk_full(exc):
                raise
            # The disk is full: free the sprite's files first (it is going anyway), then
            # record the deletion in the room that made.
            await asyncio.to_thread(_remove_files, server, name)
            server.store.delete_sprite(name)
        server.snapshots.discard(name)
        await asyncio.to_thread(_remove_files, server, name)
        server.storage.collect_soon()


def _remove_files(server: ServerState, name: str) -> None:
    """Free the sprite's disk (its image at once) and its directory."""
    if server.disks is not None:
        server.disks.discard(name, server.sprite_dir(name))
    remove_sprite_dir(server.sprite_dir(name))
