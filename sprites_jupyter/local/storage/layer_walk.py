"""Walking a sprite's layer for a snapshot or a restore: its tree and the captured parts
of its platform directory, each directory opened once, nothing followed."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator

from .layer_format import CAPTURED_PLATFORM, PLATFORM, PLATFORM_PATH, is_whiteout

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def walk_layer(top: str) -> Iterator[tuple[str, os.stat_result]]:
    """``(path, lstat)`` of the root (``.``) and every directory, file, symlink and whiteout
    under it, directories before their contents; symlinks are not followed. ``.sprite``
    is the platform directory's captured parts, not the tree's mount point."""
    yield ".", os.lstat(top)
    yield from _walk_below(top, "", skip=PLATFORM_PATH)
    yield from walk_platform(top)


def walk_platform(top: str) -> Iterator[tuple[str, os.stat_result]]:
    """``(path, lstat)`` of what a checkpoint holds of the platform directory beside the
    tree ``top``, as ``.sprite/...``."""
    platform = os.path.join(os.path.dirname(top), PLATFORM)
    try:
        info = os.lstat(platform)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        return
    yield PLATFORM_PATH, info
    for name in CAPTURED_PLATFORM:
        path = os.path.join(platform, name)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(info.st_mode):
            yield f"{PLATFORM_PATH}/{name}", info
            yield from _walk_below(path, f"{PLATFORM_PATH}/{name}")


def _walk_below(top: str, base: str, skip: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """Each directory is opened once and what it holds is ``lstat``-ed relative to it (one
    path component to resolve per file, not the whole path: a quarter faster)."""
    pending = [(base, top)]
    is_file, is_dir = stat.S_ISREG, stat.S_ISDIR
    while pending:
        prefix, directory = pending.pop()
        try:
            fd = os.open(directory, _DIRECTORY_FLAGS)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                continue  # removed (or replaced, by a symlink too) since it was listed
            raise
        try:
            with os.scandir(fd) as scan:
                children = list(scan)
            start = f"{prefix}/" if prefix else ""
            for child in children:
                name = child.name
                if not prefix and name == skip:
                    continue
                try:
                    info = child.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                mode = info.st_mode
                if is_file(mode):
                    yield start + name, info
                elif is_dir(mode):
                    pending.append((start + name, f"{directory}/{name}"))
                    yield start + name, info
                elif stat.S_ISLNK(mode) or is_whiteout(info):
                    yield start + name, info
                # fifos, sockets and devices are not snapshotted
        finally:
            os.close(fd)


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
