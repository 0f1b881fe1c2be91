"""Per-sprite stat caches: path -> :class:`CachedFile` (size, mtime, inode, ctime, ref) of
files whose content is known, so a snapshot records an unchanged file from its ``lstat``
alone (in memory it also keeps the manifest entry the snapshotter made from them, to reuse).

Kept in memory, read from disk once per server run. On disk a cache is ``marshal`` data
(a dict of ``[size, mtime_ns, inode, ctime_ns, ref]`` lists: several times faster than
JSON), private to the server's user: a whole cache, then what each later save changed
(entries set, paths dropped) appended, until :data:`_APPENDS` appends make it worth
rewriting whole (temp + rename). Saving thus costs what changed, not the size of the
tree. Any subset of a cache is a valid cache (each entry is checked against the file's
``lstat``), so a torn append (a crash mid-write) or a file that cannot be read (damaged,
or written by another Python) loses only entries: those files are read again.
"""

from __future__ import annotations

import contextlib
import io
import marshal
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .manifests import Entry

_APPENDS = 32


class CachedFile:
    """A file's content (``ref``) as known at an ``lstat`` whose size, mtime, inode and
    ctime must not have moved since. Slots: read in the snapshot's loop once per file,
    as fast as a list's items."""

    __slots__ = ("ctime_ns", "entry", "ino", "mtime_ns", "ref", "size")

    def __init__(self, size: int, mtime_ns: int, ino: int, ctime_ns: int, ref: str) -> None:
        self.size = size
        self.mtime_ns = mtime_ns
        self.ino = ino
        self.ctime_ns = ctime_ns
        self.ref = ref
        self.entry: Entry | None = None  # the manifest entry made from it, once

    @classmethod
    def of(cls, info: os.stat_result, ref: str) -> CachedFile:
        return cls(info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns, ref)

    def matches(self, info: os.stat_result) -> bool:
        """Whether the file is unchanged since (its content is still ``ref``)."""
        return (self.mtime_ns == info.st_mtime_ns and self.ctime_ns == info.st_ctime_ns
                and self.size == info.st_size and self.ino == info.st_ino)

    def stored(self) -> list[Any]:
        """Its form on disk."""
        return [self.size, self.mtime_ns, self.ino, self.ctime_ns, self.ref]


def _valid(fields: Any) -> bool:
    return (isinstance(fields, list) and len(fields) == 5
            and all(isinstance(n, int) for n in fields[:4]) and isinstance(fields[4], str))


class StatCaches:
    """The stat caches of every sprite, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._caches: dict[str, dict[str, CachedFile]] = {}
        self._on_disk: dict[str, tuple[dict[str, CachedFile], int]] = {}  # the dict, appends

    def _path(self, sprite: str) -> Path:
        return self.directory / f"{sprite}.cache"

    def load(self, sprite: str) -> dict[str, CachedFile]:
        """The sprite's cache (do not change it: :meth:`save` a new one)."""
        cache = self._caches.get(sprite)
        if cache is None:
            stored, appends = self._read(sprite)
            cache = {path: CachedFile(*fields) for path, fields in stored.items()
                     if isinstance(path, str) and _valid(fields)}
            self._caches[sprite] = cache
            self._on_disk[sprite] = (cache, appends)
        return cache

    def _read(self, sprite: str) -> tuple[dict, int]:
        """The cache on disk and how many saves were appended to it."""
        try:
            data = self._path(sprite).read_bytes()
        except FileNotFoundError:
            return {}, _APPENDS
        reader = io.BytesIO(data)
        cache: dict = {}
        appends = -1
        with contextlib.suppress(EOFError, ValueError, TypeError):
            while reader.tell() < len(data):
                record = marshal.load(reader)
                if appends < 0 and isinstance(record, dict):
                    cache = record
                elif isinstance(record, tuple) and len(record) == 2:
                    cache.update(record[0])
                    for path in record[1]:
                        cache.pop(path, None)
                else:
                    break
                appends += 1
        return cache, max(appends, 0)

    def save(self, sprite: str, cache: dict[str, CachedFile]) -> None:
        """Make ``cache`` the sprite's (it is not changed afterwards)."""
        self._caches[sprite] = cache
        path = self._path(sprite)
        saved, appends = self._on_disk.get(sprite, (None, _APPENDS))
        if saved is not None and appends < _APPENDS and path.exists():
            changed = {p: entry.stored() for p, entry in cache.items()
                       if saved.get(p) is not entry}
            with open(path, "ab") as handle:
                handle.write(marshal.dumps((changed, list(saved.keys() - cache.keys()))))
            self._on_disk[sprite] = (cache, appends + 1)
            return
        temp = path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(marshal.dumps({p: entry.stored() for p, entry in cache.items()}))
        os.replace(temp, path)
        self._on_disk[sprite] = (cache, 0)

    def forget(self, sprite: str) -> None:
        self._caches.pop(sprite, None)
        self._on_disk.pop(sprite, None)
        self._path(sprite).unlink(missing_ok=True)
