"""Checkpoints of a sprite: take one, restore one (with an undo point), delete one.

The sequence that matters most lives here: a restore stops the services, the exec
sessions and the sandbox, takes the undo checkpoint with nothing running, restores the
files, and starts the services again whatever happened.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

from ..errors import Conflict, NotFound
from ..state import ServerState, SpriteRuntime
from ..storage.store import CheckpointRow

__all__ = ["LIVE_IDS", "delete_checkpoint", "require_checkpoint", "restore_checkpoint",
           "take_checkpoint"]

Emit = Callable[[str], None]
"""Told each step as it starts (a line of the NDJSON progress stream)."""

LIVE_IDS = ("Current", "active")
_CHECKPOINT_ID = re.compile(r"^(v\d+|auto-\d+)$")
_NAMED_WHEN_MISSING = 8


def require_checkpoint(server: ServerState, name: str, checkpoint_id: str) -> CheckpointRow:
    """The checkpoint, or NotFound naming the newest few that exist."""
    row = (server.store.get_checkpoint(name, checkpoint_id)
           if _CHECKPOINT_ID.fullmatch(checkpoint_id) else None)
    if row is None:
        ids = [r.id for r in server.store.list_checkpoints(name, include_auto=False,
                                                           limit=_NAMED_WHEN_MISSING + 1)]
        more = ", …" if len(ids) > _NAMED_WHEN_MISSING else ""
        known = f" (newest: {', '.join(ids[:_NAMED_WHEN_MISSING])}{more})" if ids else ""
        raise NotFound(f"checkpoint not found: {checkpoint_id[:80]!r}{known}")
    return row


async def take_checkpoint(server: ServerState, name: str, comment: str,
                          emit: Emit) -> CheckpointRow:
    """Snapshot the sprite's files as a new checkpoint (processes keep running)."""
    runtime = server.runtime(name)
    emit("Creating checkpoint...")
    async with runtime.lock:
        emit("Saving filesystem state...")
        async with server.storage.storing():
            manifest = await asyncio.to_thread(server.snapshots.snapshot, name, runtime.root,
                                               emit)
            # Off the event loop: with its history (a walk of every ancestor) the record
            # takes milliseconds at thousands of checkpoints.
            row = await asyncio.to_thread(server.store.add_checkpoint, name,
                                          manifest=manifest, comment=comment, is_auto=False,
                                          changed_bytes=server.snapshots.stored[name])
        await server.checkpoints_changed(name)
    return row


async def restore_checkpoint(server: ServerState, name: str, row: CheckpointRow,
                             emit: Emit) -> None:
    """Bring the sprite back to ``row``: everything running is stopped first, the state
    it had is kept as an automatic checkpoint (the undo), the services start again."""
    runtime = server.runtime(name)
    emit(f"Restoring to checkpoint {row.id}...")
    async with runtime.lock:
        try:  # fail before stopping anything if the target cannot be read
            await asyncio.to_thread(server.snapshots.load_manifest, row.manifest)
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"the data of {row.id} is missing or damaged") from exc
        async with runtime.restoring():  # new exec, fs and service work waits
            emit("Stopping services...")
            await runtime.services.stop_all()
            await runtime.sessions.terminate_all()
            try:
                # whatever else runs (setsid, nohup) ends; an exec asked for now starts
                # the sandbox after the restore, never on a half-restored tree
                async with runtime.sandbox.stopped():
                    await _restore_tree(server, runtime, name, row, emit)
            finally:
                server.start_sandbox_soon(name)  # up before the next command, as after create
                emit("Starting services...")
                await runtime.services.start_all()


async def _restore_tree(server: ServerState, runtime: SpriteRuntime, name: str,
                        row: CheckpointRow, emit: Emit) -> None:
    """Save the current state as an ``auto-`` checkpoint (taken with nothing running,
    so the undo point holds every last write), then restore ``row``'s tree."""
    auto_id = _new_auto_id(server, name)
    async with server.storage.storing():
        manifest = await asyncio.to_thread(server.snapshots.snapshot, name, runtime.root)
        await asyncio.to_thread(server.store.add_checkpoint, name, manifest=manifest,
                                comment=f"before restore to {row.id}", is_auto=True,
                                auto_id=auto_id, changed_bytes=server.snapshots.stored[name])
    emit(f"Saved the current state as {auto_id} (restore it to undo)")
    emit("Restoring filesystem...")
    await asyncio.to_thread(server.snapshots.restore, name, runtime.root, row.manifest,
                            checkpoint_id=row.id, store=server.store,
                            owner=runtime.sandbox.host_id, progress=emit)


async def delete_checkpoint(server: ServerState, name: str, checkpoint_id: str) -> None:
    """Delete a checkpoint the sprite does not run on; what only it used is collected at
    once, in the background."""
    if checkpoint_id in LIVE_IDS:
        raise Conflict("cannot delete active checkpoint: Current is the live state")
    require_checkpoint(server, name, checkpoint_id)
    async with server.runtime(name).lock:  # a restore in progress may be changing the source
        row = require_checkpoint(server, name, checkpoint_id)
        sprite = server.store.get_sprite(name)
        if sprite is None:
            raise NotFound(f"sprite not found: {name}")
        if sprite.source_id == row.id:
            raise Conflict(f"cannot delete active checkpoint: the sprite runs on {row.id}")
        server.store.delete_checkpoint(name, row.id)
        await server.checkpoints_changed(name)
        server.storage.collect_soon()


def _new_auto_id(server: ServerState, name: str) -> str:
    """``auto-<unix ms>``, unique for the sprite even for two restores in one millisecond."""
    stamp = int(time.time() * 1000)
    while server.store.get_checkpoint(name, f"auto-{stamp}") is not None:
        stamp += 1
    return f"auto-{stamp}"
