"""The host directories and files behind one sprite's sandbox, and its mount table.

Per sprite, under ``HOME/sprites/NAME/``:

- ``root/``: the sprite's tree, its writable layer: the sandbox's ``/``, and the upper
  layer of each overlaid system directory (``root/usr`` holds what the sprite changed
  in ``/usr``: new files, and overlayfs whiteouts for deleted ones).
- ``platform/``: what belongs to the platform (service definitions, logs, the network
  policy, ``checkpoints/``, ``run/`` for the server's sockets), bound read-only at
  ``/.sprite``: no sprite process can change it or swap it for a symlink.
- ``sandbox/``: the server's own scratch: overlay work directories, the generated
  ``/etc/passwd``, ``/etc/group``, ``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``,
  and the init's error log.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import stat
import sys
from pathlib import Path

from .host_ids import remapped, sprite_host_id, take_ownership

# Host directories the sandbox sees (read-only, with the sprite's changes on top).
BASE_DIRECTORIES = ("usr", "etc", "opt", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
PLATFORM_DIRECTORIES = ("services", "policy", "logs/services", "checkpoints", "run")
_GENERATED = ("passwd", "group", "hosts", "hostname", "resolv.conf")
MOUNT_POINTS = ("proc", "dev", "run", ".sprite")
"""Where the sandbox mounts over the tree: made by :meth:`SandboxFiles.prepare`, so that a
start changes nothing in the tree (a new sprite's base snapshot reads it meanwhile)."""
# /proc entries that change or reveal the host kernel (as container runtimes treat them):
# kept but read-only, or masked by an empty file or directory.
_PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus", "fs")
_PROC_MASKED = ("kcore", "keys", "timer_list", "sched_debug", "latency_stats", "kmsg",
                "acpi", "scsi", "asound")


@functools.cache
def base_directories() -> tuple[str, ...]:
    """The base directories that are real directories on this host (not merged-/usr links)."""
    return tuple(name for name in BASE_DIRECTORIES
                 if os.path.isdir(f"/{name}") and not os.path.islink(f"/{name}"))


@functools.cache
def merged_usr_links() -> tuple[tuple[str, str], ...]:
    """The host's top-level links into /usr (``bin -> usr/bin``), which every sandbox has:
    made in a new tree before its first checkpoint, so no diff reports them as added."""
    return tuple((name, os.readlink(f"/{name}"))
                 for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
                 if os.path.islink(f"/{name}"))


@functools.cache
def _private_etc_entries() -> tuple[tuple[str, bool], ...]:
    """Entries of the host's ``/etc`` that other users may not read (``shadow``, private
    keys): masked in every sandbox, since a root server's sprite user maps onto root."""
    found = []
    for directory, dirs, files in os.walk("/etc"):
        for name in list(dirs):
            path = os.path.join(directory, name)
            with_info = os.lstat(path)
            if not stat.S_ISLNK(with_info.st_mode) and not with_info.st_mode & stat.S_IROTH:
                found.append((path, True))
                dirs.remove(name)
        for name in files:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and not info.st_mode & stat.S_IROTH:
                found.append((path, False))
    return tuple(found)


class SandboxFiles:
    """Where one sprite's sandbox lives on the host; :meth:`mounts` is its bwrap mount table."""

    def __init__(self, sprite_dir: Path, name: str, views: Path | None = None,
                 seen_at: Path | None = None) -> None:
        self.name = name
        self._seen_at = seen_at or sprite_dir
        """Where bubblewrap finds ``sprite_dir``: a path naming no host directory when
        the sprite has a disk of its own (:mod:`.disks`), so the mount table inside the
        sprite does not show it."""
        self.tree = sprite_dir / "root"
        self.platform = sprite_dir / "platform"
        self.scratch = sprite_dir / "sandbox"
        self.init_log = self.scratch / "init.log"
        self._owner_record = self.scratch / "tree-owner"
        self._views = views

    @property
    def run_dir(self) -> Path:
        """Server-owned, seen inside as ``/.sprite/run`` (read-only; unix sockets connect
        once :meth:`expose_socket` has handed them to the sprite user)."""
        return self.platform / "run"

    def expose_socket(self, path: Path) -> None:
        """Let the sprite user connect to a unix socket the server made in :attr:`run_dir`
        (connecting needs write permission on it): a root server gives it to the sprite
        user's host id; otherwise it is the server's own, which the sandbox maps onto
        the sprite user already."""
        if remapped():
            os.chown(path, sprite_host_id(), sprite_host_id(), follow_symlinks=False)

    @property
    def checkpoints_dir(self) -> Path:
        """Seen inside as ``/.sprite/checkpoints`` (read-only views of recent checkpoints):
        in the platform directory, or where the sprite has a disk of its own, beside the
        objects its views link (:mod:`.disks`)."""
        return self._views or self.platform / "checkpoints"

    def create_platform(self) -> None:
        for directory in PLATFORM_DIRECTORIES:
            (self.platform / directory).mkdir(parents=True, exist_ok=True)

    def migrate(self) -> None:
        """Move what a sprite made before ``/.sprite`` left the tree into the platform
        directory (a real directory only: a symlink there is not followed)."""
        old = self.tree / ".sprite"
        if not old.is_dir() or old.is_symlink():
            return
        for name in ("services", "policy", "logs"):
            source, target = old / name, self.platform / name
            if source.is_dir() and not source.is_symlink() and (
                    not target.exists() or not any(target.iterdir())):
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    target.rmdir()
                os.rename(source, target)
        self.create_platform()

    def prepare(self, owner: int | None = None) -> None:
        """Make what the next sandbox start needs; an upper layer that is not a real
        directory (a symlink a process left, say) is replaced, never followed. Writes
        only what is missing or changed, so a sandbox starts on a full disk. ``owner``:
        the sprite user's host id when it is not the server's (see :meth:`_claim_tree`)."""
        self.create_platform()
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(parents=True, exist_ok=True)
        for name in base_directories():
            upper = self.tree / name
            info = os.lstat(upper) if os.path.lexists(upper) else None
            if info is not None and not stat.S_ISDIR(info.st_mode):
                os.unlink(upper)
                info = None
            if info is None:
                os.mkdir(upper, 0o755)
            (self.scratch / "work" / name).mkdir(parents=True, exist_ok=True)
        for name, link in merged_usr_links():
            if not os.path.lexists(self.tree / name):
                os.symlink(link, self.tree / name)
        for name in MOUNT_POINTS:
            point = self.tree / name
            if not os.path.lexists(point):
                os.mkdir(point, 0o755)
        (self.scratch / "empty").mkdir(exist_ok=True)
        (self.scratch / "empty-file").touch()
        if owner is not None:
            self._claim_tree(owner)
        for name, text in self._generated().items():
            generated = self.scratch / name
            with contextlib.suppress(OSError):
                if generated.read_text() == text:
                    continue
            temp = generated.with_name(f".{name}.tmp")
            temp.write_text(text)
            os.chmod(temp, 0o644)
            os.replace(temp, generated)

    def _claim_tree(self, owner: int) -> None:
        """Hand what host root owns in the tree to the sprite user (host id ``owner``),
        once per tree (a new one, a home an older server made): a restore writes as
        the sprite user itself."""
        with contextlib.suppress(OSError):
            if self._owner_record.read_text() == str(owner):
                return
        take_ownership(self.tree, owner)
        take_ownership(self.checkpoints_dir, owner)  # views an older server built as root
        self._owner_record.write_text(str(owner))

    def init_log_size(self) -> int:
        """How much the init's error log holds now (what :meth:`last_error` skips)."""
        try:
            return self.init_log.stat().st_size
        except FileNotFoundError:
            return 0

    def _generated(self) -> dict[str, str]:
        shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
        return {
            "passwd": ("root:x:0:0:root:/root:/usr/sbin/nologin\n"
                       f"sprite:x:1000:1000:sprite:/home/sprite:{shell}\n"
                       "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
            "group": "root:x:0:\nsprite:x:1000:\nnogroup:x:65534:\n",
            "hosts": (f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.name}\n"
                      "::1\tlocalhost ip6-localhost ip6-loopback\n"),
            "hostname": f"{self.name}\n",
            "resolv.conf": "nameserver 127.0.0.1\n",
        }

    def mounts(self, tmpfs_bytes: int = 0) -> list[str]:
        """bwrap arguments: the tree as ``/``, overlays, ``/proc``, ``/dev``, ``/.sprite``, the
        generated ``/etc`` files, and masks over the host's private ``/etc`` entries.
        ``tmpfs_bytes`` caps each in-memory file system (``/run``, ``/dev/shm``)."""
        tree, scratch = self._seen_at / self.tree.name, self._seen_at / self.scratch.name
        args = ["--bind", str(tree), "/"]
        for name in base_directories():
            args += ["--overlay-src", f"/{name}", "--overlay", str(tree / name),
                     str(scratch / "work" / name), f"/{name}"]
        size = ["--size", str(tmpfs_bytes)] if tmpfs_bytes else []
        args += ["--proc", "/proc", *_proc_covers(scratch), "--dev", "/dev",
                 "--perms", "01777", *size, "--tmpfs", "/dev/shm", *size, "--tmpfs", "/run",
                 "--ro-bind", str(self._seen_at / self.platform.name), "/.sprite"]
        if self._views is not None:
            args += ["--ro-bind", str(self._views), "/.sprite/checkpoints"]
        for name in _GENERATED:
            args += ["--ro-bind", str(scratch / name), _etc_target(name)]
        if "etc" in base_directories():
            for path, is_dir in _private_etc_entries():
                source = scratch / ("empty" if is_dir else "empty-file")
                args += ["--ro-bind", str(source), path]
        return args

    def init_python(self) -> tuple[str, list[str]]:
        """The interpreter for the init inside: the system's ``/usr/bin/python3`` when there
        is one, else the server's own, with its installation bound read-only."""
        if os.access("/usr/bin/python3", os.X_OK):
            return "/usr/bin/python3", []
        prefix = os.path.realpath(sys.base_prefix)
        return os.path.realpath(sys.executable), ["--ro-bind", prefix, prefix]

    def last_error(self, since: int = 0) -> str:
        """The last line the init or bwrap wrote to stderr after offset ``since``, if any."""
        try:
            with self.init_log.open("rb") as log:
                log.seek(since)
                lines = log.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""



def remove_sprite_dir(sprite_dir: Path) -> None:
    """Delete a sprite's directory (its sandbox stopped), also the mode-0 directories
    overlayfs leaves in its work directories; never follows a symlink."""
    if not sprite_dir.exists():
        return
    for directory, subdirectories, _ in os.walk(sprite_dir):
        for name in subdirectories:
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                if stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IRWXU != stat.S_IRWXU:
                    os.chmod(path, stat.S_IMODE(info.st_mode) | stat.S_IRWXU)
    shutil.rmtree(sprite_dir, ignore_errors=True)


def _proc_covers(scratch: Path) -> list[str]:
    """bwrap arguments covering the dangerous ``/proc`` entries, in every mode (bwrap's
    own cover of ``/proc/sys`` is skipped when its write test fails on the 0555 directory)."""
    args = []
    for name in _PROC_READ_ONLY:
        if os.path.lexists(f"/proc/{name}"):
            args += ["--ro-bind", f"/proc/{name}", f"/proc/{name}"]
    for name in _PROC_MASKED:
        if os.path.lexists(f"/proc/{name}"):
            empty = "empty" if os.path.isdir(f"/proc/{name}") else "empty-file"
            args += ["--ro-bind", str(scratch / empty), f"/proc/{name}"]
    return args


def _etc_target(name: str) -> str:
    """Where a generated file goes: ``/etc/NAME``, or the file a host symlink there names
    (``/etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf``)."""
    path = f"/etc/{name}"
    if os.path.islink(path):
        target = os.path.join("/etc", os.readlink(path))
        return os.path.normpath(target)
    return path
