"""How a sprite's init is started: the isolation the server chose, the init's command
line (bubblewrap's, or a plain host process), and the sandbox's network set-up."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import dataclass, field

from .bwrap import Bubblewrap, system_links
from .limits import SpriteLimits
from .sandbox_files import SandboxFiles

log = logging.getLogger("sprites_jupyter.local.sandbox")

SPRITE_UID = 1000
# Join the user namespace that owns the sprite's network namespace (the outer one bwrap
# made), then that network namespace, and let unprivileged processes bind ports < 1024.
_NET_SETUP = """
import ctypes, fcntl, os, sys
libc = ctypes.CDLL(None, use_errno=True)
net = os.open(sys.argv[1], os.O_RDONLY)
owner = fcntl.ioctl(net, 0xb701)
for fd, kind in ((owner, 0x10000000), (net, 0x40000000)):
    if libc.setns(fd, kind) != 0:
        sys.exit("setns: " + os.strerror(ctypes.get_errno()))
with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", "w") as f:
    f.write("0")
"""


@dataclass(frozen=True)
class Isolation:
    """How the server runs sprites: sandboxed with ``bwrap``, or on the host (``reason``)."""

    bwrap: Bubblewrap | None
    reason: str = ""
    limits: SpriteLimits = field(default_factory=SpriteLimits)
    """Applied to sandboxed sprites (unsandboxed, a sprite is host processes of the
    server's user, whose per-user counts a limit would share)."""

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    def limits_notice(self) -> str:
        """What each sprite may use and what is not limited (empty when unsandboxed:
        a sprite is then the server user's host processes)."""
        if self.bwrap is None:
            return ""
        return self.limits.notice(self.bwrap.version >= (0, 10))

    def describe(self) -> str:
        """``sandbox`` or ``unsandboxed: REASON`` (what ``%sprite`` shows)."""
        return "sandbox" if self.sandboxed else f"unsandboxed: {self.reason}"


def init_command(name: str, files: SandboxFiles, isolation: Isolation, control_fd: int,
                 info_fd: int, namespaces: tuple[int, ...] = ()) -> tuple[list[str], str]:
    """The init's command line and directory; with ``namespaces`` (a root server's, see
    :mod:`.host_ids`) bwrap sets up in the first and the init starts as the second's
    unmapped root with three capabilities, which it uses to become the sprite user."""
    if not isolation.sandboxed:
        return [sys.executable, "-I", "-S", "-", str(control_fd)], str(files.tree)
    bwrap = isolation.bwrap
    assert bwrap is not None
    python, python_binds = files.init_python()
    if namespaces:
        setup, sprite = namespaces
        identity = ["--userns", str(setup), "--userns2", str(sprite), "--uid", "0",
                    "--gid", "0", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID",
                    "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
        options: dict[str, int | None] = {"uid": SPRITE_UID}
    else:
        identity = ["--unshare-user", "--uid", str(SPRITE_UID), "--gid", str(SPRITE_UID)]
        options = {"uid": None}
    options.update(isolation.limits.init_options())
    argv = [bwrap.path, *identity, "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-net", "--unshare-cgroup-try", "--hostname", name,
            "--die-with-parent", "--as-pid-1", "--new-session", "--info-fd", str(info_fd),
            *files.mounts(isolation.limits.tmpfs_bytes if bwrap.version >= (0, 10) else 0),
            *system_links(), *python_binds, "--chdir", "/",
            python, "-I", "-S", "-", str(control_fd), json.dumps(options)]
    return argv, "/"


async def allow_low_ports(name: str, init_pid: int) -> None:
    """Let the sprite's unprivileged processes bind ports below 1024 (warns if not)."""
    helper = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", "-c", _NET_SETUP, f"/proc/{init_pid}/ns/net",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    _, err = await helper.communicate()
    if helper.returncode != 0:
        log.warning("sprite %s: low ports stay reserved to root: %s", name,
                    err.decode(errors="replace").strip())
