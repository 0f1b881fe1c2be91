"""The server's shared state: the home directory, the store, and each sprite's runtime."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import HTTPConnection

from .errors import ApiError
from .runtime.sessions import SessionManager
from .runtime.supervisor import ServiceManager
from .storage.home import prepare_home, remove_server_file
from .storage.snapshots import Snapshotter
from .storage.store import SpriteRow, Store

SPRITE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

# Directories every new sprite starts with (its ``v0``), as on a fresh sprite.
SEED_DIRECTORIES = ("home/sprite", "tmp", ".sprite/services", ".sprite/policy",
                    ".sprite/logs/services")


@dataclass
class SpriteRuntime:
    """What a sprite has while the server runs: processes, services and one op lock.

    ``lock`` serialises checkpoint, restore and delete of the sprite, so a
    restore never runs under a checkpoint that is still reading the tree.
    """

    name: str
    root: Path
    sessions: SessionManager
    services: ServiceManager
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _not_restoring: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._not_restoring.set()

    @asynccontextmanager
    async def restoring(self) -> AsyncIterator[None]:
        """Mark a restore under way: :meth:`settled` callers wait until it ends."""
        self._not_restoring.clear()
        try:
            yield
        finally:
            self._not_restoring.set()

    async def settled(self) -> None:
        """Wait out a restore in progress, so new work never lands in a tree being swapped."""
        await self._not_restoring.wait()

    async def open_connection(self, port: int, host: str = "127.0.0.1"
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to ``port`` on the sprite's own loopback (``host`` is a loopback name),
        as a process inside the sprite would.

        The one way the server reaches a sprite's ports (the TCP proxy, the sprite URL).
        """
        return await asyncio.open_connection(host, port)


class ServerState:
    """Everything handlers share; reach it with :func:`state_of`."""

    def __init__(self, home: Path, token: str) -> None:
        self.home = home
        self.token = token
        prepare_home(home)
        (home / "sprites").mkdir(exist_ok=True)
        self.store = Store(home / "metadata.sqlite3")
        self.snapshots = Snapshotter(home)
        self.base_url = "http://127.0.0.1"
        self._runtimes: dict[str, SpriteRuntime] = {}
        self.creation_lock = asyncio.Lock()

    def sprite_dir(self, name: str) -> Path:
        return self.home / "sprites" / name

    def sprite_root(self, name: str) -> Path:
        return self.sprite_dir(name) / "root"

    def require_sprite(self, name: str) -> SpriteRow:
        """The stored sprite, or 404 (400 for a name that cannot exist)."""
        if not SPRITE_NAME.fullmatch(name):
            raise ApiError(400, f"invalid sprite name {name[:80]!r}: use lowercase letters, digits "
                                "and '-', starting with a letter or digit (at most 63)")
        row = self.store.get_sprite(name)
        if row is None:
            raise ApiError(404, f"sprite not found: {name}")
        return row

    def runtime(self, name: str) -> SpriteRuntime:
        """The sprite's runtime, made on first use."""
        runtime = self._runtimes.get(name)
        if runtime is None:
            root = self.sprite_root(name)
            runtime = SpriteRuntime(
                name=name,
                root=root,
                sessions=SessionManager(name, root),
                services=ServiceManager(name, root),
            )
            self._runtimes[name] = runtime
        return runtime

    def has_activity(self, name: str) -> bool:
        """Whether the sprite has live exec sessions or running services."""
        runtime = self._runtimes.get(name)
        return runtime is not None and bool(runtime.sessions.list() or runtime.services.running())

    def busy(self) -> bool:
        """Whether any sprite has live exec sessions or running services."""
        return any(self.has_activity(name) for name in list(self._runtimes))

    def seed_tree(self, name: str) -> Path:
        """Create a new sprite's directory tree and return its root."""
        root = self.sprite_root(name)
        if root.parent.exists():
            shutil.rmtree(root.parent)
        for directory in SEED_DIRECTORIES:
            (root / directory).mkdir(parents=True, exist_ok=True)
        return root

    async def startup(self) -> None:
        """Recover interrupted snapshot work, collect released snapshot data, then boot
        every sprite's services."""
        rows = self.store.list_sprites(limit=1_000_000)
        for row in rows:
            await asyncio.to_thread(self.snapshots.recover, row.name, self.sprite_root(row.name),
                                    self.store)
        await asyncio.to_thread(self.snapshots.collect_garbage, self.store)
        for row in rows:
            await self.runtime(row.name).services.start_all()

    async def discard_runtime(self, name: str) -> None:
        """End a sprite's processes and forget its runtime (sprite deletion)."""
        runtime = self._runtimes.pop(name, None)
        if runtime is not None:
            await runtime.sessions.terminate_all()
            await runtime.services.shutdown()

    async def shutdown(self) -> None:
        """Stop every process, close the store and withdraw ``server.json``."""
        remove_server_file(self.home, pid=os.getpid())
        for name in list(self._runtimes):
            runtime = self._runtimes.pop(name)
            await runtime.sessions.terminate_all()
            await runtime.services.shutdown()
        self.store.close()


def state_of(conn: HTTPConnection) -> ServerState:
    """The server state from a request or WebSocket."""
    return conn.app.state.server
