"""One sprite's machine: its init, in a bubblewrap sandbox or (fallback) on the host.

Every process of a sprite (exec commands, sessions, services, the platform's own
helpers) is forked by the sprite's init (:mod:`.sprite_init`), so they share one
sandbox: one PID, mount, IPC, UTS (hostname = the sprite's name), network and user
namespace. The server makes the pipes (or the init the pty) and talks to the init
over a unix socket; see :mod:`.sprite_init` for the messages.

The sandbox's ``/`` is the sprite's tree (its writable layer); the host's system
directories are overlaid read-only beneath their own paths (``/usr``, ``/etc``, ``/opt``,
...), so every write lands in the tree and never on the host. ``/.sprite`` is the
server-owned platform directory, bound read-only. Stopping the sandbox kills its init,
and with it (PID namespace) every process of the sprite.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import getpass
import json
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from ...errors import LocalError
from ...storage import paths
from .cgroups import SpriteCgroup
from .child import Child, SpawnFailed
from .files import SandboxFiles
from .host_ids import SpareNamespaces, remapped
from .init_channel import close_all, is_int, read_all
from .init_launch import Isolation, sprite_arguments
from .init_link import InitGone, InitLink
from .init_process import LaunchedInit, launch_init
from .limits import size_text
from .refills import Refills

log = logging.getLogger("sprites_jupyter.local.sandbox")

READY_TIMEOUT = 60.0
_FALLBACK_GRACE = 2.0
_SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NAMESPACES = SpareNamespaces()
"""This server's source of user namespace pairs for sandboxes (a root server's)."""


@functools.cache
def _host_user() -> str:
    """This server's user name, looked up once (``getpass`` reads /etc/passwd each time)."""
    return getpass.getuser()

class Sandbox:
    """The init of one sprite and how to reach it; started on first use."""

    def __init__(self, name: str, files: SandboxFiles, isolation: Isolation) -> None:
        self.name = name
        self.files = files
        self.isolation = isolation
        self._lock = asyncio.Lock()
        self._released = asyncio.Event()
        self._released.set()
        self._process: asyncio.subprocess.Process | None = None
        self._link: InitLink | None = None
        self._init_pid: int | None = None
        self._cgroup: SpriteCgroup | None = None
        self._launched: LaunchedInit | None = None
        """The next start's init, launched ahead (:meth:`launch_ahead`)."""
        self.platform_env: dict[str, str] = {}
        self.network_hooks: list[Callable[[str], Awaitable[None]]] = []
        """Called with the network namespace (``/proc/PID/ns/net``) at each sandbox start,
        while the init starts and before any process of the sprite runs (the egress
        bridge sets the namespace up here: low ports, the proxy's sockets)."""
        self.started_hooks: list[Callable[[], None]] = []
        """Called after each start, once its first command has ended (or a moment later,
        :mod:`.refills`): what a start used up ahead (a spare bridge) is made again here,
        so that it takes the CPU from neither the start nor that command."""
        self._refills = Refills()

    @property
    def running(self) -> bool:
        return self._link is not None

    # -- how the sprite's processes see things ---------------------------------

    def location(self, spath: str) -> str:
        """Where the init finds the sprite path ``spath``: itself in a sandbox, the path
        under the tree unsandboxed (Forbidden when a symlink there leads out of the tree)."""
        if self.isolation.sandboxed:
            return spath
        return str(paths.host_path(self.files.tree, spath))

    def executable(self, path: str) -> str:
        """The executable to run for ``path``; unsandboxed, a sprite path such as
        ``/home/sprite/run.sh`` runs from the tree when the host has no such file."""
        if self.isolation.sandboxed or not path.startswith("/") or os.path.exists(path):
            return path
        with contextlib.suppress(LocalError):
            mapped = paths.host_path(self.files.tree, path)
            if mapped.exists():
                return str(mapped)
        return path

    @property
    def host_id(self) -> int | None:
        """The host uid (and gid) of the sprite user when the server is root and the
        sprite sandboxed (:mod:`.host_ids`); ``None`` when it is the server's own."""
        return self.isolation.tree_owner

    @property
    def user(self) -> str:
        """The user name the sprite's processes run as."""
        return "sprite" if self.isolation.sandboxed else _host_user()

    def base_env(self) -> dict[str, str]:
        """PATH, HOME, USER, LOGNAME and LANG as a fresh login of the sprite user has them."""
        path = (_SANDBOX_PATH if self.isolation.sandboxed
                else os.environ.get("PATH", os.defpath))
        return {"PATH": path, "HOME": self.location(paths.SPRITE_HOME), "USER": self.user,
                "LOGNAME": self.user, "LANG": os.environ.get("LANG", "C.UTF-8")}

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Start the init (and its sandbox) unless it runs; raises InitGone if it cannot.
        Waits while the sandbox is held :meth:`stopped`."""
        await self._released.wait()
        async with self._lock:
            if self._link is not None:
                return
            launched, self._launched = self._launched, None
            if launched is None:
                launched = await self._launch()
            self._process = launched.process
            try:
                arguments = await asyncio.to_thread(self._prepare)
                await launched.tell(arguments)
            except BaseException as exc:
                launched.close_ends()
                await self._teardown()
                if isinstance(exc, OSError):
                    raise InitGone(f"the sandbox of {self.name} did not start: {exc}") from None
                raise
            self._link = InitLink(self.name, launched.control, self._lost)
            ready = self._link.ready
            try:
                if launched.info_r is not None:
                    await self._set_up_network(launched.info_r, ready)
                    self._refills.schedule([
                        *([_NAMESPACES.make_ahead] if launched.took_namespaces else []),
                        *self.started_hooks])
                else:
                    await asyncio.wait_for(ready, READY_TIMEOUT)
                    self._init_pid = self._process.pid
            except BaseException as exc:
                await self._teardown()
                raise InitGone(f"the sandbox of {self.name} did not start: "
                               f"{self.files.last_error(launched.log_start) or exc}") from None
            finally:
                launched.close_report()

    async def _set_up_network(self, info_r: int, ready: asyncio.Future[Any]) -> None:
        """Set the sandbox's network up while its init starts: bwrap reports the init's
        pid once the namespaces exist, before the init's Python runs, so the hooks that
        enter the network namespace overlap the init's start instead of following it.
        All are done before the first process of the sprite is asked for. No pid (bwrap
        failed) raises, and the caller says bwrap's complaint."""
        info = await asyncio.wait_for(asyncio.to_thread(read_all, info_r), READY_TIMEOUT)
        self._init_pid = int(json.loads(info)["child-pid"])
        netns = f"/proc/{self._init_pid}/ns/net"
        results = await asyncio.gather(asyncio.wait_for(ready, READY_TIMEOUT),
                                       *(hook(netns) for hook in self.network_hooks),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def stop(self) -> None:
        """Kill the init and so every process of the sprite; wait until they are gone."""
        async with self._lock:
            await self._teardown()

    @contextlib.asynccontextmanager
    async def stopped(self) -> AsyncIterator[None]:
        """Stop the sandbox and keep it stopped for the block (a restore swaps the tree):
        a command asked for meanwhile starts after it, on the finished tree."""
        self._released.clear()
        try:
            await self.stop()
            await self.launch_ahead()
            yield
        finally:
            self._released.set()

    async def launch_ahead(self) -> None:
        """Launch the next start's init now (:mod:`.init_process`), so that it joins the
        sprite's cgroup while the caller works (a restore, a new sprite's base snapshot);
        a failure is the start's to report."""
        if not self.isolation.sandboxed:
            return
        async with self._lock:
            if self._link is None and self._launched is None:
                with contextlib.suppress(InitGone):
                    self._launched = await self._launch()

    def _lost(self) -> None:
        """The init ended or misbehaved: stop the sandbox (and so every process of it)."""
        asyncio.get_running_loop().create_task(self.stop())

    async def _teardown(self) -> None:
        self._refills.run()  # the next start (after a restore, say) takes the spares
        launched, self._launched = self._launched, None
        if launched is not None:
            await launched.discard()
        link, self._link = self._link, None
        if link is not None:
            link.close()
        process, self._process = self._process, None
        if process is not None:
            if self._init_pid is not None and self.isolation.sandboxed:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(self._init_pid, signal.SIGKILL)
            else:  # unsandboxed, the init kills its children when its socket closes
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(process.wait()), _FALLBACK_GRACE)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        self._init_pid = None
        if link is not None:
            link.fail_all(-signal.SIGKILL)
        await self._leave_cgroup()

    async def _launch(self) -> LaunchedInit:
        """Launch the init (:mod:`.init_process`) with what it needs of the host: its
        user namespaces (a root server's) and a fresh cgroup (:mod:`.cgroups`), which it
        joins so that every process of the sprite counts toward its totals."""
        namespaces = await asyncio.to_thread(self._host_resources)
        try:
            return await launch_init(self.files, self.isolation, namespaces, self._cgroup)
        except BaseException as exc:
            await self._leave_cgroup()
            if isinstance(exc, OSError):
                raise InitGone(f"the sandbox of {self.name} did not start: {exc}") from None
            raise

    def _host_resources(self) -> tuple[int, ...]:
        """The user namespaces (returned) and the cgroup of the next start, in one
        blocking call (each hop to a thread is a wake-up a start waits for)."""
        self.files.scratch.mkdir(parents=True, exist_ok=True)  # the init's log
        if not self.isolation.sandboxed:
            return ()
        try:
            namespaces = _NAMESPACES.take() if remapped() else ()
        except OSError as exc:
            raise InitGone(f"the sandbox of {self.name} did not start: {exc}") from None
        try:
            self._cgroup = self.isolation.cgroups.make(self.name)
        except OSError as exc:
            for fd in namespaces:
                os.close(fd)
            raise InitGone(f"the sandbox of {self.name} did not start: {exc}") from None
        return namespaces

    def _prepare(self) -> list[str]:
        """Make the sprite's files ready (:meth:`.SandboxFiles.prepare`) and return its
        sandbox's arguments (hostname, mount table) for bubblewrap. Blocking."""
        self.files.prepare(self.host_id)
        return sprite_arguments(self.name, self.files, self.isolation) \
            if self.isolation.sandboxed else []

    async def _leave_cgroup(self) -> None:
        """Remove the sprite's cgroup once nothing runs in it (a failure is logged: the
        server removes what is left when it ends or starts again)."""
        cgroup, self._cgroup = self._cgroup, None
        if cgroup is not None:
            try:
                await asyncio.to_thread(cgroup.remove)
            except OSError as exc:
                log.warning("could not remove the cgroup of sprite %s: %s", self.name, exc)

    def oom_kills(self) -> int:
        """The OOM kills the sprite's cgroup counted since its sandbox started."""
        return self._cgroup.oom_kills() if self._cgroup is not None else 0

    def memory_kill_note(self, returncode: int, oom_kills_before: int) -> str | None:
        """``killed: over the sprite's memory limit (N)`` when a process ended by SIGKILL
        (or a shell reporting one, 137) and the sprite's cgroup counted an OOM kill in
        its lifetime (it or a child of it was the one the kernel chose)."""
        if self._cgroup is None or returncode not in (-signal.SIGKILL, 128 + signal.SIGKILL):
            return None
        if self._cgroup.oom_kills() <= oom_kills_before:
            return None
        return ("killed: over the sprite's memory limit "
                f"({size_text(self.isolation.limits.memory_bytes)})")

    async def _request(self, message: dict[str, Any], fds: Sequence[int] = ()
                       ) -> tuple[InitLink, tuple[dict[str, Any], list[int]]]:
        await self.start()
        link = self._link
        if link is None:
            raise InitGone(f"the sandbox of {self.name} stopped")
        return link, await link.request(message, fds)

    # -- what the rest of the server uses -------------------------------------

    async def spawn(self, argv: list[str], executable: str, env: dict[str, str], cwd: str, *,
                    stdio: tuple[int, int, int] | None = None, tty: bool = False, rows: int = 24,
                    cols: int = 80) -> tuple[Child, int | None]:
        """Fork a command in a new session; ``cwd`` as the sprite's processes see paths.

        Pass ``stdio`` (three fds, dup'd into the child) or ``tty=True`` (the init makes
        the pty; its master fd is returned). Raises SpawnFailed or InitGone.
        """
        env = {**env, **self.platform_env}
        request = {"op": "spawn", "argv": argv, "executable": executable, "env": env,
                   "cwd": cwd, "tty": tty, "rows": rows, "cols": cols}
        oom_kills_before = self.oom_kills()
        try:
            link, (answer, fds) = await self._request(request, [] if tty else list(stdio or ()))
        except BaseException as exc:
            self._refills.run()
            if isinstance(exc, ValueError):
                raise SpawnFailed(errno.EINVAL, str(exc), "exec") from None
            raise
        master = fds.pop(0) if tty and fds else None
        close_all(fds)
        if "error" in answer or not is_int(answer.get("pid")) or (tty and master is None):
            if master is not None:
                os.close(master)
            code = answer.get("errno")
            code = code if is_int(code) else errno.EIO
            message = str(answer.get("error", "the init gave no process"))
            limit = self.isolation.limits.processes
            if code == errno.EAGAIN and limit and self.isolation.sandboxed:
                message = (f"sprite {self.name} is at its limit of {limit} processes "
                           "(sprites-local serve --max-processes): end some, or raise it")
            self._refills.run()
            raise SpawnFailed(code, message, "cwd" if answer.get("stage") == "cwd" else "exec")
        child = Child(self, answer["pid"], oom_kills_before, self._refills.run)
        link.adopt(child.pid, child._finish)
        return child, master

    def send_signal(self, pid: int, sig: int) -> None:
        """Signal a process group of the sprite (fire and forget)."""
        if self._link is not None:
            self._link.send_signal(pid, sig)

    async def connect(self, host: str, port: int) -> socket.socket:
        """A TCP connection to ``host:port`` made from inside the sprite (its loopback)."""
        if not self.isolation.sandboxed:
            loop = asyncio.get_running_loop()
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
            except BaseException:
                sock.close()
                raise
            return sock
        _, (answer, fds) = await self._request({"op": "connect", "host": host, "port": port})
        if "error" in answer or not fds:
            close_all(fds)
            code = answer.get("errno")
            code = code if is_int(code) else errno.ECONNREFUSED
            raise OSError(code, f"{answer.get('error', os.strerror(code))} ({host}:{port} in "
                                f"sprite {self.name})")
        sock = socket.socket(fileno=fds[0])
        close_all(fds[1:])
        sock.setblocking(False)
        return sock

    async def view_root(self) -> Path:
        """The host path through which the sprite's filesystem looks as it does inside."""
        if not self.isolation.sandboxed:
            return self.files.tree
        await self.start()
        return Path(f"/proc/{self._init_pid}/root")

    async def proc_root(self) -> Path:
        """The ``/proc`` that shows the sprite's processes with the pids they have inside."""
        if not self.isolation.sandboxed:
            return Path("/proc")
        return await self.view_root() / "proc"
