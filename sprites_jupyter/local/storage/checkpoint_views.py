"""Read-only views of a sprite's recent checkpoints, seen inside as ``/.sprite/checkpoints/<id>/``.

The real service mounts the last five checkpoints there so a sprite can read or
diff a previous state without restoring it. A view here is the checkpoint's tree
(the sprite's own layer: what it wrote, not the base image beneath) made in the
platform directory, which the sandbox binds read-only: directories and symlinks as
recorded, files as hard links to the stored objects (immutable and content
addressed, so a view copies no file data). A file stored in chunks has no whole object:
it is assembled once per version (a full copy of its bytes, disk and time alike) and that
copy is linked into every view showing it, then deleted when no view does. One object
serves every file with its
content, so it cannot carry each file's mode and mtime: the view records them in
its ``.sprite/stat.json`` (``{"entries": {path: [mode, mtime_ns]}}``), which the
in-sprite diff helper reads. A view is built aside (``.building-<id>``) and renamed
into place, so it appears whole in a running sprite. A view that needs a chunked file
assembled can be left for later (``assemble=False``): its ``.building-<id>`` is made at
once, so a sprite that looks for the view can tell it is coming and wait.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from .objects import is_chunked
from .snapshots import Entry, Snapshotter
from .store import Store

__all__ = ["RECENT", "RECORD", "refresh"]

RECENT = 5
RECORD = ".sprite/stat.json"
_BUILDING = ".building-"
_DIRECTORIES = ("d", "o")


def refresh(snapshots: Snapshotter, store: Store, sprite: str, directory: Path, *,
            assemble: bool = True, owner: int | None = None) -> list[str]:
    """Make ``directory`` hold exactly the views of the sprite's ``RECENT`` newest
    checkpoints (automatic ones aside), building only the missing ones. Without
    ``assemble``, views that need a chunked file assembled are only announced (their
    ``.building-<id>``); their ids are returned, for a later call with ``assemble``.
    ``owner``: the host uid and gid to give what a view shows (the sprite user's, when
    that is not the server's own), so the sprite can read it."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {row.id: row.manifest
              for row in store.list_checkpoints(sprite, include_auto=False, limit=RECENT)}
    for entry in os.scandir(directory):
        if entry.name not in wanted and entry.name.removeprefix(_BUILDING) not in wanted:
            _remove(Path(entry.path))
    deferred = []
    for checkpoint_id, manifest in wanted.items():
        if not (directory / checkpoint_id).exists():
            entries = snapshots.load_manifest(manifest)
            if not assemble and _needs_assembly(snapshots, entries):
                (directory / f"{_BUILDING}{checkpoint_id}").mkdir(exist_ok=True)
                deferred.append(checkpoint_id)
            else:
                _build(snapshots, entries, directory, checkpoint_id, owner)
    snapshots.store.prune_assembled()
    return deferred


def _needs_assembly(snapshots: Snapshotter, entries: list[Entry]) -> bool:
    return any(is_chunked(entry.ref) and not snapshots.store.assembly_path(entry.ref).exists()
               for entry in entries if entry.kind == "f" and _shown(entry))


def _shown(entry: Entry) -> bool:
    return entry.path != "." and entry.path.split("/", 1)[0] != ".sprite" and \
        entry.kind in (*_DIRECTORIES, "f", "l")


def _build(snapshots: Snapshotter, entries: list[Entry], directory: Path,
           checkpoint_id: str, owner: int | None = None) -> None:
    building = directory / f"{_BUILDING}{checkpoint_id}"
    building.mkdir(exist_ok=True)  # kept, not remade: it says the view is coming
    for leftover in os.scandir(building):
        _remove(Path(leftover.path))
    shown = [entry for entry in entries if _shown(entry)]
    try:
        (building / ".sprite").mkdir()
        for entry in shown:
            target = building / entry.path
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
        record = {entry.path: [entry.mode, entry.mtime_ns] for entry in shown}
        (building / RECORD).write_text(json.dumps({"entries": record}, separators=(",", ":")))
        for entry in sorted((e for e in shown if e.kind in _DIRECTORIES),
                            key=lambda e: e.path.count("/"), reverse=True):
            os.chmod(building / entry.path, entry.mode | 0o700)
            os.utime(building / entry.path, ns=(entry.mtime_ns, entry.mtime_ns))
        os.rename(building, directory / checkpoint_id)
    except BaseException:
        _remove(building)
        raise


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
