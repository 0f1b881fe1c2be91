"""Refusing to remove, rename or replace what the sandbox mounted.

The server acts on a sprite's view from the host's mount namespace, where a sandbox
mount point is an ordinary name: an unlink or a rename there would lazily detach the
mount in the sprite (its generated ``/etc/passwd``, the ``/etc/shadow`` mask, its
read-only ``/.sprite``). Inside the sprite the kernel answers EBUSY; the API answers
that the path is read-only.
"""

from __future__ import annotations

import contextlib
import errno
import os

from .errors import SpriteFsError
from .resolve import O_PATH


def _mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as info:
        for line in info:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(errno.ENOTSUP, "no mnt_id in fdinfo")


def is_mount_point(dir_fd: int, name: str) -> bool:
    """Whether ``name`` in the directory ``dir_fd`` is the root of another mount."""
    if not name:
        return False
    try:
        fd = os.open(name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    try:
        return _mount_id(fd) != _mount_id(dir_fd)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def refuse_mount_point(dir_fd: int, name: str, path: str, doing: str) -> None:
    """Raise a read-only error naming ``path`` when the sandbox mounted it."""
    if is_mount_point(dir_fd, name):
        raise SpriteFsError(errno.EROFS, path,
                            f"{path} is read-only: the sandbox mounts it there, so {doing} "
                            "cannot replace, move or remove it")
