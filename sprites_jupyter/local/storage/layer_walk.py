"""Walking a sprite's layer for a snapshot or a restore: its tree and the captured parts
of its platform directory, each directory listed once, nothing followed (every path
looked at through a :class:`.layer_reader.LayerReader`, so a directory a sprite process
swaps for a symlink mid-walk is gone, never followed)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator

from .layer_format import CAPTURED_PLATFORM, PLATFORM, PLATFORM_PATH, is_whiteout
from .layer_reader import LayerReader


def walk_layer(tree: LayerReader) -> Iterator[tuple[str, os.stat_result]]:
    """``(path, lstat)`` of the root (``.``) and every directory, file, symlink and whiteout
    under it, directories before their contents; symlinks are not followed. ``.sprite``
    is the platform directory's captured parts, not the tree's mount point."""
    info = tree.lstat(".")
    if info is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), tree.top)
    yield ".", info
    yield from _walk_below(tree, ".", skip=PLATFORM_PATH)
    yield from walk_platform(tree)


def walk_platform(tree: LayerReader) -> Iterator[tuple[str, os.stat_result]]:
    """``(path, lstat)`` of what a checkpoint holds of the platform directory beside the
    tree, as ``.sprite/...``."""
    info = tree.lstat(PLATFORM_PATH)
    if info is None or not stat.S_ISDIR(info.st_mode):
        return
    yield PLATFORM_PATH, info
    for name in CAPTURED_PLATFORM:
        path = f"{PLATFORM_PATH}/{name}"
        info = tree.lstat(path)
        if info is not None and stat.S_ISDIR(info.st_mode):
            yield path, info
            yield from _walk_below(tree, path)


def _walk_below(tree: LayerReader, top: str, skip: str = ""
                ) -> Iterator[tuple[str, os.stat_result]]:
    """Each directory is listed once and what it holds is ``lstat``-ed relative to it (one
    path component to resolve per file, not the whole path: a quarter faster)."""
    pending = [top]
    is_file, is_dir = stat.S_ISREG, stat.S_ISDIR
    while pending:
        directory = pending.pop()
        names = tree.listdir(directory)
        if names is None:
            continue  # removed (or replaced, by a symlink too) since it was listed
        start = "" if directory == "." else f"{directory}/"
        for name in names:
            if not start and name == skip:
                continue
            path = start + name
            info = tree.lstat(path)
            if info is None:
                continue
            mode = info.st_mode
            if is_file(mode):
                yield path, info
            elif is_dir(mode):
                pending.append(path)
                yield path, info
            elif stat.S_ISLNK(mode) or is_whiteout(info):
                yield path, info
            # fifos, sockets and devices are not snapshotted


def describe_error(exc: OSError, top: str) -> str:
    """An OS error in terms of the sprite's paths (``/home/sprite/x``), not the host's."""
    where = os.fspath(exc.filename) if exc.filename is not None else ""
    platform = os.path.join(os.path.dirname(top), PLATFORM)
    if where == platform or where.startswith(platform + os.sep):
        where = "/" + PLATFORM_PATH + where[len(platform):]
    elif where == top or where.startswith(top + os.sep):
        rel = os.path.relpath(where, top)
        where = "/" if rel == "." else "/" + rel
    reason = exc.strerror or str(exc)
    return f"{reason}: {where}" if where else reason
