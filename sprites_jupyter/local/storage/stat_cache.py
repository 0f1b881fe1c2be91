"""Per-sprite stat caches: path -> [size, mtime_ns, inode, ctime_ns, ref] of files whose
content is known, so a snapshot records an unchanged file from its ``lstat`` alone (in
memory the snapshotter appends the manifest entry it made from those fields, to reuse).

Kept in memory, read from disk once per server run. On disk a cache is ``marshal`` data
(a dict of lists of ints and strings: several times faster than JSON), private to the
server's user: a whole cache, then what each later save changed (entries set, paths
dropped) appended, until :data:`_APPENDS` appends make it worth rewriting whole (temp +
rename). Saving thus costs what changed, not the size of the tree. Any subset of a cache
is a valid cache (each entry is checked against the file's ``lstat``), so a torn append
(a crash mid-write) or a file that cannot be read (damaged, or written by another Python)
loses only entries: those files are read again. JSON caches of older servers are read.
"""

from __future__ import annotations

import contextlib
import io
import json
import marshal
import os
from pathlib import Path

CacheEntry = list  # [size, mtime_ns, inode, ctime_ns, ref], in memory maybe + [its Entry]
_LEGACY = ".json"
_APPENDS = 32


class StatCaches:
    """The stat caches of every sprite, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._caches: dict[str, dict[str, CacheEntry]] = {}
        self._on_disk: dict[str, tuple[dict[str, CacheEntry], int]] = {}  # the dict, appends

    def _path(self, sprite: str, suffix: str = ".cache") -> Path:
        return self.directory / f"{sprite}{suffix}"

    def load(self, sprite: str) -> dict[str, CacheEntry]:
        """The sprite's cache (do not change it: :meth:`save` a new one)."""
        cache = self._caches.get(sprite)
        if cache is None:
            cache, appends = self._read(sprite)
            cache = {path: entry for path, entry in cache.items()
                     if isinstance(path, str) and isinstance(entry, list) and len(entry) == 5}
            self._caches[sprite] = cache
            self._on_disk[sprite] = (cache, appends)
        return cache

    def _read(self, sprite: str) -> tuple[dict, int]:
        """The cache on disk and how many saves were appended to it."""
        try:
            data = self._path(sprite).read_bytes()
        except FileNotFoundError:
            try:
                loaded = json.loads(self._path(sprite, _LEGACY).read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                loaded = {}
            return (loaded if isinstance(loaded, dict) else {}), _APPENDS
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

    def save(self, sprite: str, cache: dict[str, CacheEntry]) -> None:
        """Make ``cache`` the sprite's (it is not changed afterwards)."""
        self._caches[sprite] = cache
        path = self._path(sprite)
        saved, appends = self._on_disk.get(sprite, (None, _APPENDS))
        if saved is not None and appends < _APPENDS and path.exists():
            changed = {p: entry[:5] for p, entry in cache.items() if saved.get(p) is not entry}
            with open(path, "ab") as handle:
                handle.write(marshal.dumps((changed, list(saved.keys() - cache.keys()))))
            self._on_disk[sprite] = (cache, appends + 1)
            return
        temp = path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(marshal.dumps({p: entry[:5] for p, entry in cache.items()}))
        os.replace(temp, path)
        self._path(sprite, _LEGACY).unlink(missing_ok=True)
        self._on_disk[sprite] = (cache, 0)

    def forget(self, sprite: str) -> None:
        self._caches.pop(sprite, None)
        self._on_disk.pop(sprite, None)
        for suffix in (".cache", _LEGACY):
            with contextlib.suppress(FileNotFoundError):
                self._path(sprite, suffix).unlink()
