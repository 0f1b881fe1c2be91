"""How a sprite's init is started: the isolation the server chose and the init's command
line (bubblewrap's, or a plain host process)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from .bwrap import Bubblewrap, system_links
from .cgroups import SpriteCgroups
from .files import SandboxFiles
from .limits import SpriteLimits

SPRITE_UID = 1000


@dataclass(frozen=True)
class Isolation:
    """How the server runs sprites: sandboxed with ``bwrap``, or on the host (``reason``)."""

    bwrap: Bubblewrap | None
    reason: str = ""
    limits: SpriteLimits = field(default_factory=SpriteLimits)
    """Applied to sandboxed sprites (unsandboxed, a sprite is host processes of the
    server's user, whose per-user counts a limit would share)."""
    cgroups: SpriteCgroups = field(default_factory=lambda: SpriteCgroups.unused(
        "the server made none"))
    """Where sandboxed sprites get their memory and process totals (:mod:`.cgroups`)."""

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    def limits_notice(self) -> str:
        """What each sprite may use and what is not limited (empty when unsandboxed:
        a sprite is then the server user's host processes)."""
        if self.bwrap is None:
            return ""
        return self.limits.notice(self.bwrap.version >= (0, 10), self.cgroups)

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

