"""Each sprite's own disk: a sparse ext4 image, mounted over the sprite's directory.

The home's filesystem has no quota this server can set on one directory, so a root
server gives every new sprite a filesystem of its own: a sparse file
``HOME/sprite-disks/NAME.ext4`` holding an ext4 filesystem, loop-mounted over
``HOME/sprites/NAME`` (the tree, the platform directory, the sandbox's scratch and a
restore's staging all live in it, so a restore renames within one filesystem). The
sprite user may fill exactly the limit and then gets ``ENOSPC``; ext4 keeps blocks beyond
it for root (the server), so a restore, a service log line or the generated ``/etc``
files still fit when the sprite is full. The image only takes the host space the sprite
really wrote, and deleting the sprite frees it at once.

The mounts live in a mount namespace of the server's own (:func:`private_mount_namespace`,
made before any thread starts), a slave of the host's: when the server ends, however
it ends (``kill -9`` too), the kernel unmounts them and frees their loop devices, and the
host never sees them. Checkpoint views stay on the home's filesystem (they are hard
links to the stored objects), in ``HOME/sprite-views/NAME``.

A mounted image is made ahead of need (a spare), so creating a sprite costs a rename
and a mount move.

bubblewrap is shown each sprite's directory at ``/run/sprites-local/NAME`` (a bind, in a
tmpfs of the namespace's own), because a mount's options keep the paths it was made
from: inside, ``/proc/self/mountinfo`` then names no host directory of the tree's
(its ``/`` is ``/root`` of a loop device). The checkpoint views' line still names their
host directory: they are hard links on the home's filesystem.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
import subprocess
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ...errors import DiskLimitReached, Unavailable
from .limits import GiB, MiB, size_text

log = logging.getLogger("sprites_jupyter.local.disks")

MIN_DISK = 32 * MiB
REAL_SPRITE_DISK = 100 * GiB
_CLONE_NEWNS = 0x00020000
_MS_REC = 0x4000
_MS_SLAVE = 1 << 19
_MS_MOVE = 0x2000
_MNT_DETACH = 2
_TOOL_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"
_MOUNT_OPTIONS = "loop,nosuid,nodev,noatime,noinit_itable"
_MS_BIND = 0x1000
_MS_NOSUID = 2
_MS_NODEV = 4
_TIMEOUT = 60.0
ALIASES = Path("/run/sprites-local")
_libc = ctypes.CDLL(None, use_errno=True)


def default_disk_bytes(home: Path) -> int:
    """What a real sprite has (100 GB), at most a quarter of the filesystem holding
    ``home`` (several sprites must fit), at least :data:`MIN_DISK`."""
    where = home
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        info = os.statvfs(where)
    except OSError:
        return REAL_SPRITE_DISK
    return max(MIN_DISK, min(REAL_SPRITE_DISK, info.f_blocks * info.f_frsize // 4 // MiB * MiB))


def private_mount_namespace() -> str:
    """Give this process a mount namespace of its own, a slave of the host's (host
    mounts still appear, its own never leave it). Call before any thread starts.
    Returns why per-sprite disks cannot be made here, or "" when they can."""
    if os.geteuid() != 0:
        return "the server is not root: loop mounts need root"
    missing = [tool for tool in ("mount", "mkfs.ext4", "tune2fs")
               if shutil.which(tool, path=_TOOL_PATH) is None]
    if missing:
        return f"{', '.join(missing)} not found"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices here (/dev/loop-control is missing)"
    if threading.active_count() != 1:
        return "the server already runs threads (a mount namespace needs a single thread)"
    if _libc.unshare(_CLONE_NEWNS) != 0:
        return f"cannot make a mount namespace: {os.strerror(ctypes.get_errno())}"
    if _libc.mount(b"none", b"/", None, _MS_REC | _MS_SLAVE, None) != 0:
        return f"cannot make the mount namespace private: {os.strerror(ctypes.get_errno())}"
    with contextlib.suppress(OSError):  # without it, mountinfo inside names the home
        os.makedirs(ALIASES, 0o700, exist_ok=True)
        _libc.mount(b"tmpfs", os.fsencode(ALIASES), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                    b"mode=0700")
    return ""


@dataclass(frozen=True)
class DiskUsage:
    """A sprite's disk: bytes used, and the most its user may use."""

    used: int
    limit: int

    @property
    def free(self) -> int:
        return max(0, self.limit - self.used)


class SpriteDisks:
    """The images of one server's sprites and their mounts (in the server's namespace)."""

    def __init__(self, home: Path, limit: int) -> None:
        self.limit = limit
        self.images = home / "sprite-disks"
        self.views = home / "sprite-views"
        self._spare_image = self.images / f".spare-{limit}.ext4"
        self._spare_mount = self.images / ".spare"
        self._lock = threading.Lock()
        self._spare: Future[None] | None = None
        self._maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spare-disk")

    def image(self, name: str) -> Path:
        return self.images / f"{name}.ext4"

    def has_image(self, name: str) -> bool:
        return self.image(name).exists()

    def seen_at(self, name: str) -> Path | None:
        """Where bubblewrap finds the sprite's directory (None: at its own path)."""
        return ALIASES / name if os.path.ismount(ALIASES) else None

    def _show(self, name: str, sprite_dir: Path) -> None:
        alias = self.seen_at(name)
        if alias is None or os.path.ismount(alias):
            return
        alias.mkdir(exist_ok=True)
        if _libc.mount(os.fsencode(sprite_dir), os.fsencode(alias), None, _MS_BIND, None):
            raise OSError(ctypes.get_errno(), f"cannot bind {sprite_dir} at {alias}")

    def views_dir(self, name: str) -> Path:
        """Where the sprite's checkpoint views are made (beside the objects they link)."""
        return self.views / name

    # -- making and removing ---------------------------------------------------

    def provide(self, name: str, sprite_dir: Path) -> None:
        """Mount a new, empty disk of the limit's size at ``sprite_dir`` (made); blocking."""
        self.images.mkdir(mode=0o700, exist_ok=True)
        sprite_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            spare, self._spare = self._spare, None
        try:
            if spare is None or spare.exception() is not None:
                raise OSError(errno.ENOENT, "no spare disk")
            os.rename(self._spare_image, self.image(name))
            if _libc.mount(os.fsencode(self._spare_mount), os.fsencode(sprite_dir), None,
                           _MS_MOVE, None) != 0:
                raise OSError(ctypes.get_errno(), "cannot move the spare disk")
        except OSError:
            self._detach(self._spare_mount)
            self._remove_image(self.image(name))
            try:
                _make_image(self.image(name), self.limit)
                _mount(self.image(name), sprite_dir, self.limit)
            except (OSError, subprocess.SubprocessError) as exc:
                self._remove_image(self.image(name))
                raise Unavailable(f"cannot give sprite {name} its disk: {exc}") from None
        self.make_spare_soon()
        self._show(name, sprite_dir)

    def attach(self, name: str, sprite_dir: Path) -> None:
        """Mount the sprite's existing disk at ``sprite_dir`` unless it is mounted."""
        if not os.path.ismount(sprite_dir):
            sprite_dir.mkdir(parents=True, exist_ok=True)
            _mount(self.image(name), sprite_dir)
        self._show(name, sprite_dir)

    def discard(self, name: str, sprite_dir: Path) -> None:
        """Unmount the sprite's disk and delete it and its views: its space is free at
        once (the sprite's processes must have ended)."""
        alias = self.seen_at(name)
        if alias is not None:
            self._detach(alias)
            with contextlib.suppress(OSError):
                alias.rmdir()
        self._detach(sprite_dir)
        self._remove_image(self.image(name))
        shutil.rmtree(self.views_dir(name), ignore_errors=True)

    def forget_orphans(self, names: set[str]) -> None:
        """Delete the disks of sprites that do not exist (a create or delete cut short)."""
        if not self.images.is_dir():
            return
        for image in self.images.glob("*.ext4"):
            if not image.name.startswith(".") and image.name[:-len(".ext4")] not in names:
                self._remove_image(image)
        for spare in self.images.glob(".spare-*.ext4"):
            if spare != self._spare_image:
                self._remove_image(spare)

    def make_spare_soon(self) -> None:
        """Make (or mount the kept) spare disk in the background unless one is ready."""
        with self._lock:
            if self._spare is None:
                self._spare = self._maker.submit(self._make_spare)

    def _make_spare(self) -> None:
        self.images.mkdir(mode=0o700, exist_ok=True)
        self._spare_mount.mkdir(exist_ok=True)
        if os.path.ismount(self._spare_mount):
            return
        try:
            if not self._spare_image.exists():
                _make_image(self._spare_image, self.limit)
            _mount(self._spare_image, self._spare_mount, self.limit)
        except (OSError, subprocess.SubprocessError) as exc:
            self._remove_image(self._spare_image)
            log.warning("cannot make a spare sprite disk: %s", exc)
            raise

    @staticmethod
    def _detach(mount_point: Path) -> None:
        if os.path.ismount(mount_point):
            _libc.umount2(os.fsencode(mount_point), _MNT_DETACH)

    @staticmethod
    def _remove_image(image: Path) -> None:
        image.unlink(missing_ok=True)

    # -- usage -------------------------------------------------------------------

    def usage(self, sprite_dir: Path) -> DiskUsage | None:
        """What the sprite's disk holds; None when it has none (made unlimited)."""
        if not os.path.ismount(sprite_dir):
            return None
        info = os.statvfs(sprite_dir)
        used = info.f_blocks - info.f_bfree
        return DiskUsage(used * info.f_frsize, (used + info.f_bavail) * info.f_frsize)

    def require_room(self, name: str, sprite_dir: Path, incoming: int, path: str, *,
                     failed: bool = False) -> None:
        """Refuse (DiskLimitReached) a write of ``incoming`` bytes the sprite's own
        processes could not make: the server may use the space kept for root, the API
        must not. ``failed``: a write already ran out of space on the sprite's disk."""
        usage = self.usage(sprite_dir)
        if usage is not None and (failed or incoming > usage.free or usage.free == 0):
            raise over_limit(name, usage, path)


def over_limit(name: str, usage: DiskUsage, path: str) -> DiskLimitReached:
    """The one-line error naming the sprite, its usage and its limit."""
    return DiskLimitReached(
        f"sprite {name} is at its disk limit: {size_text(usage.used)} used of "
        f"{size_text(usage.limit)}; delete files in it, or restart the server with a "
        "larger --max-disk for new sprites", fs_code="ENOSPC", path=path)


def _tool(name: str) -> str:
    return shutil.which(name, path=_TOOL_PATH) or name


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise OSError(f"{os.path.basename(argv[0])}: {lines[-1] if lines else done.returncode}")


def _make_image(image: Path, limit: int) -> None:
    """A sparse ext4 image with room for ``limit`` bytes of the sprite's, ext4's own
    metadata and a reserve for root; its space is taken only as it is written."""
    reserve = min(max(limit // 16, 64 * MiB), GiB, limit // 2)  # tune2fs allows <= 50 %
    size = limit + reserve + limit // 25 + 8 * MiB
    with open(image, "xb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.truncate(size)
    _run([_tool("mkfs.ext4"), "-q", "-F", "-m", "0", "-E",
          "lazy_itable_init=1,lazy_journal_init=1,nodiscard", str(image)])


def _mount(image: Path, mount_point: Path, limit: int | None = None) -> None:
    """Loop-mount ``image`` (freed with its last mount); a fresh one (``limit`` given)
    gets its reserve so that the sprite user may use exactly ``limit`` bytes. mount(8)
    (util-linux >= 2.29) reuses a loop device already on the image, so a killed server's
    lingering sandboxes and its successor share one filesystem, never mount two."""
    _run([_tool("mount"), "-t", "ext4", "-o", _MOUNT_OPTIONS, str(image), str(mount_point)])
    if limit is None:
        return
    try:
        info = os.statvfs(mount_point)  # made with -m 0: only ext4's own reserve now
        kept = info.f_bfree - info.f_bavail
        reserved = max(0, info.f_blocks - kept - limit // info.f_frsize)
        device = os.stat(mount_point).st_dev
        _run([_tool("tune2fs"), "-r", str(reserved),
              _device_path(device)])
        with contextlib.suppress(FileNotFoundError):
            (mount_point / "lost+found").rmdir()
    except BaseException:
        _libc.umount2(os.fsencode(mount_point), _MNT_DETACH)
        raise


def _device_path(device: int) -> str:
    """``/dev/loopN`` for a mounted filesystem's device number."""
    link = os.readlink(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}")
    return f"/dev/{os.path.basename(link)}"
