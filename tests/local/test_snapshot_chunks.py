"""Chunked large files in the snapshotter on real directories: old data, racy files, views."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from sprites_jupyter.local.storage import checkpoint_views, snapshots
from sprites_jupyter.local.storage.objects import CHUNK, CHUNKED, CHUNKED_OVER
from sprites_jupyter.local.storage.snapshots import Snapshotter
from sprites_jupyter.local.storage.store import Store
from tests.local.trees import demo_sprite

SIZE = CHUNKED_OVER + 3 * CHUNK + 777  # the last chunk is a short one


@pytest.fixture
def setup(tmp_path: Path):
    return demo_sprite(tmp_path)


def _ref(snapshotter: Snapshotter, manifest: str, path: str) -> str:
    return next(e.ref for e in snapshotter.load_manifest(manifest) if e.path == path)


def _checkpoint(snapshotter: Snapshotter, store: Store, root: Path) -> tuple[str, str]:
    manifest = snapshotter.snapshot("demo", root)
    return store.add_checkpoint("demo", manifest=manifest, comment="", is_auto=False).id, manifest


def test_checkpoints_stored_whole_by_an_older_server_still_restore_and_are_kept(
        setup, monkeypatch) -> None:
    snapshotter, store, root = setup
    big = root / "big.bin"
    big.write_bytes(os.urandom(SIZE))
    old = big.read_bytes()
    monkeypatch.setattr(snapshots, "CHUNKED_OVER", 1 << 40)  # the format before chunks
    old_id, old_manifest = _checkpoint(snapshotter, store, root)
    monkeypatch.undo()
    assert _ref(snapshotter, old_manifest, "big.bin") == hashlib.sha256(old).hexdigest()
    big.write_bytes(os.urandom(SIZE))
    new_id, new_manifest = _checkpoint(snapshotter, store, root)
    assert _ref(snapshotter, new_manifest, "big.bin").startswith(CHUNKED)
    snapshotter.mark_garbage()
    snapshotter.collect_garbage(store)
    snapshotter.restore("demo", root, old_manifest, checkpoint_id=old_id, store=store)
    assert big.read_bytes() == old
    snapshotter.restore("demo", root, new_manifest, checkpoint_id=new_id, store=store)
    assert len(big.read_bytes()) == SIZE and big.read_bytes() != old


def test_a_large_file_changed_just_before_a_snapshot_is_read_again(setup, monkeypatch) -> None:
    snapshotter, _, root = setup
    big = root / "big.bin"
    racy_ns = snapshots._RACY_NS
    # a window of a minute, so that a loaded machine cannot delay the snapshot out of it
    monkeypatch.setattr(snapshots, "_RACY_NS", 60_000_000_000)
    big.write_bytes(os.urandom(SIZE))
    snapshotter.snapshot("demo", root)  # inside the racy window, so not cached
    reads: list[Path] = []
    original = Snapshotter._store_file
    monkeypatch.setattr(Snapshotter, "_store_file",
                        lambda self, tree, rel: reads.append(Path(tree.top, rel))
                        or original(self, tree, rel))
    snapshotter.snapshot("demo", root)
    assert reads == [big]
    monkeypatch.setattr(snapshots, "_RACY_NS", racy_ns)
    time.sleep(0.15)  # past the window: a snapshot now caches it, and the next trusts that
    snapshotter.snapshot("demo", root)
    reads.clear()
    snapshotter.snapshot("demo", root)
    assert reads == []


def test_views_share_one_assembled_copy_and_drop_it_with_the_last_view(setup,
                                                                        tmp_path) -> None:
    snapshotter, store, root = setup
    big = root / "big.bin"
    big.write_bytes(os.urandom(SIZE))
    views = tmp_path / "views"
    checkpoint_ids = []
    for _ in range(2):  # two checkpoints of the same content: one copy serves both views
        checkpoint_ids.append(_checkpoint(snapshotter, store, root)[0])
        checkpoint_views.CheckpointViews(snapshotter, store, "demo", views).settle()
    assembled = list(snapshotter.store.assembly.iterdir())
    assert len(assembled) == 1 and assembled[0].read_bytes() == big.read_bytes()
    assert all((views / c / "big.bin").samefile(assembled[0]) for c in checkpoint_ids)
    for checkpoint_id in checkpoint_ids:
        store.delete_checkpoint("demo", checkpoint_id)
    checkpoint_views.CheckpointViews(snapshotter, store, "demo", views).settle()
    assert list(snapshotter.store.assembly.iterdir()) == []
