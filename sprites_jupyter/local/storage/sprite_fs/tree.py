"""Walking a directory tree by fds, so a symlink swapped in mid-walk is never followed.

:func:`plan` reads a tree once (pre-order, names sorted) into a list; operations then
:func:`replay` that list, reopening each directory relative to its parent's fd with
``O_NOFOLLOW`` and checking it is still the directory the plan saw. Working from a
plan bounds every recursive operation by what existed when it started: a copy into
its own subtree, or a sprite process adding entries, cannot make it run forever.
Walks stay on the file system where they start (a mount point is listed, not entered),
like ``find -xdev``.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import SpriteFsError, sprite_errors
from .resolve import O_PATH

MAX_DEPTH = 512
_DIR_FLAGS = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# A directory can vanish or be swapped for a symlink or file while it is walked.
_RACES = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One entry of a tree: ``depth`` 1 is a child of the start directory."""

    depth: int
    name: str
    path: str
    info: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.info.st_mode)


def _open_subdir(parent_fd: int, entry: TreeEntry, flags: int) -> int | None:
    """The entry's directory, or ``None`` when it is no longer the one the plan saw."""
    try:
        fd = os.open(entry.name, flags | _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in _RACES:
            return None
        raise
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (entry.info.st_dev, entry.info.st_ino):
        os.close(fd)
        return None
    return fd


def plan(dirfd: int, spath: str, *, recursive: bool = True) -> list[TreeEntry]:
    """Every entry below the directory ``dirfd`` (sprite path ``spath``), pre-order.

    With ``recursive=False`` only its children.
    """
    start = os.fstat(dirfd)
    entries: list[TreeEntry] = []
    top = os.open(".", os.O_RDONLY | _DIR_FLAGS, dir_fd=dirfd)
    stack = [(top, spath, iter(sorted(os.listdir(top))))]
    try:
        while stack:
            fd, path, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(stack.pop()[0])
                continue
            child = posixpath.join(path, name)
            with sprite_errors(child):
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                entry = TreeEntry(len(stack), name, child, info)
                entries.append(entry)
                if not (recursive and entry.is_dir and info.st_dev == start.st_dev):
                    continue
                if len(stack) >= MAX_DEPTH:
                    raise SpriteFsError(errno.EINVAL, child,
                                        f"the tree is more than {MAX_DEPTH} directories deep "
                                        "here: work on a deeper directory first")
                sub = _open_subdir(fd, entry, os.O_RDONLY)
                if sub is not None:
                    stack.append((sub, child, iter(sorted(os.listdir(sub)))))
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    return entries


Visit = Callable[[int, TreeEntry], None]
Leave = Callable[[int, TreeEntry], None]


def replay(dirfd: int, entries: Sequence[TreeEntry], visit: Visit,
           leave: Leave | None = None) -> None:
    """Walk ``entries`` (a :func:`plan` of ``dirfd``) again.

    ``visit(parent_fd, entry)`` runs for every entry, parents first; for directories
    ``leave(parent_fd, entry)`` runs once their subtree is done. A directory that is
    gone or was swapped since the plan is skipped with its subtree. ``parent_fd`` is
    an ``O_PATH`` directory fd, for ``*at`` calls on ``entry.name``.
    """
    stack: list[tuple[int, TreeEntry | None]] = [(os.dup(dirfd), None)]
    skip_below: int | None = None

    def pop() -> None:
        fd, entry = stack.pop()
        os.close(fd)
        if leave is not None and entry is not None:
            with sprite_errors(entry.path):
                leave(stack[-1][0], entry)

    try:
        for entry in entries:
            if skip_below is not None and entry.depth > skip_below:
                continue
            skip_below = None
            while len(stack) > entry.depth:
                pop()
            with sprite_errors(entry.path):
                visit(stack[-1][0], entry)
                if entry.is_dir:
                    sub = _open_subdir(stack[-1][0], entry, O_PATH)
                    if sub is None:
                        skip_below = entry.depth
                    else:
                        stack.append((sub, entry))
        while len(stack) > 1:
            pop()
    finally:
        for fd, _ in stack:
            os.close(fd)
