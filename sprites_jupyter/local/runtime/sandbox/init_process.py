"""A sprite's init process from its launch until it runs: started, in its cgroup, before
its sandbox's mount table is known, then told it.

Joining a cgroup v1 costs the joining process a kernel grace period (several
milliseconds, longer on a busy host) before bubblewrap may even make its namespaces,
so a restore launches the next init as soon as the old one is gone, and that wait
passes while the restore works; bubblewrap waits for the mount table (``--args``) and
the init for its code (stdin) until :meth:`LaunchedInit.tell`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from dataclasses import dataclass

from .cgroups import SpriteCgroup
from .files import SandboxFiles
from .init_channel import MAX_MESSAGE
from .init_launch import Isolation, bwrap_command, host_init_command, init_payload

_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
_SETPRIV = shutil.which("setpriv", path=_ENV["PATH"])
"""util-linux's ``setpriv``, which makes a launched bubblewrap die with the server from
its first instruction: bubblewrap's own ``--die-with-parent`` takes effect only once it
has read its ``--args``, which a server killed meanwhile ends with an empty table, and a
bubblewrap then left without its parent could wait for ever."""


@dataclass
class LaunchedInit:
    """A started init and the server's ends of it: ``control`` (its socket), ``info_r``
    (bubblewrap's report, sandboxed) and ``arguments_w`` (bubblewrap's ``--args``, until
    told); ``log_start`` is where its errors begin in the sprite's init log."""

    process: asyncio.subprocess.Process
    control: socket.socket
    info_r: int | None
    arguments_w: int | None
    log_start: int
    took_namespaces: bool

    async def tell(self, arguments: list[str]) -> None:
        """Give bubblewrap the sprite's ``arguments`` (sandboxed) and the init its code."""
        if self.arguments_w is not None:
            data = b"".join(os.fsencode(argument) + b"\0" for argument in arguments)
            writer, self.arguments_w = self.arguments_w, None
            try:
                await asyncio.to_thread(_write_all, writer, data)
            finally:
                os.close(writer)
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(init_payload())
        with contextlib.suppress(ConnectionError):
            await stdin.drain()
        stdin.close()

    def close_report(self) -> None:
        """Close bubblewrap's report (read by now, or of no more use)."""
        if self.info_r is not None:
            os.close(self.info_r)
            self.info_r = None

    def close_ends(self) -> None:
        """Close the server's ends (the init is gone, or being killed unlinked)."""
        self.control.close()
        self.close_report()
        if self.arguments_w is not None:
            os.close(self.arguments_w)
            self.arguments_w = None

    async def discard(self) -> None:
        """Kill it before it ran anything (its sandbox was stopped meanwhile)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()
        self.close_ends()


async def launch_init(files: SandboxFiles, isolation: Isolation, namespaces: tuple[int, ...],
                      cgroup: SpriteCgroup | None) -> LaunchedInit:
    """Start the init of the sprite whose ``files`` these are (in ``cgroup`` from its
    first instruction on, with ``namespaces`` when given, which are closed here); it
    waits to be told. Raises OSError when it cannot start."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (parent, child):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_MESSAGE)
    ends: list[int] = []
    kept: list[int] = []
    try:
        if isolation.sandboxed:
            info_r, info_w = os.pipe()
            arguments_r, arguments_w = os.pipe()
            ends, kept = [info_w, arguments_r], [info_r, arguments_w]
            argv, cwd = bwrap_command(files, isolation, child.fileno(), info_w, arguments_r,
                                      namespaces), "/"
        else:
            argv, cwd = host_init_command(files, child.fileno())
        if cgroup is not None:
            argv = cgroup.join_command(argv)
        if isolation.sandboxed and _SETPRIV is not None:
            argv = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        log_start = files.init_log_size()
        with open(files.init_log, "ab") as errors:
            process = await asyncio.create_subprocess_exec(
                *argv, cwd=cwd, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL, stderr=errors,
                pass_fds=(child.fileno(), *ends, *namespaces), start_new_session=True,
                env=_ENV)
    except BaseException:
        parent.close()
        for fd in kept:
            os.close(fd)
        raise
    finally:
        child.close()
        for fd in (*ends, *namespaces):
            os.close(fd)
    return LaunchedInit(process, parent, kept[0] if kept else None,
                        kept[1] if kept else None, log_start, bool(namespaces))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
