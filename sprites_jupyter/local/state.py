"""The server's shared state: the home directory, the store, and each sprite's runtime."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import HTTPConnection

from .errors import Invalid, NotFound
from .runtime.egress.addresses import PrivateAllowance
from .runtime.egress.resolver import test_hosts_from_environment
from .runtime.egress.sprite_egress import SpriteEgress, egress_for
from .runtime.exec.sessions import SessionManager
from .runtime.sandbox.disks import SpriteDisks
from .runtime.sandbox.files import SandboxFiles, remove_sprite_dir
from .runtime.sandbox.machine import Isolation, Sandbox
from .runtime.services.supervisor import ServiceManager
from .storage.home import prepare_home, remove_server_file
from .storage.snapshots import Snapshotter
from .storage.store import SpriteRow, Store
from .storage_work import StorageWork

log = logging.getLogger("sprites_jupyter.local")

SPRITE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

# Directories every new sprite starts with (its ``v0``), as on a fresh sprite; what
# ``/.sprite`` holds lives beside the tree, in the platform directory.
SEED_DIRECTORIES = ("home/sprite", "tmp")


@dataclass
class SpriteRuntime:
    """What a sprite has while the server runs: its sandbox, processes, services, one op lock.

    ``lock`` serialises checkpoint, restore and delete of the sprite, so a
    restore never runs under a checkpoint that is still reading the tree.
    ``platform_env`` is merged into the environment of every process of the sprite
    (exec, sessions, services, platform processes); set it before they start.
    """

    name: str
    root: Path
    sandbox: Sandbox
    sessions: SessionManager
    services: ServiceManager
    egress: SpriteEgress | None = None
    """The policy-enforcing way out of a sandboxed sprite (unsandboxed: none)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _not_restoring: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._not_restoring.set()

    @property
    def platform_env(self) -> dict[str, str]:
        return self.sandbox.platform_env

    @platform_env.setter
    def platform_env(self, value: dict[str, str]) -> None:
        self.sandbox.platform_env.clear()
        self.sandbox.platform_env.update(value)

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
        Sandboxed, the sprite's init connects inside the sprite's network namespace and
        hands the socket over; unsandboxed, it is the host's loopback.
        """
        sock = await self.sandbox.connect(host, port)
        return await asyncio.open_connection(sock=sock)

    async def view_root(self) -> Path:
        """A host path through which the server sees the sprite's filesystem exactly as its
        processes do: sandboxed ``/proc/<init pid>/root`` (starting the sandbox if need be),
        unsandboxed the tree directory. Resolve paths under it without following symlinks
        out of it (absolute links resolve against the *server's* root)."""
        return await self.sandbox.view_root()

    @property
    def files(self) -> SandboxFiles:
        """The host directories behind the sprite: ``tree``, ``platform`` (``/.sprite``),
        ``run_dir`` (``/.sprite/run``, for the server's unix sockets), ``checkpoints_dir``."""
        return self.sandbox.files

    async def stop_sandbox(self) -> None:
        """End every process of the sprite (sessions and services first, then the init)."""
        await self.sessions.terminate_all()
        await self.services.shutdown()
        await self.sandbox.stop()
        if self.egress is not None:
            await self.egress.close()


class ServerState:
    """Everything handlers share; reach it with :func:`state_of`."""

    def __init__(self, home: Path, token: str, isolation: Isolation | None = None,
                 private_allowed: PrivateAllowance | None = None) -> None:
        self.home = home
        self.token = token
        self.isolation = isolation or Isolation(None, "isolation none")
        self.egress_test_hosts = test_hosts_from_environment()
        self.private_allowed = private_allowed or PrivateAllowance()
        prepare_home(home)
        (home / "sprites").mkdir(exist_ok=True)
        self.disks = (SpriteDisks(home, self.isolation.limits.disk_bytes)
                      if self.isolation.disk_limited else None)
        """Each new sprite's own disk (a root server's); None: sprites share the home's."""
        self.store = Store(home / "metadata.sqlite3")
        self.snapshots = Snapshotter(home)
        self.storage = StorageWork(self.snapshots, self.store)
        self.base_url = "http://127.0.0.1"
        self._runtimes: dict[str, SpriteRuntime] = {}
        self.creation_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    def sprite_dir(self, name: str) -> Path:
        return self.home / "sprites" / name

    def sprite_root(self, name: str) -> Path:
        return self.sprite_dir(name) / "root"

    def require_sprite(self, name: str) -> SpriteRow:
        """The stored sprite, or NotFound (Invalid for a name that cannot exist)."""
        if not SPRITE_NAME.fullmatch(name):
            raise Invalid(f"invalid sprite name {name[:80]!r}: use lowercase letters, digits "
                          "and '-', starting with a letter or digit (at most 63)")
        row = self.store.get_sprite(name)
        if row is None:
            raise NotFound(f"sprite not found: {name}")
        return row

    def runtime(self, name: str) -> SpriteRuntime:
        """The sprite's runtime, made on first use."""
        runtime = self._runtimes.get(name)
        if runtime is None:
            own_disk = self.disks is not None and self.disks.has_image(name)
            files = (SandboxFiles(self.sprite_dir(name), name, self.disks.views_dir(name),
                                  self.disks.seen_at(name))
                     if own_disk and self.disks is not None
                     else SandboxFiles(self.sprite_dir(name), name))
            sandbox = Sandbox(name, files, self.isolation)
            egress = (egress_for(sandbox, self.egress_test_hosts, self.private_allowed)
                      if self.isolation.sandboxed else None)
            runtime = SpriteRuntime(name=name, root=files.tree, sandbox=sandbox,
                                    sessions=SessionManager(name, sandbox),
                                    services=ServiceManager(name, sandbox), egress=egress)
            self._runtimes[name] = runtime
        return runtime

    def start_sandbox_soon(self, name: str) -> None:
        """Start a sprite's sandbox in the background, so its first command is quick."""
        self._in_background(self.runtime(name).sandbox.start())

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s", task.exception())

    async def checkpoints_changed(self, name: str) -> None:
        """A checkpoint of the sprite was made or deleted: its ``/.sprite/checkpoints``
        views follow in the background (the change is announced before this returns)."""
        runtime = self.runtime(name)
        await self.storage.views_changed(name, runtime.files.checkpoints_dir,
                                         runtime.sandbox.host_id)

    def has_activity(self, name: str) -> bool:
        """Whether the sprite has live exec sessions or running services."""
        runtime = self._runtimes.get(name)
        return runtime is not None and bool(runtime.sessions.list() or runtime.services.running())

    def busy(self) -> bool:
        """Whether any sprite has live exec sessions or running services."""
        return any(self.has_activity(name) for name in list(self._runtimes))

    def seed_tree(self, name: str) -> Path:
        """Create a new sprite's directory tree (on a disk of its own when sprites get
        one), as a sandbox start leaves it (its owner, its mount points), and return its
        root. Blocking."""
        root = self.sprite_root(name)
        if self.disks is not None:
            self.disks.discard(name, root.parent)
        remove_sprite_dir(root.parent)
        if self.disks is not None:
            self.disks.provide(name, root.parent)
        for directory in SEED_DIRECTORIES:
            (root / directory).mkdir(parents=True, exist_ok=True)
        SandboxFiles(root.parent, name).prepare(self.isolation.tree_owner)
        return root

    async def startup(self) -> None:
        """Recover interrupted snapshot work, collect released snapshot data, then boot
        every sprite's services."""
        rows = self.store.list_sprites(limit=1_000_000)
        if self.disks is not None:
            await asyncio.to_thread(self._attach_disks, [row.name for row in rows])
        for row in rows:
            await asyncio.to_thread(SandboxFiles(self.sprite_dir(row.name), row.name).migrate)
            await asyncio.to_thread(self.snapshots.recover, row.name, self.sprite_root(row.name),
                                    self.store)
        await asyncio.to_thread(self.snapshots.collect_garbage, self.store)
        for row in rows:
            await self.checkpoints_changed(row.name)
            await self.runtime(row.name).services.start_all()

    def _attach_disks(self, names: list[str]) -> None:
        """Mount each sprite's disk (gone with the previous server's mount namespace);
        a sprite an older server made has none and stays unlimited: said once."""
        assert self.disks is not None
        self.disks.forget_orphans(set(names))
        unlimited = []
        for name in names:
            if self.disks.has_image(name):
                self.disks.attach(name, self.sprite_dir(name))
            else:
                unlimited.append(name)
        if unlimited:
            log.warning("sprites made before disk limits keep an unlimited disk: %s",
                        ", ".join(unlimited))
        self.disks.make_spare_soon()

    async def discard_runtime(self, name: str) -> None:
        """End a sprite's processes and view builds and forget its runtime (sprite
        deletion)."""
        await self.storage.stop_views(name)
        runtime = self._runtimes.pop(name, None)
        if runtime is not None:
            await runtime.stop_sandbox()

    async def shutdown(self) -> None:
        """Stop every process, remove the sprites' cgroups, close the store and withdraw
        ``server.json``."""
        remove_server_file(self.home, pid=os.getpid())
        await self.storage.idle()
        for name in list(self._runtimes):
            runtime = self._runtimes.pop(name)
            await runtime.stop_sandbox()
        await asyncio.to_thread(self.isolation.cgroups.close, self.home)
        self.store.close()


def state_of(conn: HTTPConnection) -> ServerState:
    """The server state from a request or WebSocket."""
    return conn.app.state.server
