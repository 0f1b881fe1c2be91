"""Content-addressed, incremental snapshots of sprite trees.

File contents are stored once each as objects named by their SHA-256 under
``HOME/objects``. A snapshot is a manifest (every path with its type, mode,
mtime, size and object hash or link target), itself stored as an object, so an
unchanged tree yields the same manifest id and costs no space. A per-sprite
stat cache (path -> size, mtime, inode, ctime, hash) lets a snapshot of an
unchanged tree walk and ``lstat`` without reading any file data. ctime is in the
key because tools that rewrite a file and put its old mtime back (``cp -p``,
``rsync -t``, ``tar``) cannot put its ctime back; and a file changed within
``_RACY_NS`` of being read is not cached, since a second change inside the same
timestamp tick would leave every stat field as it was (git's "racy clean" case).
Entries that vanish during the walk are skipped; fifos, sockets and devices are
never opened.

A restore builds the target tree beside the live one (hard-linking live files
that already hold the right content, copying objects for the rest), records a
journal, and swaps the trees by renames. :meth:`Snapshotter.recover` finishes
a swap that a crash interrupted, or drops an unfinished staging tree, so the
live tree is always wholly the old one or wholly the target.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .store import Store

Progress = Callable[[str], None]

_CHUNK = 1 << 20
_JOURNAL = "restore.json"
# A file changed less than this before it is read may change again without moving its
# mtime or ctime, so it is not cached; timestamps in whole seconds need a wider margin.
_RACY_NS = 100_000_000
_RACY_COARSE_NS = 2_000_000_000
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

CacheEntry = list[int | str]  # size, mtime_ns, inode, ctime_ns, sha256


class SnapshotError(Exception):
    """A snapshot could not be taken; the message names the sprite path, not the host's."""


@dataclass(frozen=True)
class Entry:
    """One path of a manifest. ``ref`` is the object hash (files) or link target."""

    path: str
    kind: str  # "d", "f" or "l"
    mode: int
    mtime_ns: int
    size: int = 0
    ref: str = ""


class Snapshotter:
    """Snapshots and restores of the sprite trees of one server home."""

    def __init__(self, home: Path) -> None:
        self.objects = home / "objects"
        self.caches = home / "statcache"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.caches.mkdir(parents=True, exist_ok=True)
        self._incoming = self.objects / "incoming"
        self._incoming.mkdir(exist_ok=True)
        self._present: set[str] = set()

    # objects ----------------------------------------------------------------

    def _object_path(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest[2:]

    def _store_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self._object_path(digest)
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self._incoming, delete=False) as temp:
                temp.write(data)
            os.replace(temp.name, target)
        return digest

    def _store_file(self, source: Path) -> tuple[str, int, os.stat_result, os.stat_result] | None:
        """Copy ``source`` into the store while hashing it.

        Returns (hash, size, stat before, stat after reading), or None when ``source``
        is gone or is no longer a regular file (never follows a symlink swapped in,
        never blocks on a fifo). The object holds exactly the bytes read, so it always
        matches its name even if a process writes to the file meanwhile.
        """
        try:
            fd = os.open(source, _OPEN_FLAGS)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENXIO):
                return None
            raise
        with open(fd, "rb", closefd=True) as reader:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                return None
            digest = hashlib.sha256()
            size = 0
            with tempfile.NamedTemporaryFile(dir=self._incoming, delete=False) as temp:
                while chunk := reader.read(_CHUNK):
                    digest.update(chunk)
                    temp.write(chunk)
                    size += len(chunk)
            after = os.fstat(fd)
        name = digest.hexdigest()
        target = self._object_path(name)
        if target.exists():
            os.unlink(temp.name)
        else:
            target.parent.mkdir(exist_ok=True)
            os.replace(temp.name, target)
        self._present.add(name)
        return name, size, before, after

    def _has_object(self, digest: str) -> bool:
        """Whether an object exists; checked on disk once per server run."""
        if digest not in self._present and self._object_path(digest).exists():
            self._present.add(digest)
        return digest in self._present

    def has_manifest(self, manifest_id: str) -> bool:
        return self._object_path(manifest_id).exists()

    def load_manifest(self, manifest_id: str) -> list[Entry]:
        raw = zlib.decompress(self._object_path(manifest_id).read_bytes())
        return [Entry(*row) for row in json.loads(raw)]

    def _save_manifest(self, entries: list[Entry]) -> str:
        rows = [[e.path, e.kind, e.mode, e.mtime_ns, e.size, e.ref] for e in entries]
        raw = json.dumps(rows, separators=(",", ":")).encode()
        return self._store_bytes(zlib.compress(raw, 6))

    # stat cache -------------------------------------------------------------

    def _cache_path(self, sprite: str) -> Path:
        return self.caches / f"{sprite}.json"

    def _load_cache(self, sprite: str) -> dict[str, CacheEntry]:
        try:
            loaded = json.loads(self._cache_path(sprite).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return {path: entry for path, entry in loaded.items()
                if isinstance(entry, list) and len(entry) == 5}

    def _save_cache(self, sprite: str, cache: dict[str, CacheEntry]) -> None:
        path = self._cache_path(sprite)
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(cache, separators=(",", ":")))
        os.replace(temp, path)

    def discard(self, sprite: str) -> None:
        """Forget a deleted sprite's stat cache (its objects may be shared)."""
        with contextlib.suppress(FileNotFoundError):
            self._cache_path(sprite).unlink()

    # snapshot ---------------------------------------------------------------

    def snapshot(self, sprite: str, root: Path, progress: Progress | None = None) -> str:
        """Snapshot ``root``; return the manifest id to record with the checkpoint."""
        cache = self._load_cache(sprite)
        fresh: dict[str, CacheEntry] = {}
        entries: list[Entry] = []
        stored = reused = 0
        try:
            for rel, info in _walk(root):
                mode = stat.S_IMODE(info.st_mode)
                if stat.S_ISDIR(info.st_mode):
                    entries.append(Entry(rel, "d", mode, info.st_mtime_ns))
                    continue
                if stat.S_ISLNK(info.st_mode):
                    with contextlib.suppress(FileNotFoundError):
                        target = os.readlink(root / rel)
                        entries.append(Entry(rel, "l", mode, info.st_mtime_ns, 0, target))
                    continue
                cached = cache.get(rel)
                if (cached is not None and cached[:4] == _key(info)
                        and self._has_object(str(cached[4]))):
                    fresh[rel] = cached
                    entries.append(Entry(rel, "f", mode, info.st_mtime_ns, info.st_size,
                                         str(cached[4])))
                    reused += 1
                    continue
                read_at = time.time_ns()
                result = self._store_file(root / rel)
                if result is None:
                    continue  # gone, or no longer a regular file
                digest, size, before, after = result
                if _key(before) == _key(after) and size == before.st_size and _settled(
                        before, read_at):
                    fresh[rel] = [*_key(before), digest]
                entries.append(Entry(rel, "f", stat.S_IMODE(before.st_mode), before.st_mtime_ns,
                                     size, digest))
                stored += 1
        except OSError as exc:
            raise SnapshotError(_describe(exc, root)) from exc
        manifest = self._save_manifest(entries)
        self._save_cache(sprite, fresh)
        if progress:
            progress(f"Saved {len(entries)} entries ({stored} files stored, {reused} unchanged)")
        return manifest

    # restore ----------------------------------------------------------------

    def restore(self, sprite: str, root: Path, manifest_id: str, *, checkpoint_id: str,
                store: Store, progress: Progress | None = None) -> None:
        """Make ``root`` exactly the snapshot ``manifest_id``, atomically.

        Raises (leaving ``root`` untouched) if the snapshot cannot be built.
        """
        entries = self.load_manifest(manifest_id)
        staging = root.with_name("root.restore")
        if staging.exists():
            shutil.rmtree(staging)
        try:
            cache = self._build(sprite, root, staging, entries, progress)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        journal = root.parent / _JOURNAL
        temp = journal.with_suffix(".tmp")
        temp.write_text(json.dumps({"checkpoint": checkpoint_id, "manifest": manifest_id}))
        os.replace(temp, journal)  # the commit point: from here recovery rolls forward
        self._save_cache(sprite, cache)
        if progress:
            progress("Switching to the restored filesystem...")
        self._finish_swap(sprite, root, store)
        self._refresh_cache(sprite, root)

    def _refresh_cache(self, sprite: str, root: Path) -> None:
        """Take up the ctimes that linking and unlinking moved during a restore.

        Nothing writes to the tree while it is restored, so a file whose inode, size
        and mtime are still those recorded still holds the recorded content.
        """
        refreshed: dict[str, CacheEntry] = {}
        for rel, entry in self._load_cache(sprite).items():
            with contextlib.suppress(OSError):
                key = _key((root / rel).lstat())
                if key[:3] == entry[:3]:
                    refreshed[rel] = [*key, entry[4]]
        self._save_cache(sprite, refreshed)

    def _build(self, sprite: str, root: Path, staging: Path, entries: list[Entry],
               progress: Progress | None) -> dict[str, CacheEntry]:
        """Create the tree of ``entries`` at ``staging``; return its stat cache."""
        live_cache = self._load_cache(sprite)
        new_cache: dict[str, CacheEntry] = {}
        directories: list[Entry] = []
        linked = copied = 0
        for entry in entries:
            target = staging / entry.path if entry.path != "." else staging
            if entry.kind == "d":
                target.mkdir(mode=0o700, exist_ok=True)
                directories.append(entry)
            elif entry.kind == "l":
                os.symlink(entry.ref, target)
                os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
            else:
                if self._reuse_live(root, entry, live_cache.get(entry.path), target):
                    linked += 1
                else:
                    source = self._object_path(entry.ref)
                    if not source.exists():
                        raise FileNotFoundError(f"object {entry.ref} of {entry.path} is missing")
                    shutil.copyfile(source, target)
                    os.chmod(target, entry.mode)
                    os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns))
                    copied += 1
                new_cache[entry.path] = [*_key(target.lstat()), entry.ref]
        for entry in reversed(directories):
            target = staging / entry.path if entry.path != "." else staging
            os.chmod(target, entry.mode)
            os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns))
        if progress:
            progress(f"Prepared {len(entries)} entries ({linked} unchanged, {copied} restored)")
        return new_cache

    @staticmethod
    def _reuse_live(root: Path, entry: Entry, cached: CacheEntry | None,
                    target: Path) -> bool:
        """Hard-link the live file when the stat cache proves it holds the wanted content."""
        if cached is None or cached[4] != entry.ref:
            return False
        try:
            info = (root / entry.path).lstat()
        except FileNotFoundError:
            return False
        if (_key(info) != cached[:4]
                or stat.S_IMODE(info.st_mode) != entry.mode
                or info.st_mtime_ns != entry.mtime_ns or not stat.S_ISREG(info.st_mode)):
            return False
        os.link(root / entry.path, target)
        return True

    def _finish_swap(self, sprite: str, root: Path, store: Store) -> None:
        """Roll a journaled restore forward from wherever it stopped. Idempotent."""
        journal = root.parent / _JOURNAL
        record = json.loads(journal.read_text())
        staging = root.with_name("root.restore")
        old = root.with_name("root.old")
        if staging.exists():
            if root.exists():
                if old.exists():
                    shutil.rmtree(old)
                os.rename(root, old)
            os.rename(staging, root)
        store.set_source(sprite, record["checkpoint"])
        journal.unlink()
        shutil.rmtree(old, ignore_errors=True)

    def recover(self, sprite: str, root: Path, store: Store) -> None:
        """After a crash: finish a committed restore, or drop an uncommitted one."""
        if (root.parent / _JOURNAL).exists():
            self._finish_swap(sprite, root, store)
            return
        staging = root.with_name("root.restore")
        old = root.with_name("root.old")
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not root.exists():
            os.rename(old, root)
        shutil.rmtree(old, ignore_errors=True)
        for leftover in self._incoming.iterdir():
            leftover.unlink(missing_ok=True)


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every path under ``root`` (``.`` first), parents before children, sorted."""
    yield ".", root.lstat()
    stack = [""]
    while stack:
        prefix = stack.pop()
        directory = root / prefix if prefix else root
        try:
            with os.scandir(directory) as scan:
                children = sorted(scan, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed (or replaced) since it was listed
        subdirs = []
        for child in children:
            rel = f"{prefix}/{child.name}" if prefix else child.name
            try:
                info = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(info.st_mode):
                subdirs.append(rel)
            elif not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
                continue  # fifos, sockets and devices are not snapshotted
            yield rel, info
        stack.extend(reversed(subdirs))


def _key(info: os.stat_result) -> list[int]:
    """The stat fields that say a file is unchanged since it was hashed."""
    return [info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns]


def _settled(info: os.stat_result, read_at: int) -> bool:
    """Whether any change after ``read_at`` is sure to move the file's mtime or ctime."""
    whole_seconds = info.st_mtime_ns % 1_000_000_000 == info.st_ctime_ns % 1_000_000_000 == 0
    margin = _RACY_COARSE_NS if whole_seconds else _RACY_NS
    return max(info.st_mtime_ns, info.st_ctime_ns) + margin < read_at


def _describe(exc: OSError, root: Path) -> str:
    """An OS error in terms of the sprite's paths (``/home/sprite/x``), not the host's."""
    where = os.fspath(exc.filename) if exc.filename is not None else ""
    prefix = os.fspath(root)
    if where == prefix or where.startswith(prefix + os.sep):
        rel = os.path.relpath(where, prefix)
        where = "/" if rel == "." else "/" + rel
    reason = exc.strerror or str(exc)
    return f"{reason}: {where}" if where else reason
