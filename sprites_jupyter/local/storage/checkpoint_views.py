"""Read-only views of a sprite's recent checkpoints, seen inside as ``/.sprite/checkpoints/<id>/``.

The real service mounts the last five checkpoints there so a sprite can read or
diff a previous state without restoring it. A view here is the checkpoint's tree
(the sprite's own layer: what it wrote, not the base image beneath) made in the
platform directory, which the sandbox binds read-only: directories and symlinks as
recorded, files as hard links to the stored objects (immutable and content
addressed, so a view copies no file data). A file stored in chunks has no whole object:
it is assembled once per version and that copy is linked into every view showing it,
then deleted when no view does (:mod:`.objects`). One object serves every file with its
content, so it cannot carry each file's mode and mtime: the view records them in
its ``.sprite/stat.json`` (``{"entries": {path: [mode, mtime_ns]}}``), which the
in-sprite diff helper reads.

A view costs a link per file, seconds for a large tree, so it is never made inside a
checkpoint request: :meth:`CheckpointViews.announce` (a query and a few renames) shows at
once which views are coming (an empty ``.building-<id>``, which the diff helper waits
for) and takes the unwanted ones out of sight; :meth:`CheckpointViews.settle`, run off
the request path, builds the missing views newest first, each aside and renamed into
place so it appears whole, and deletes the ones taken out of sight. A view that leaves
is recycled into the one that arrives when this server built it (so it knows what it
shows): only the entries that differ between the two are unlinked or linked, so a
checkpoint that follows a small change (a notebook's per-cell checkpoints) costs a small
change to the views, not a link and an unlink per file. The newest missing view is built
first, one at a time, so a build that newer checkpoints overtook is recycled too; a build
pauses while a snapshot runs (``quiet``), which it would otherwise slow several times.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from .objects import is_chunked
from .snapshots import Entry, Snapshotter
from .store import Store

__all__ = ["RECENT", "RECORD", "CheckpointViews", "ViewsStopped"]

RECENT = 5
RECORD = ".sprite/stat.json"
_BUILDING = ".building-"
_MAKING = ".making-"  # a view's tree while its links are made
_REMOVING = ".removing-"  # out of sight, being deleted
_DIRECTORIES = ("d", "o")
_PAUSE_EVERY = 256  # entries between two looks at whether to stop or wait
_MOST_PAUSES = 20  # of 50 ms each


class ViewsStopped(Exception):
    """The views' sprite is going: the build was abandoned."""


class CheckpointViews:
    """The ``/.sprite/checkpoints`` directory of one sprite.

    ``announce`` may run while ``settle`` does (from the request path and the sprite's
    view worker): a lock orders their changes to the directory's names, never a build.
    """

    def __init__(self, snapshots: Snapshotter, store: Store, sprite: str,
                 directory: Path, owner: int | None = None,
                 quiet: threading.Event | None = None) -> None:
        """``owner``: the host uid and gid to give what a view shows (the sprite user's,
        when that is not the server's own), so the sprite can read it. ``quiet``: set
        while no snapshot runs; a build waits for it, since a snapshot's walk would
        otherwise wait for the interpreter lock after each ``lstat`` while a build holds it."""
        self.owner = owner
        if quiet is None:
            quiet = threading.Event()
            quiet.set()
        self.quiet = quiet
        self.snapshots = snapshots
        self.store = store
        self.sprite = sprite
        self.directory = directory
        self.stopped = threading.Event()
        self._names = threading.Lock()
        self._shows: dict[str, list[Entry]] = {}  # a view's directory name -> its entries

    def _wanted(self) -> dict[str, str]:
        """The ``RECENT`` newest manual checkpoints, newest first: id -> manifest id."""
        return {row.id: row.manifest for row in
                self.store.list_checkpoints(self.sprite, include_auto=False, limit=RECENT)}

    def announce(self) -> dict[str, str]:
        """Take unwanted views out of sight and mark each missing one as coming; the
        wanted views (id -> manifest). Costs a query and a rename or mkdir per change."""
        with self._names:
            self.directory.mkdir(exist_ok=True)
            wanted = self._wanted()
            for entry in os.scandir(self.directory):
                name = entry.name
                if name.startswith((_MAKING, _REMOVING)):
                    continue
                if name.removeprefix(_BUILDING) not in wanted:
                    removing = f"{_REMOVING}{uuid.uuid4().hex}"
                    os.rename(entry.path, self.directory / removing)
                    if name in self._shows:
                        self._shows[removing] = self._shows.pop(name)
            for checkpoint_id in wanted:
                if not (self.directory / checkpoint_id).exists():
                    (self.directory / f"{_BUILDING}{checkpoint_id}").mkdir(exist_ok=True)
        return wanted

    def settle(self) -> None:
        """Build every missing view (newest first), delete the unwanted ones. Raises
        :class:`ViewsStopped` once :attr:`stopped` is set."""
        while missing := self._missing():
            checkpoint_id, manifest = missing[0]
            try:
                entries = self.snapshots.load_manifest(manifest)
            except (OSError, ValueError):
                if checkpoint_id in self._wanted():
                    raise
                continue  # deleted meanwhile, and its data collected
            self._build(checkpoint_id, entries)
        self._delete_removed()
        self.snapshots.store.prune_assembled()

    def _missing(self) -> list[tuple[str, str]]:
        """The wanted views not built yet, newest first (announced). Asked again after
        each build, before anything out of sight is deleted: the newest view is built
        first, and a view that checkpoints arriving meanwhile took out of sight is
        recycled into it, not deleted while views are built from nothing."""
        return [(checkpoint_id, manifest) for checkpoint_id, manifest in self.announce().items()
                if not (self.directory / checkpoint_id).exists()]

    def _build(self, checkpoint_id: str, entries: list[Entry]) -> None:
        making = self.directory / f"{_MAKING}{checkpoint_id}"
        _remove(making)  # left by a crash or a stopped build
        shown = [e for e in entries if _shown(e)]
        try:
            recycled = self._recycle(making)
            if recycled is None:
                making.mkdir()
                _fill(self.snapshots, shown, making, self.owner, self._pause)
            else:
                _patch(self.snapshots, recycled, shown, making, self.owner, self._pause)
            with self._names:
                building = self.directory / f"{_BUILDING}{checkpoint_id}"
                if building.is_dir():
                    os.rename(making, self.directory / checkpoint_id)
                    building.rmdir()
                    self._shows[checkpoint_id] = shown
                else:  # no longer wanted (newer checkpoints came): kept for recycling
                    removing = f"{_REMOVING}{uuid.uuid4().hex}"
                    os.rename(making, self.directory / removing)
                    self._shows[removing] = shown
        finally:
            _remove(making)

    def _pause(self) -> None:
        """Between entries of a build: wait while a snapshot runs (for a second at most,
        so that back-to-back checkpoints cannot starve the views); raise
        :class:`ViewsStopped` once :attr:`stopped` is set."""
        for _ in range(_MOST_PAUSES):
            if self.quiet.wait(0.05) or self.stopped.is_set():
                break
        if self.stopped.is_set():
            raise ViewsStopped

    def _recycle(self, making: Path) -> list[Entry] | None:
        """Move a view taken out of sight whose entries are known to ``making``; what it
        shows, or None if there is none."""
        with self._names:
            for name in [n for n in self._shows if n.startswith(_REMOVING)]:
                shows = self._shows.pop(name)
                with contextlib.suppress(FileNotFoundError):
                    os.rename(self.directory / name, making)
                    return shows
        return None

    def _delete_removed(self) -> None:
        """Delete what was taken out of sight, and the trees of builds a crash stopped;
        not a view that can be recycled into one announced meanwhile (the worker settles
        again after an announcement)."""
        for entry in os.scandir(self.directory):
            if entry.name.startswith((_REMOVING, _MAKING)):
                with self._names:
                    if entry.name in self._shows and any(
                            name.startswith(_BUILDING) for name in os.listdir(self.directory)):
                        continue
                    self._shows.pop(entry.name, None)
                _remove(Path(entry.path))


def _shown(entry: Entry) -> bool:
    return entry.path != "." and entry.path.split("/", 1)[0] != ".sprite" and \
        entry.kind in (*_DIRECTORIES, "f", "l")


def _fill(snapshots: Snapshotter, shown: list[Entry], tree: Path, owner: int | None,
          pause: Callable[[], None]) -> None:
    """Make ``tree`` the view of ``shown``: links, symlinks, directories, the record."""
    (tree / ".sprite").mkdir()
    _add(snapshots, shown, tree, owner, pause)
    _finish(shown, tree)


def _patch(snapshots: Snapshotter, old: list[Entry], shown: list[Entry], tree: Path,
           owner: int | None, pause: Callable[[], None]) -> None:
    """Make ``tree``, the view of ``old``, the view of ``shown``: what differs is removed
    (children before their directory) and added (directories before their children).
    The same entries (checkpoints of an unchanged tree) leave the view as it is."""
    if old == shown:
        return
    before = {entry.path: entry for entry in old}
    after = {entry.path: entry for entry in shown}
    gone = [entry for path, entry in before.items() if not _same(entry, after.get(path))]
    for number, entry in enumerate(sorted(gone, reverse=True)):
        if number % _PAUSE_EVERY == 0:
            pause()
        if entry.kind in _DIRECTORIES:
            _remove(tree / entry.path)
        else:
            (tree / entry.path).unlink(missing_ok=True)
    _add(snapshots, [e for e in shown if not _same(e, before.get(e.path))], tree, owner,
         pause)
    _finish(shown, tree)


def _same(entry: Entry, other: Entry | None) -> bool:
    """Whether a view shows ``entry`` and ``other`` as the same directory entry (files
    and symlinks by their ref: modes and mtimes are in the record)."""
    if other is None:
        return False
    if entry.kind in _DIRECTORIES:
        return other.kind in _DIRECTORIES
    return entry.kind == other.kind and entry.ref == other.ref


def _add(snapshots: Snapshotter, entries: list[Entry], tree: Path, owner: int | None,
         pause: Callable[[], None]) -> None:
    """Make each entry in ``tree`` (sorted: a directory before what it holds)."""
    for number, entry in enumerate(entries):
        if number % _PAUSE_EVERY == 0:
            pause()
        target = tree / entry.path
        if entry.kind in _DIRECTORIES:
            target.mkdir()
        elif entry.kind == "l":
            os.symlink(entry.ref, target)
        elif is_chunked(entry.ref):
            snapshots.store.link_assembled(entry.ref, target)
        else:
            os.link(snapshots.object_path(entry.ref), target)
        if owner is not None:  # a file's inode is the stored object's: fine to share
            os.chown(target, owner, owner, follow_symlinks=False)


def _finish(shown: list[Entry], tree: Path) -> None:
    """Write the record of modes and mtimes; give directories theirs (the owner keeps
    rwx, so the view can be recycled and removed), deepest first."""
    record = {entry.path: [entry.mode, entry.mtime_ns] for entry in shown}
    (tree / RECORD).write_text(json.dumps({"entries": record}, separators=(",", ":")))
    for entry in sorted((e for e in shown if e.kind in _DIRECTORIES),
                        key=lambda e: e.path.count("/"), reverse=True):
        os.chmod(tree / entry.path, entry.mode | 0o700)
        os.utime(tree / entry.path, ns=(entry.mtime_ns, entry.mtime_ns))


def _remove(path: Path) -> None:
    """Delete a view whatever its directories' modes (its hard links only lose a name)."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        for parent, subdirectories, _ in os.walk(path):
            for name in subdirectories:
                child = os.path.join(parent, name)
                if not os.path.islink(child):
                    with contextlib.suppress(OSError):
                        os.chmod(child, 0o700)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
