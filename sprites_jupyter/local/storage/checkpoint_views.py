"""Read-only views of a sprite's recent checkpoints, seen inside as ``/.sprite/checkpoints/<id>/``.

A view is the checkpoint's tree (the sprite's own layer: what it wrote, not the host's
base beneath) materialised in the platform directory, which the sandbox binds
read-only: directories and symlinks as recorded, files as hard links to the stored
objects, which are immutable and content-addressed, so a view costs no file data. File
modes and mtimes are the objects' (one object serves every file with its content);
whiteouts are left out. A view is built aside and renamed into place, so a new one
appears whole, live, in a running sprite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

from .restore_plan import DIR_KINDS
from .snapshots import Snapshotter
from .store import Store

RECENT = 5
_BUILDING = ".building-"


def refresh(snapshots: Snapshotter, store: Store, sprite: str, directory: Path) -> None:
    """Make ``directory`` hold exactly the views of the sprite's ``RECENT`` newest
    checkpoints (automatic ones aside)."""
    directory.mkdir(parents=True, exist_ok=True)
    recent = store.list_checkpoints(sprite, include_auto=False)[:RECENT]
    wanted = {row.id: row.manifest for row in recent}
    for entry in os.scandir(directory):
        if entry.name not in wanted or entry.name.startswith(_BUILDING):
            _remove(Path(entry.path))
    for checkpoint_id, manifest in wanted.items():
        if not (directory / checkpoint_id).exists():
            with contextlib.suppress(OSError, ValueError):
                _build(snapshots, manifest, directory, checkpoint_id)


def _build(snapshots: Snapshotter, manifest: str, directory: Path, checkpoint_id: str) -> None:
    building = directory / f"{_BUILDING}{checkpoint_id}"
    _remove(building)
    entries = snapshots.load_manifest(manifest)
    try:
        building.mkdir()
        for entry in entries:
            if entry.path == "." or entry.path.split("/")[0] == ".sprite":
                continue
            target = building / entry.path
            if entry.kind in DIR_KINDS:
                target.mkdir()
            elif entry.kind == "l":
                os.symlink(entry.ref, target)
            elif entry.kind == "f":
                os.link(snapshots.object_path(entry.ref), target)
        for entry in sorted((e for e in entries if e.kind in DIR_KINDS and e.path != "."
                             and e.path.split("/")[0] != ".sprite"),
                            key=lambda e: e.path.count("/"), reverse=True):
            os.chmod(building / entry.path, entry.mode | stat.S_IRUSR | stat.S_IXUSR)
        os.rename(building, directory / checkpoint_id)
    except BaseException:
        _remove(building)
        raise


def _remove(path: Path) -> None:
    """Delete a view, whatever its directories' modes (hard links only lose a name)."""
    if not os.path.lexists(path):
        return
    for directory, subdirectories, _ in os.walk(path):
        for name in subdirectories:
            with contextlib.suppress(OSError):
                child = os.path.join(directory, name)
                if not os.path.islink(child):
                    os.chmod(child, 0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    shutil.rmtree(path, ignore_errors=True)
