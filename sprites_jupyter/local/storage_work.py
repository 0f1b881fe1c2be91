"""The storage work that runs beside the requests: checkpoint views and garbage collection.

A checkpoint request only announces the views it changes (:meth:`StorageWork.views_changed`);
one worker per sprite then builds them in a thread, so neither the request nor the
sprite's lock waits for a link per file. Deleting a checkpoint or a sprite starts a
collection of the data nothing uses any more, at once, without a restart.

A collection looks only at what the deletions released (:mod:`.storage.garbage`), so it
takes milliseconds; still, it must not delete what a snapshot has stored but not yet
recorded in a checkpoint, so the two exclude each other: snapshot-and-record runs inside
:meth:`StorageWork.storing` (many at once), a collection waits for none to be running and
holds new ones back until it ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from .storage.checkpoint_views import CheckpointViews, ViewsStopped
from .storage.snapshots import Snapshotter
from .storage.store import Store

log = logging.getLogger("sprites_jupyter.local")


class StorageWork:
    """Background view builds per sprite, and the server's garbage collector."""

    def __init__(self, snapshots: Snapshotter, store: Store) -> None:
        self.snapshots = snapshots
        self.store = store
        self._views: dict[str, CheckpointViews] = {}
        self._dirty: set[str] = set()
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._storing = 0
        self._collecting = False
        self._collect_again = False
        self._collector: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._quiet = threading.Event()  # no snapshot runs: view builds may
        self._quiet.set()

    # views ------------------------------------------------------------------------

    async def views_changed(self, name: str, directory: Path, owner: int | None) -> None:
        """The sprite's checkpoints changed: show at once which views are coming or going
        (a view that cannot be announced is logged: views never fail a checkpoint), and
        have them built in the background (``owner``: see :class:`CheckpointViews`)."""
        views = self._views.get(name)
        if views is None:
            views = self._views[name] = CheckpointViews(self.snapshots, self.store, name,
                                                        directory, owner, self._quiet)
        try:
            await asyncio.to_thread(views.announce)
        except OSError as exc:
            log.warning("checkpoint views of sprite %s: %s", name, exc)
        self._dirty.add(name)
        if name not in self._workers:
            task = asyncio.get_running_loop().create_task(self._settle(name, views))
            self._workers[name] = task

    async def _settle(self, name: str, views: CheckpointViews) -> None:
        try:
            while name in self._dirty:
                self._dirty.discard(name)
                try:
                    await asyncio.to_thread(views.settle)
                except ViewsStopped:
                    return
                except (OSError, ValueError) as exc:
                    log.warning("checkpoint views of sprite %s: %s", name, exc)
        finally:
            self._workers.pop(name, None)

    async def views_settled(self, name: str) -> None:
        """Wait until the sprite's views are built (a no-op when nothing is pending)."""
        while (task := self._workers.get(name)) is not None:
            await asyncio.wait([task])

    async def stop_views(self, name: str) -> None:
        """The sprite is going: abandon its view builds and wait until they stopped."""
        views = self._views.pop(name, None)
        self._dirty.discard(name)
        if views is not None:
            views.stopped.set()
        await self.views_settled(name)

    # garbage --------------------------------------------------------------------------

    @asynccontextmanager
    async def storing(self) -> AsyncIterator[None]:
        """Hold off collections while a snapshot stores data and records it, and pause
        view builds (a snapshot's walk is slowed most by a build sharing the GIL). If the
        block fails, what it stored may be recorded nowhere: a collection of everything
        follows (the next one to run, if it was cancelled)."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._collecting)
            self._storing += 1
            self._quiet.clear()
        try:
            yield
        except Exception:
            self.snapshots.mark_garbage()
            self.collect_soon()
            raise
        except BaseException:  # cancelled: its thread may still store, so not now
            self.snapshots.mark_garbage()
            raise
        finally:
            async with self._changed:
                self._storing -= 1
                if not self._storing:
                    self._quiet.set()
                self._changed.notify_all()

    def collect_soon(self) -> None:
        """A deletion released manifests: collect what only they used (once more if a
        collection runs)."""
        if self._collector is not None:
            self._collect_again = True
            return
        self._collector = asyncio.get_running_loop().create_task(self._collect())

    async def _collect(self) -> None:
        try:
            self._collect_again = True
            while self._collect_again:
                self._collect_again = False
                async with self._changed:
                    self._collecting = True
                    await self._changed.wait_for(lambda: self._storing == 0)
                try:
                    await asyncio.to_thread(self.snapshots.collect_garbage, self.store)
                except OSError as exc:
                    log.warning("collecting unused snapshot data: %s", exc)
                finally:
                    async with self._changed:
                        self._collecting = False
                        self._changed.notify_all()
        finally:
            self._collector = None

    async def idle(self) -> None:
        """Wait for every view build and collection under way (server shutdown)."""
        for views in self._views.values():
            views.stopped.set()
        while self._workers or self._collector is not None:
            await asyncio.wait([*self._workers.values(),
                                *([self._collector] if self._collector else [])])
