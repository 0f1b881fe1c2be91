"""A restore's plan and its journaled renames (used by :mod:`.snapshots`).

:func:`plan` compares the live tree with the target manifest and keeps whatever
provably matches; the rest is staged beside the tree, then :func:`apply` moves it
in. Every step of :func:`apply` is skipped when already done, so replaying a
journal after a crash at any point finishes the same restore.

The layer's format (what ``.sprite/...`` paths, whiteouts and opaque directories are)
is :mod:`.layer_format`'s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .layer_format import (
    DIR_KINDS,
    OPAQUE_XATTRS,
    PLATFORM_PATH,
    is_opaque,
    is_whiteout,
    locate,
)

if TYPE_CHECKING:
    from .manifests import Entry
    from .stat_cache import CachedFile

JOURNAL = "restore.json"
STAGING = "restore-staging"
TRASH = "restore-trash"


def _set_opaque(path: str, opaque: bool) -> None:
    if opaque == is_opaque(path):
        return
    if opaque:
        os.setxattr(path, OPAQUE_XATTRS[0], b"y", follow_symlinks=False)
    else:
        for name in OPAQUE_XATTRS:
            with contextlib.suppress(OSError):
                os.removexattr(path, name, follow_symlinks=False)


def stat_key(info: os.stat_result) -> list[int]:
    """The stat fields that say a file is unchanged since it was hashed (the cache key)."""
    return [info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns]


@dataclass
class Plan:
    """A restore: live paths to move away (topmost only), directories to make, entries to
    stage and place, kept entries whose mode or mtime to fix, cache entries still true."""

    trash: list[str] = field(default_factory=list)
    mkdir: list[str] = field(default_factory=list)
    place: list[Entry] = field(default_factory=list)
    fix: list[Entry] = field(default_factory=list)
    kept: dict[str, CachedFile] = field(default_factory=dict)


def plan(top: str, target: list[Entry], live: dict[str, os.stat_result],
         cache: dict[str, CachedFile]) -> Plan:
    """Keep what provably matches the target, replace the rest.

    ``target`` is sorted, so a directory comes before what it holds. A wanted path that
    is live lies in live directories that are all wanted (a manifest holds every
    directory above each path), so it is never below something moved away; a live path
    that is not wanted is moved away unless something above it already is.
    """
    result = Plan()
    gone: set[str] = set()
    known = cache.get
    for entry in target:
        path = entry.path
        if path == "." or path == PLATFORM_PATH:
            continue
        info = live.get(path)
        if info is not None and entry.kind == "f":
            cached = known(path)
            if (cached is not None and cached.ref == entry.ref and cached.matches(info)
                    and stat.S_ISREG(info.st_mode)):  # the content is the target's
                if info.st_mtime_ns != entry.mtime_ns or stat.S_IMODE(info.st_mode) != entry.mode:
                    result.fix.append(entry)
                else:
                    result.kept[path] = cached
                continue
        if info is not None and not _matches(top, entry, info, known(path)):
            result.trash.append(path)
            if stat.S_ISDIR(info.st_mode):
                gone.add(path)
            info = None
        if info is None and entry.kind in DIR_KINDS:
            result.mkdir.append(path)
        elif info is None:
            result.place.append(entry)
        elif entry.kind not in DIR_KINDS and info.st_mtime_ns != entry.mtime_ns:
            result.fix.append(entry)
    wanted = {entry.path for entry in target}
    for path in sorted(live.keys() - wanted - {".", PLATFORM_PATH}):
        if path.rpartition("/")[0] not in gone:
            result.trash.append(path)
        gone.add(path)
    return result


def _matches(top: str, entry: Entry, info: os.stat_result, cached: CachedFile | None) -> bool:
    """Whether a live path already has the entry's type and content (mode, mtime aside)."""
    if entry.kind in DIR_KINDS:
        return stat.S_ISDIR(info.st_mode)
    if entry.kind == "w":
        return is_whiteout(info)
    if entry.kind == "l":
        return stat.S_ISLNK(info.st_mode) and os.readlink(locate(top, entry.path)) == entry.ref
    return (stat.S_ISREG(info.st_mode) and cached is not None and cached.matches(info)
            and cached.ref == entry.ref)


def apply(top: str, sprite_dir: Path, journal: dict) -> None:
    """Do a committed restore's renames; each is skipped if already done (replay-safe)."""
    trash = os.path.join(sprite_dir, TRASH)
    staging = os.path.join(sprite_dir, STAGING)
    os.makedirs(trash, exist_ok=True)
    for path, number in journal["trash"]:
        source, dest = locate(top, path), os.path.join(trash, str(number))
        if not os.path.lexists(dest) and os.path.lexists(source):
            _writable(os.rename, source, dest)
    owner = journal.get("owner")  # the sprite user's host id, None: the server's own
    for path in journal["mkdir"]:
        made = locate(top, path)
        if not os.path.lexists(made):
            _writable(os.mkdir, made, 0o700)
        if owner is not None:  # again on a replay: a crash may have come before it
            os.chown(made, owner, owner, follow_symlinks=False)
    for number, path in journal["place"]:
        source = os.path.join(staging, str(number))
        if os.path.lexists(source):
            _writable(os.rename, source, locate(top, path))


def fix_metadata(top: str, entries: list[Entry], directories: list[Entry]) -> None:
    """Give entries their recorded mode and mtime (directories their opacity too);
    directories deepest first, so one made read-only does not stand in the way of what
    it holds."""
    deepest_first = sorted(directories, key=lambda e: e.path.count("/") if e.path != "." else -1,
                           reverse=True)
    for entry in [*entries, *deepest_first]:
        path = locate(top, entry.path)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if entry.kind in DIR_KINDS and stat.S_ISDIR(info.st_mode):
            _set_opaque(path, entry.kind == "o")
        if entry.kind not in ("l", "w") and stat.S_IMODE(info.st_mode) != entry.mode:
            os.chmod(path, entry.mode)
        if info.st_mtime_ns != entry.mtime_ns:
            os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)


def _writable(operation: Callable[..., None], path: str, *args: object) -> None:
    """Run ``operation``; if a read-only directory refuses it, open the parents up and
    retry (:func:`fix_metadata` sets the recorded modes afterwards)."""
    try:
        operation(path, *args)
    except PermissionError:
        for name in (path, *(a for a in args if isinstance(a, str))):
            _open_up(os.path.dirname(name))
        operation(path, *args)


def _open_up(directory: str) -> None:
    """Give the owner full access to a directory; never through a symlink."""
    with contextlib.suppress(OSError):
        info = os.lstat(directory)
        if stat.S_ISDIR(info.st_mode):
            os.chmod(directory, stat.S_IMODE(info.st_mode) | stat.S_IRWXU)


def clear(sprite_dir: Path) -> None:
    """Remove a restore's staging and trash directories, whatever their modes."""
    for name in (STAGING, TRASH):
        remove_tree(sprite_dir / name)


def remove_tree(path: Path) -> None:
    """Delete a directory tree whatever its directories' modes (nothing if it is gone)."""
    if path.exists():
        for directory, subdirectories, _ in os.walk(path):
            for name in subdirectories:  # before os.walk tries to enter them
                _open_up(os.path.join(directory, name))
        shutil.rmtree(path)
