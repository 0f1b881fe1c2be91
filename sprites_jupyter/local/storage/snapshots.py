"""Content-addressed, incremental snapshots of sprite trees, and crash-safe restores.

File contents are stored once each as objects named by their SHA-256 under
``HOME/objects`` (written aside, then renamed into place; a large file as fixed-size
chunks and a chunk list, so an edit stores only the chunks it touched: :mod:`.objects`).
A snapshot is a manifest (:mod:`.manifests`), every path with its type, mode, mtime, size
and object ref or link target, named by the SHA-256 of its JSON, so an unchanged tree
yields the same manifest id and costs no space.

A per-sprite stat cache (path -> size, mtime, inode, ctime, ref: :mod:`.stat_cache`) lets
a snapshot record an unchanged file from its ``lstat`` alone, so snapshotting an unchanged
tree reads no file data. The tree is listed by find(1) (:mod:`.layer_listing`: an
``lstat`` in C costs half what it does in Python), and only the paths whose listed facts
differ from the last listing's are looked at again, so a snapshot costs one listing plus
what changed; without find the tree is walked in Python, each directory opened once. An
unchanged tree's manifest is found without encoding it again (the previous walk, or the
manifest it was last restored to, compared entry by entry). ctime
is in the key because tools that rewrite a file
and put its old mtime back (``cp -p``, ``rsync -t``, ``tar``) cannot put its
ctime back; and a file changed within ``_RACY_NS`` of being read is not cached,
since a second change inside the same timestamp tick would leave every stat field
as it was (git's "racy clean" case). Symlinks are recorded, never followed;
fifos, sockets and devices are skipped, except overlayfs whiteouts (a sandboxed
sprite's deletions of base files); entries that vanish mid-walk are skipped.

A tree is the sprite's writable layer (the sandbox's ``/`` and the upper layers of its
overlaid system directories), so a snapshot's cost follows what the sprite changed,
never the size of the host's base. ``/.sprite``'s services, policy and logs come from
the platform directory beside the tree (:func:`.layer_format.locate`).

A restore changes only what differs. It copies every file and symlink the target
needs into a staging directory beside the tree (from objects: an object is never
linked into the tree, where a process writing in place would corrupt it), then
writes a journal naming the renames to do, then does them. The journal appearing
(an atomic rename) is the commit point: a ``kill -9`` before it leaves the tree
untouched, and :meth:`Snapshotter.recover` replays a journal that exists, so the
tree is wholly the old state or wholly the target, with ``source_id`` to match.
This covers process death; files are not fsynced, so a power cut is not covered.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
import time
import uuid
import zlib
from pathlib import Path

from . import restore_plan
from .garbage import Collector
from .layer_format import DIR_KINDS, is_whiteout, locate
from .layer_listing import Described, Listed, describe_listed, list_tree
from .layer_reader import LayerReader
from .layer_walk import describe_error, walk_layer, walk_platform
from .manifests import Entry, ManifestStore
from .meter import Meter, Progress
from .objects import CHUNKED_OVER, MissingData, ObjectStore
from .restore_plan import JOURNAL, STAGING, TRASH, stat_key
from .stat_cache import CachedFile, StatCaches
from .store import Store

# A file changed less than this before it is read may change again without moving its
# mtime or ctime, so it is not cached; timestamps in whole seconds need a wider margin.
_RACY_NS = 100_000_000
_RACY_COARSE_NS = 2_000_000_000
_entry = tuple.__new__  # an Entry without the Python-level __new__ (the hot loop's)

class SnapshotError(Exception):
    """A snapshot or restore failed; the message names sprite paths, not the host's."""


class Snapshotter:
    """Snapshots and restores of the sprite trees of one server home."""

    def __init__(self, home: Path) -> None:
        self.store = ObjectStore(home)
        self.objects = self.store.root
        self._incoming = self.store.incoming
        self.manifests = home / "manifests"
        self._manifests = ManifestStore(self.manifests, self.store)
        self._stat_caches = StatCaches(home / "statcache")
        self._collector = Collector(self.store, self._manifests, self.manifests)
        self._last: dict[str, tuple[list[Entry], str]] = {}  # sprite -> walk, manifest id
        self._listed: dict[str, Listed] = {}  # sprite -> its tree's last listing
        self._collections = 0
        self._restored: dict[str, str] = {}  # sprite -> manifest id of its last restore
        self.stored: dict[str, int] = {}  # sprite -> bytes of new or changed files last time
        self._unsettled: dict[str, dict[str, str]] = {}  # sprite -> path -> ref, not cached
        self._discarded = home / "discarded"  # replaced by restores, being deleted
        if self._discarded.is_dir():
            for leftover in self._discarded.iterdir():
                _delete_aside(leftover)

    # objects ------------------------------------------------------------------

    def object_path(self, digest: str) -> Path:
        """Where the object ``digest`` is stored (immutable once there)."""
        return self.store.path(digest)

    def _store_file(self, tree: LayerReader, rel: str
                    ) -> tuple[str, int, os.stat_result, os.stat_result] | None:
        """Copy the file ``rel`` into the store while hashing it (in chunks if it is large).

        Returns (ref, size, stat before, stat after reading), or None when ``rel`` is
        gone or is no longer a regular file (never follows a symlink swapped in, at any
        component, never blocks on a fifo). The objects hold exactly the bytes read, so
        they always match their names even if a process writes to the file meanwhile.
        """
        fd = tree.open_file(rel)
        if fd is None:
            return None
        with open(fd, "rb", closefd=True) as reader:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                return None
            if before.st_size > CHUNKED_OVER:
                ref, size = self.store.store_chunked(fd, before.st_size)
            else:
                ref, size = self.store.store_stream(reader)
            after = os.fstat(fd)
        return ref, size, before, after

    # manifests and stat caches ----------------------------------------------------

    def load_manifest(self, manifest_id: str) -> list[Entry]:
        """A stored manifest's entries; raises OSError or ValueError if missing or damaged."""
        return self._manifests.load(manifest_id)

    def _load_cache(self, sprite: str) -> dict[str, CachedFile]:
        return self._stat_caches.load(sprite)

    def _save_cache(self, sprite: str, cache: dict[str, CachedFile]) -> None:
        self._stat_caches.save(sprite, cache)

    def _forget_cache(self, sprite: str) -> None:
        self._stat_caches.forget(sprite)
        self._manifests.forget(sprite)
        self._last.pop(sprite, None)
        self._listed.pop(sprite, None)
        self._restored.pop(sprite, None)
        self._unsettled.pop(sprite, None)

    def discard(self, sprite: str) -> None:
        """Forget a deleted sprite's stat cache (its data goes with the manifests the
        deletion released: :meth:`collect_garbage`)."""
        self._forget_cache(sprite)

    # garbage ----------------------------------------------------------------------

    def mark_garbage(self) -> None:
        """Stored data may have lost its last reference without a release naming it (a
        checkpoint interrupted): the next :meth:`collect_garbage` looks at everything."""
        self._collector.mark()

    def collect_garbage(self, store: Store) -> None:
        """Delete what released manifests alone used (everything unused, if marked).

        Call only while no snapshot stores data that no checkpoint records yet (the
        server's ``StorageWork`` sees to it). An object the stat cache still names may
        go: a snapshot re-reads the file then.
        """
        self._collections += 1
        self._collector.collect(store)

    # snapshot -------------------------------------------------------------------

    def snapshot(self, sprite: str, root: Path, progress: Progress | None = None) -> str:
        """Snapshot ``root``; return the manifest id to record with the checkpoint."""
        cache = self._load_cache(sprite)
        fresh: dict[str, CachedFile] = {}
        entries: list[Entry] = []
        meter = Meter(progress, self._unsettled.get(sprite, {}))
        top = os.fspath(root)
        try:
            with LayerReader(top) as tree:
                listing = list_tree(top)
                last = self._listed.pop(sprite, None)
                if listing is None:
                    for rel, info in walk_layer(tree):
                        self._describe(rel, info, tree, cache, fresh, entries, meter)
                else:
                    def describe(rel: str, info: os.stat_result) -> Described | None:
                        return self._describe(rel, info, tree, cache, fresh, entries, meter)

                    self._listed[sprite], reused = describe_listed(
                        listing, last, tree, describe, self.store, self._collections, fresh,
                        entries)
                    meter.reused += reused
                    for rel, info in walk_platform(tree):
                        self._describe(rel, info, tree, cache, fresh, entries, meter)
        except OSError as exc:
            self._listed.pop(sprite, None)
            raise SnapshotError(describe_error(exc, top)) from exc
        manifest = self._save_manifest(sprite, entries)
        self.stored[sprite], self._unsettled[sprite] = meter.changed, meter.unsettled
        if not meter.reused == len(fresh) == len(cache):  # else it is the cache, entry for entry
            self._save_cache(sprite, fresh)
        if progress:
            progress(f"Saved {len(entries):,} entries ({meter.files:,} files read, "
                     f"{meter.reused:,} unchanged)")
        return manifest

    def _describe(self, rel: str, info: os.stat_result, tree: LayerReader,
                  cache: dict[str, CachedFile], fresh: dict[str, CachedFile],
                  entries: list[Entry], meter: Meter) -> Described | None:
        """Add the entry of ``rel`` (``lstat``-ed as ``info``) to ``entries``; the entry
        and, for a file, its cache entry if its content is known (None: nothing added)."""
        mode = info.st_mode
        entry: Entry
        if stat.S_ISREG(mode):
            cached = cache.get(rel)
            if (cached is not None and cached.matches(info)
                    and (cached.ref in self.store.present or self.store.has_ref(cached.ref))):
                fresh[rel] = cached
                entry = cached.entry or _entry(Entry, (
                    rel, "f", stat.S_IMODE(mode), info.st_mtime_ns, info.st_size, cached.ref))
                cached.entry = entry  # made once per cache entry
                meter.reused += 1
                entries.append(entry)
                return entry, cached
            return self._read_file(tree, rel, fresh, entries, meter,
                                   cached.ref if cached is not None else None)
        if stat.S_ISDIR(mode):
            kind = "o" if tree.is_opaque(rel) else "d"
            entry = Entry(rel, kind, stat.S_IMODE(mode), info.st_mtime_ns)
        elif stat.S_ISLNK(mode):
            target = tree.readlink(rel)
            if target is None:
                return None
            entry = Entry(rel, "l", stat.S_IMODE(mode), info.st_mtime_ns, 0, target)
        elif is_whiteout(info):
            entry = Entry(rel, "w", 0, info.st_mtime_ns)
        else:
            return None  # fifos, sockets and devices are not snapshotted
        entries.append(entry)
        return entry, None

    def _read_file(self, tree: LayerReader, rel: str, fresh: dict[str, CachedFile],
                   entries: list[Entry], meter: Meter, cached_ref: str | None
                   ) -> Described | None:
        """Store a file that is new or changed (or not trusted from the cache)."""
        read_at = time.time_ns()
        result = self._store_file(tree, rel)
        if result is None:
            return None  # gone, or no longer a regular file
        ref, size, before, after = result
        settled = stat_key(before) == stat_key(after) and size == before.st_size and _settled(
            before, read_at)
        cached = CachedFile.of(before, ref) if settled else None
        if cached is not None:
            fresh[rel] = cached
        entry = Entry(rel, "f", stat.S_IMODE(before.st_mode), before.st_mtime_ns, size, ref)
        entries.append(entry)
        meter.add(rel, ref, size, settled, cached_ref)
        return entry, cached

    def _save_manifest(self, sprite: str, entries: list[Entry]) -> str:
        """The manifest of ``entries`` (in walk order): the previous one if nothing changed,
        else stored sorted."""
        last = self._last.get(sprite)
        if last is not None and last[0] == entries and self._manifests.path(last[1]).exists():
            return last[1]
        walked = list(entries)
        entries.sort()
        restored = self._restored.pop(sprite, None)  # what the tree was last made into
        if (restored is not None and self._manifests.decoded(restored) == entries
                and self._manifests.path(restored).exists()):
            manifest = restored
        else:
            manifest = self._manifests.save(sprite, entries)
        self._last[sprite] = (walked, manifest)
        return manifest

    # restore ----------------------------------------------------------------------

    def restore(self, sprite: str, root: Path, manifest_id: str, *, checkpoint_id: str,
                store: Store, owner: int | None = None,
                progress: Progress | None = None) -> None:
        """Make ``root`` exactly the snapshot ``manifest_id``, all or nothing.

        Call with nothing writing to the tree, after a snapshot (whose stat cache
        shows which live files already hold the wanted content). Raises, leaving
        ``root`` untouched, if the target cannot be built. ``owner``: the host id
        (uid and gid) what the restore writes is given, when not the server's own.
        """
        top = os.fspath(root)
        sprite_dir = root.parent
        self._listed.pop(sprite, None)
        target = self.load_manifest(manifest_id)
        if (sprite_dir / JOURNAL).exists():
            self._roll_forward(sprite, root, store)
        restore_plan.clear(sprite_dir)
        try:
            with LayerReader(top) as tree:
                live = dict(walk_layer(tree))
            plan = restore_plan.plan(top, target, live, self._load_cache(sprite))
            if progress:
                progress(f"Writing {len(plan.place):,} changed entries, "
                         f"removing {len(plan.trash):,}")
            staging = sprite_dir / STAGING
            staging.mkdir()
            for number, entry in enumerate(plan.place):
                self._stage(os.path.join(staging, str(number)), entry, owner)
            journal = {"checkpoint": checkpoint_id, "manifest": manifest_id, "owner": owner,
                       "trash": [[path, n] for n, path in enumerate(plan.trash)],
                       "mkdir": plan.mkdir,
                       "place": [[n, entry.path] for n, entry in enumerate(plan.place)]}
            temp = sprite_dir / f"{JOURNAL}.tmp"
            temp.write_text(json.dumps(journal))
            os.replace(temp, sprite_dir / JOURNAL)  # the commit point
        except BaseException as exc:
            restore_plan.clear(sprite_dir)
            if isinstance(exc, OSError):
                raise SnapshotError(describe_error(exc, top)) from exc
            raise
        try:
            restore_plan.apply(top, sprite_dir, journal)
            restore_plan.fix_metadata(top, plan.fix, [e for e in target if e.kind in DIR_KINDS])
            cache = plan.kept
            for entry in [*plan.place, *plan.fix]:  # nothing writes meanwhile: content known
                if entry.kind == "f":
                    cache[entry.path] = CachedFile.of(os.lstat(locate(top, entry.path)),
                                                      entry.ref)
            self._save_cache(sprite, cache)
            self._restored[sprite] = manifest_id
            store.set_source(sprite, checkpoint_id)
            (sprite_dir / JOURNAL).unlink()
        except Exception as exc:
            try:
                self._roll_forward(sprite, root, store)
            except Exception:
                raise SnapshotError("the restore was interrupted; it will be completed when "
                                    "the server restarts") from exc
        self._clear_finished(sprite_dir)

    def _clear_finished(self, sprite_dir: Path) -> None:
        """Remove a finished restore's staging and trash. The trash (what the restore
        replaced: a few syscalls per file, seconds for many on a busy disk) is moved out
        of the sprite and deleted in the background; leftovers go at the next start."""
        trash = sprite_dir / TRASH
        if trash.exists():
            self._discarded.mkdir(exist_ok=True)
            away = self._discarded / uuid.uuid4().hex
            with contextlib.suppress(OSError):  # if it cannot move, it is deleted below
                os.rename(trash, away)
                _delete_aside(away)
        restore_plan.clear(sprite_dir)

    def _stage(self, dest: str, entry: Entry, owner: int | None) -> None:
        if entry.kind == "l":
            os.symlink(entry.ref, dest)
        elif entry.kind == "w":  # allowed unprivileged since Linux 5.8
            os.mknod(dest, stat.S_IFCHR, os.makedev(0, 0))
        else:
            try:
                self.store.write_file(entry.ref, dest)
            except MissingData as exc:
                raise SnapshotError(f"the stored data of /{entry.path} is missing") from exc
        if owner is not None:  # before the mode: a chown clears set-id bits
            os.chown(dest, owner, owner, follow_symlinks=False)
        if entry.kind not in ("l", "w"):
            os.chmod(dest, entry.mode)
        os.utime(dest, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)

    def _roll_forward(self, sprite: str, root: Path, store: Store) -> None:
        """Finish a committed restore from wherever it stopped. Idempotent."""
        journal_path = root.parent / JOURNAL
        journal = json.loads(journal_path.read_text())
        top = os.fspath(root)
        restore_plan.apply(top, root.parent, journal)
        with contextlib.suppress(OSError, ValueError, zlib.error):
            target = self.load_manifest(journal["manifest"])
            restore_plan.fix_metadata(top, [e for e in target if e.kind not in DIR_KINDS],
                                      [e for e in target if e.kind in DIR_KINDS])
        self._forget_cache(sprite)
        store.set_source(sprite, journal["checkpoint"])
        journal_path.unlink()

    def recover(self, sprite: str, root: Path, store: Store) -> None:
        """After a crash: finish a committed restore, drop uncommitted and half-made work.

        Only while no snapshot runs (the server calls it at start).
        """
        if (root.parent / JOURNAL).exists():
            self._roll_forward(sprite, root, store)
        restore_plan.clear(root.parent)
        for leftover in self._incoming.iterdir():
            leftover.unlink(missing_ok=True)
            self.mark_garbage()  # an interrupted checkpoint may have left objects too


def _delete_aside(path: Path) -> None:
    """Delete a tree no one uses any more, in a thread of its own."""
    def delete() -> None:
        with contextlib.suppress(OSError):  # what is left is retried at the next start
            restore_plan.remove_tree(path)

    threading.Thread(target=delete, daemon=True, name="delete-replaced").start()


def _settled(info: os.stat_result, read_at: int) -> bool:
    """Whether any change after ``read_at`` is sure to move the file's mtime or ctime."""
    whole_seconds = info.st_mtime_ns % 1_000_000_000 == info.st_ctime_ns % 1_000_000_000 == 0
    margin = _RACY_COARSE_NS if whole_seconds else _RACY_NS
    return max(info.st_mtime_ns, info.st_ctime_ns) + margin < read_at
