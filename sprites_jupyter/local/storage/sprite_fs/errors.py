"""The one error the sprite filesystem raises: an errno, a sprite path, a message.

OS errors are turned into it at each operation's edge, so a message never carries a
host path (``OSError.filename`` is dropped; only sprite paths are named).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

_MESSAGES = {
    errno.ENOSPC: "no space left on device: the sprite's disk is full; delete files to "
                  "free space",
    errno.EDQUOT: "disk quota exceeded: delete files to free space",
    errno.ELOOP: "too many levels of symbolic links",
    errno.ENAMETOOLONG: "file name too long",
    errno.EROFS: "read-only file system",
    errno.EXDEV: "cannot rename across file systems: copy, then delete the source",
    errno.EAGAIN: "the path kept changing while it was resolved: retry",
}

_SPECIAL_KINDS = {
    stat.S_IFIFO: "a fifo (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class SpriteFsError(Exception):
    """A filesystem operation failed; ``path`` is the sprite path it concerns."""

    def __init__(self, err: int, path: str, message: str | None = None) -> None:
        self.errno = err
        self.path = path
        self.message = message or _MESSAGES.get(err) or os.strerror(err).lower()
        super().__init__(self.message)


@contextmanager
def sprite_errors(path: str) -> Iterator[None]:
    """Turn OS errors raised inside into :class:`SpriteFsError` naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise SpriteFsError(exc.errno or errno.EIO, path) from None


def special_kind(mode: int) -> str | None:
    """``"a fifo (named pipe)"`` and the like for files that are not regular files,
    directories or symlinks; ``None`` otherwise."""
    return _SPECIAL_KINDS.get(stat.S_IFMT(mode))


def refuse_special(mode: int, path: str, doing: str) -> None:
    """Raise a 400-style error when ``mode`` is a fifo, socket or device."""
    kind = special_kind(mode)
    if kind is not None:
        raise SpriteFsError(errno.EINVAL, path,
                            f"{path} is {kind}, not a regular file: {doing} only works on "
                            "regular files")


def refuse_kernel_fs(kind: str | None, path: str, doing: str) -> None:
    """Raise a 400-style error for a file on a kernel file system (see ``kernel_fs``)."""
    if kind is not None:
        raise SpriteFsError(errno.EINVAL, path,
                            f"{path} is on {kind}, a kernel file system: {doing} does not "
                            "work there; use a command inside the sprite")
