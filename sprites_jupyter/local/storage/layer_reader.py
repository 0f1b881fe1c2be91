"""Looking at a sprite's layer while its processes run, by no path they could swap.

A checkpoint reads the tree while the sprite's processes change it. A host path such as
``root/a/shadow`` is looked up again by every call, so a process that swapped ``a`` for
a symlink to ``/etc`` between the listing and the read would have the server (host root,
for a root server) store the host's file as the sprite's. Here a path's directory is
opened beneath the sprite directory without following a symlink at any component
(``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``, or one ``O_NOFOLLOW`` step per
component where the kernel lacks it), and the entry is reached by its one name in that
directory's fd. A path whose directory was removed or swapped is gone for this snapshot,
as a vanished file is. The last directory stays open: one open per directory the reader
moves into, not per file.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from .layer_format import OPAQUE_XATTRS, PLATFORM, PLATFORM_PATH, locate
from .sprite_fs.resolve import O_PATH, have_openat2, open_beneath

__all__ = ["LayerReader"]

_DIR_FLAGS = O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LIST_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# An entry, or one of its directories, removed or swapped for something else; ENXIO: a
# socket where the file was.
_GONE = frozenset((errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV, errno.ENXIO))
T = TypeVar("T")


class LayerReader:
    """Looks at the manifest paths (``a/b``, ``.sprite/services/x``) of the tree ``top``
    and the platform directory beside it; each answer is None when the path is gone."""

    def __init__(self, top: str) -> None:
        self.top = top
        self._tree = os.path.basename(top)
        try:  # the sprite directory is the server's own: no sprite process can swap it
            self._base = os.open(os.path.dirname(top) or ".",
                                 O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, top) from None
        self._dir_path = ""
        self._dir_fd = self._base

    def close(self) -> None:
        self._leave()
        os.close(self._base)

    def __enter__(self) -> LayerReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def lstat(self, rel: str) -> os.stat_result | None:
        return self._in_dir(rel, _lstat)

    def readlink(self, rel: str) -> str | None:
        return self._in_dir(rel, _readlink)

    def open_file(self, rel: str) -> int | None:
        """An fd to read the file ``rel`` (never a symlink's target, never blocking)."""
        return self._in_dir(rel, _open_file)

    def is_opaque(self, rel: str) -> bool:
        """Whether overlayfs marked the directory ``rel`` opaque (it hides the base)."""
        return self._in_dir(rel, _is_opaque) or False

    def listdir(self, rel: str) -> list[str] | None:
        """The names in the directory ``rel``, which the reader then stands in."""
        listed = self._in_dir(rel, _open_listed)
        if listed is None:
            return None
        try:
            names = os.listdir(listed)
        except BaseException:
            os.close(listed)
            raise
        self._leave()
        self._dir_path, self._dir_fd = self._host(rel), listed
        return names

    def _in_dir(self, rel: str, act: Callable[[int, str], T]) -> T | None:
        """``act(directory fd, name)`` on ``rel``; None if it or a directory above it is
        gone or swapped. Other errors name the host path, which
        :func:`.layer_walk.describe_error` turns into the sprite's."""
        directory, _, name = self._host(rel).rpartition("/")
        try:
            if directory != self._dir_path:
                self._leave()
                if directory:
                    self._dir_fd, self._dir_path = self._open_dir(directory), directory
            return act(self._dir_fd, name)
        except OSError as exc:
            if exc.errno in _GONE:
                return None
            raise OSError(exc.errno, exc.strerror, locate(self.top, rel)) from None

    def _host(self, rel: str) -> str:
        """``rel`` relative to the sprite directory (as :func:`.layer_format.locate`)."""
        if rel == ".":
            return self._tree
        if rel == PLATFORM_PATH or rel.startswith(PLATFORM_PATH + "/"):
            return PLATFORM + rel[len(PLATFORM_PATH):]
        return f"{self._tree}/{rel}"

    def _open_dir(self, path: str) -> int:
        """``path`` (relative to the sprite directory) opened ``O_PATH``, no symlink
        followed at any component."""
        if have_openat2():
            return open_beneath(self._base, os.fsencode(path), _DIR_FLAGS)
        fd = self._base
        try:
            for part in path.split("/"):
                step = os.open(part, _DIR_FLAGS, dir_fd=fd)  # a symlink: ENOTDIR
                if fd != self._base:
                    os.close(fd)
                fd = step
        except BaseException:
            if fd != self._base:
                os.close(fd)
            raise
        return fd

    def _leave(self) -> None:
        if self._dir_fd != self._base:
            os.close(self._dir_fd)
        self._dir_path, self._dir_fd = "", self._base


def _lstat(fd: int, name: str) -> os.stat_result:
    return os.stat(name, dir_fd=fd, follow_symlinks=False)


def _readlink(fd: int, name: str) -> str:
    return os.readlink(name, dir_fd=fd)


def _open_file(fd: int, name: str) -> int:
    return os.open(name, _FILE_FLAGS, dir_fd=fd)


def _open_listed(fd: int, name: str) -> int:
    return os.open(name, _LIST_FLAGS, dir_fd=fd)


def _is_opaque(fd: int, name: str) -> bool:
    held = os.open(name, _DIR_FLAGS, dir_fd=fd)
    try:
        for attribute in OPAQUE_XATTRS:
            with contextlib.suppress(OSError):  # the magic link names that very inode
                if os.getxattr(f"/proc/self/fd/{held}", attribute) == b"y":
                    return True
        return False
    finally:
        os.close(held)
