"""How a sprite's init is started: the isolation the server chose and the init's command
line (bubblewrap's, or a plain host process)."""

from __future__ import annotations

import functools
import marshal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .bwrap import Bubblewrap, system_links
from .cgroups import SpriteCgroups
from .files import SandboxFiles
from .host_ids import remapped, sprite_host_id
from .limits import SpriteLimits

SPRITE_UID = 1000
INIT_LOADER = ("import marshal,sys\nd=sys.stdin.buffer.read()\ntag,size,d=d.split(b'\\n',2)\n"
               "size=int(size)\nown=str(sys.implementation.cache_tag).encode()\n"
               "exec(marshal.loads(d[:size]) if tag==own and sys.version_info.releaselevel=="
               "'final' else compile(d[size:],'sprite_init','exec'))")
"""Runs the init from stdin (``python -c``): its code compiled by the server when the
interpreter inside reads the same bytecode (the same ``cache_tag``, a final release),
else its source, compiled there (:func:`init_payload` writes both)."""


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
    disk_unlimited: str = "the server made no mount namespace of its own"
    """Why sprites get no disk of their own (:mod:`.disks`); "" when they do."""

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    @property
    def disk_limited(self) -> bool:
        """Whether new sprites get a disk of the limit's size (:mod:`.disks`)."""
        return self.sandboxed and self.limits.disk_bytes > 0 and not self.disk_unlimited

    @property
    def tree_owner(self) -> int | None:
        """The host uid (and gid) of the sprite user when the server is root and sprites
        sandboxed (:mod:`.host_ids`); ``None`` when it is the server's own."""
        return sprite_host_id() if self.sandboxed and remapped() else None

    def limits_notice(self) -> str:
        """What each sprite may use and what is not limited (empty when unsandboxed:
        a sprite is then the server user's host processes)."""
        if self.bwrap is None:
            return ""
        return self.limits.notice(self.bwrap.version >= (0, 10), self.cgroups,
                                  self.disk_unlimited)

    def describe(self) -> str:
        """``sandbox`` or ``unsandboxed: REASON`` (what ``%sprite`` shows)."""
        return "sandbox" if self.sandboxed else f"unsandboxed: {self.reason}"


def host_init_command(files: SandboxFiles, control_fd: int) -> tuple[list[str], str]:
    """The unsandboxed init's command line and directory: this Python, in the tree."""
    return [sys.executable, "-I", "-S", "-c", INIT_LOADER, str(control_fd)], str(files.tree)


def bwrap_command(files: SandboxFiles, isolation: Isolation, control_fd: int, info_fd: int,
                  arguments_fd: int, namespaces: tuple[int, ...] = ()) -> list[str]:
    """bubblewrap's command line, what no sprite changes: the namespaces, the capabilities
    and the init. What is the sprite's own (:func:`sprite_arguments`: its hostname and
    mount table) bubblewrap reads from ``arguments_fd`` (``--args``) before it does
    anything, so it can be started before they are known; were they never written, it
    would run the init in an empty root, where there is nothing to run.

    With ``namespaces`` (a root server's, see :mod:`.host_ids`) bwrap sets up in the first
    and the init starts as the second's unmapped root with three capabilities, which it
    uses to become the sprite user."""
    bwrap = isolation.bwrap
    assert bwrap is not None
    python, _ = files.init_python()
    if namespaces:
        setup, sprite = namespaces
        identity = ["--userns", str(setup), "--userns2", str(sprite), "--uid", "0",
                    "--gid", "0", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID",
                    "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
        options = {"uid": SPRITE_UID}
    else:
        identity = ["--unshare-user", "--uid", str(SPRITE_UID), "--gid", str(SPRITE_UID)]
        options = {}
    options.update(isolation.limits.init_options())
    return [bwrap.path, *identity, "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-net", "--unshare-cgroup-try", "--die-with-parent", "--as-pid-1",
            "--new-session", "--info-fd", str(info_fd), "--args", str(arguments_fd),
            python, "-I", "-S", "-c", INIT_LOADER, str(control_fd),
            *(f"{name}={value}" for name, value in options.items() if value)]


def sprite_arguments(name: str, files: SandboxFiles, isolation: Isolation) -> list[str]:
    """What :func:`bwrap_command` reads of the sprite ``name``: its hostname, its mount
    table (:meth:`.SandboxFiles.mounts`) and the directory the init starts in."""
    bwrap = isolation.bwrap
    assert bwrap is not None
    _, python_binds = files.init_python()
    return ["--hostname", name,
            *files.mounts(isolation.limits.tmpfs_bytes if bwrap.version >= (0, 10) else 0),
            *system_links(), *python_binds, "--chdir", "/"]


@functools.cache
def init_payload() -> bytes:
    """What the init reads on stdin (see INIT_LOADER): this interpreter's ``cache_tag``,
    the size of the init's code compiled here, that code, the init's source. Compiling
    is a fifth of the init's start; a sandbox whose Python differs compiles the source."""
    source = Path(__file__).with_name("sprite_init.py").read_bytes()
    cache_tag = sys.implementation.cache_tag
    usable = cache_tag is not None and sys.version_info.releaselevel == "final"
    code = marshal.dumps(compile(source, "sprite_init", "exec")) if usable else b""
    tag = cache_tag.encode() if usable and cache_tag is not None else b"-"
    return b"%s\n%d\n%s%s" % (tag, len(code), code, source)
