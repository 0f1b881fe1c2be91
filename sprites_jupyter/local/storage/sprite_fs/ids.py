"""User and group ids as the sprite sees them, against the ids on the server's side.

A sandboxed sprite runs in a user namespace (``sprite`` is uid 1000 inside, the server's
own uid outside); the kernel's map is ``/proc/1/uid_map`` in the sprite's view, read as
the server reads it. Without a procfs there (an unsandboxed sprite) ids are the host's.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass

from .resolve import kernel_fs, open_in_root, reopen

OVERFLOW_ID = 65534  # what the kernel shows for an id the namespace does not map
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class IdMap:
    """``(inside, outside, count)`` ranges; no ranges means the identity."""

    ranges: tuple[tuple[int, int, int], ...] = ()

    def to_host(self, sprite_id: int) -> int | None:
        """The server-side id for a sprite id (``-1`` stays ``-1``), ``None`` if unmapped."""
        if sprite_id == -1 or not self.ranges:
            return sprite_id
        for inside, outside, count in self.ranges:
            if inside <= sprite_id < inside + count:
                return outside + sprite_id - inside
        return None

    def to_sprite(self, host_id: int) -> int:
        """The id a sprite process sees for a server-side id."""
        if not self.ranges:
            return host_id
        for inside, outside, count in self.ranges:
            if outside <= host_id < outside + count:
                return inside + host_id - outside
        return OVERFLOW_ID

    def describe(self) -> str:
        return ", ".join(str(inside) if count == 1 else f"{inside}-{inside + count - 1}"
                         for inside, _, count in self.ranges)


def read_id_maps(rootfd: int) -> tuple[IdMap, IdMap]:
    """The sprite's uid and gid maps (identity when its view has no procfs)."""
    maps = []
    for name in ("uid_map", "gid_map"):
        try:
            fd = open_in_root(rootfd, f"/proc/1/{name}")
        except OSError:
            return IdMap(), IdMap()
        try:
            if kernel_fs(fd) != "procfs":
                return IdMap(), IdMap()
            readable = reopen(fd, os.O_RDONLY)
        finally:
            os.close(fd)
        try:
            text = os.read(readable, 65536).decode()
        finally:
            os.close(readable)
        ranges = tuple(tuple(int(n) for n in line.split()) for line in text.splitlines()
                       if line.strip())
        identity = ranges == ((0, 0, 2**32 - 1),)
        maps.append(IdMap(() if identity else ranges))  # type: ignore[arg-type]
    return maps[0], maps[1]


@contextlib.contextmanager
def acting_as(host_id: int | None) -> Iterator[None]:
    """This thread's filesystem checks and new entries as host uid/gid ``host_id`` (the
    sprite user's, when the server is root and the sprite is not): what the sprite user
    could not read or change, the server's fs operations cannot either, and what they
    make is the sprite user's. ``None``: as the server itself.

    ``setfsuid`` is per thread; leaving uid 0 drops the filesystem capabilities
    (``CAP_DAC_OVERRIDE``, ``CAP_CHOWN``, ``CAP_FOWNER``, ...) from this thread until it
    is restored. ``CAP_SYS_RESOURCE`` is lowered too (also per thread), so a write
    stops where the sprite user's would: at its disk's limit, not in the space ext4
    keeps for root."""
    if host_id is None:
        yield
        return
    old_gid = _libc.setfsgid(host_id)
    old_uid = _libc.setfsuid(host_id)
    lowered = _lower_resource_capability()
    try:
        if _libc.setfsuid(-1) != host_id or _libc.setfsgid(-1) != host_id:
            raise OSError(errno.EPERM, f"cannot act as uid {host_id}")
        yield
    finally:
        if lowered:
            _set_resource_capability(True)
        _libc.setfsuid(old_uid)
        _libc.setfsgid(old_gid)


_CAPABILITY_VERSION_3 = 0x20080522
_CAP_SYS_RESOURCE = 24


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _capabilities() -> tuple[ctypes.Array[ctypes.c_uint32], ctypes.Array[_CapData]] | None:
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)  # 0: this thread
    data = (_CapData * 2)()
    return (header, data) if _libc.capget(header, data) == 0 else None


def _lower_resource_capability() -> bool:
    """Clear CAP_SYS_RESOURCE from this thread's effective set; whether it was there."""
    return _set_resource_capability(False)


def _set_resource_capability(raised: bool) -> bool:
    """Raise or clear CAP_SYS_RESOURCE in this thread's effective set; whether it
    changed."""
    caps = _capabilities()
    if caps is None:
        return False
    header, data = caps
    bit = 1 << _CAP_SYS_RESOURCE
    has = bool(data[0].effective & bit)
    if has == raised or (raised and not data[0].permitted & bit):
        return False
    data[0].effective = data[0].effective | bit if raised else data[0].effective & ~bit
    return _libc.capset(header, data) == 0
