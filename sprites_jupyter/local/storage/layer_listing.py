"""What a sprite's tree holds, listed by one find(1) pass, compared with the last listing.

A snapshot must ``lstat`` every path (an in-place write moves no directory's mtime), and
in Python each costs twice what it does in C: the ``stat_result`` built around the
syscall. ``find -printf`` does the walk in C and prints each path with its type, mode,
size, mtime, ctime, inode and link target as bytes that are never parsed, only compared
with the previous listing's: a path whose record is byte for byte the same is unchanged
(its ctime cannot come back), so a snapshot looks again only at what changed. find does
not follow symlinks (``-P``, its default). Without find, or when it fails for anything
but entries vanishing mid-walk, the caller walks the tree in Python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

from .layer_format import PLATFORM_PATH
from .layer_reader import LayerReader
from .manifests import Entry
from .objects import ObjectStore
from .stat_cache import CachedFile

__all__ = ["FIND", "Described", "Listed", "describe_listed", "list_tree"]

Described = tuple[Entry, CachedFile | None]
"""A path's manifest entry and, for a file whose content is known, its cache entry."""

FIND = shutil.which("find")
_FORMAT = "%P\\0%y %m %s %T@ %C@ %i %l\\0"
_VANISHED = b": No such file or directory"


def list_tree(top: str) -> bytes | None:
    """The listing of everything in the tree ``top`` but ``.sprite`` (the platform's mount
    point): :func:`records` reads it; None when find cannot say."""
    if FIND is None:
        return None
    try:
        done = subprocess.run(
            [FIND, ".", "-path", f"./{PLATFORM_PATH}", "-prune", "-o", "-printf", _FORMAT],
            cwd=top, capture_output=True, env={"LC_ALL": "C", "PATH": os.defpath},
            check=False)
    except OSError:
        return None
    errors = done.stderr.splitlines()
    if done.returncode != 0 and not (errors and all(e.endswith(_VANISHED) for e in errors)):
        return None
    if done.stdout.count(b"\0") % 2:
        return None  # cut short
    return done.stdout


def records(listing: bytes) -> dict[bytes, bytes]:
    """A listing's paths (relative, ``b""`` for the root) -> their records."""
    parts = listing.split(b"\0")
    return dict(zip(parts[0:-1:2], parts[1::2], strict=True))


class Listed:
    """A tree's last listing and what was known of each path in it (directories, links,
    whiteouts, and files whose content is known): its record, entry and cache entry;
    ``whole`` when every path is known, so that the same listing is all known again."""

    def __init__(self, listing: bytes, known: dict[bytes, tuple[bytes, Entry, CachedFile | None]],
                 *, whole: bool, collections: int) -> None:
        self.listing = listing
        self.known = known
        self.whole = whole
        self.collections = collections  # the collector's runs then: the refs were stored
        self.entries = [entry for _, entry, _ in known.values()]
        self.files = {entry.path: cached for _, entry, cached in known.values() if cached}
        self.refs = [cached.ref for cached in self.files.values()]


def describe_listed(listing: bytes, last: Listed | None, tree: LayerReader,
                    describe: Callable[[str, os.stat_result], Described | None],
                    store: ObjectStore, collections: int, fresh: dict[str, CachedFile],
                    entries: list[Entry]) -> tuple[Listed, int]:
    """Add the tree's entries to ``entries`` (and known files to ``fresh``): what is listed
    as ``last`` listed it is taken from then (if its object was not collected since),
    the rest is ``lstat``-ed through ``tree`` and given to ``describe``. What to compare
    with next time, and how many files were known."""
    present = store.present
    if (last is not None and last.whole and listing == last.listing
            and (last.collections == collections or present.issuperset(last.refs))):
        entries.extend(last.entries)
        fresh.update(last.files)
        return last, len(last.files)
    known = last.known if last is not None else {}
    kept: dict[bytes, tuple[bytes, Entry, CachedFile | None]] = {}
    add, has_ref = entries.append, store.has_ref
    reused = 0
    listed = records(listing)
    for path, record in listed.items():
        seen = known.get(path)
        if seen is not None and seen[0] == record:
            _, entry, cached = seen
            if cached is None:
                add(entry)
                kept[path] = seen
                continue
            if cached.ref in present or has_ref(cached.ref):
                fresh[entry.path] = cached
                add(entry)
                reused += 1
                kept[path] = seen
                continue
        rel = os.fsdecode(path) or "."
        info = tree.lstat(rel)
        if info is None:
            continue
        described = describe(rel, info)
        if described is not None and (described[0].kind != "f" or described[1] is not None):
            kept[path] = (record, *described)
    return Listed(listing, kept, whole=len(kept) == len(listed), collections=collections), reused
