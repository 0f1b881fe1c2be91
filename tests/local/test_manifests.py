"""Manifests in pages on real directories: a small change stores a page, old manifests load."""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from pathlib import Path

import pytest

from sprites_jupyter.local.storage.snapshots import Snapshotter
from tests.local.trees import demo_sprite, fill, fingerprint


@pytest.fixture
def setup(tmp_path: Path):
    def prepare(root: Path) -> None:
        fill(root / "data", 4000, 64, "a")
        time.sleep(0.15)

    return demo_sprite(tmp_path, prepare)


def _pages(snapshots: Snapshotter) -> set[Path]:
    return set((snapshots.manifests / "pages").glob("??/*"))


def test_a_small_change_stores_the_pages_it_touched_not_the_whole_manifest(setup) -> None:
    snapshots, _, root = setup
    before = _pages(snapshots)
    (root / "data" / "d03" / "f00003.bin").write_bytes(b"changed")
    snapshots.snapshot("demo", root)
    added = _pages(snapshots) - before
    assert 1 <= len(added) <= 2  # the file's page, and its directory's if that is another
    whole = sum(p.stat().st_size for p in before)
    assert sum(p.stat().st_size for p in added) < whole / 4


def test_a_manifest_written_whole_by_an_older_server_restores_and_is_kept(setup) -> None:
    snapshots, store, root = setup
    entries = snapshots.load_manifest(snapshots.snapshot("demo", root))
    raw = json.dumps(entries, separators=(",", ":")).encode()  # the format before pages
    old_id = hashlib.sha256(raw).hexdigest()
    target = snapshots.manifests / old_id[:2] / old_id[2:]
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(zlib.compress(raw, 1))
    row = store.add_checkpoint("demo", manifest=old_id, comment="", is_auto=False)
    expected = fingerprint(root)
    fill(root / "data", 40, 64, "b")
    snapshots.mark_garbage()
    restarted = Snapshotter(snapshots.objects.parent)  # a fresh server: nothing in memory
    restarted.collect_garbage(store)
    restarted.restore("demo", root, old_id, checkpoint_id=row.id, store=store)
    assert fingerprint(root) == expected


def test_a_missing_page_is_reported_not_guessed(setup) -> None:
    snapshots, _, root = setup
    (root / "data" / "d00" / "f00000.bin").write_bytes(b"changed")
    manifest = snapshots.snapshot("demo", root)
    for page in Snapshotter(snapshots.objects.parent)._manifests.pages(manifest):
        (snapshots.manifests / "pages" / page[:2] / page[2:]).unlink()
    with pytest.raises(FileNotFoundError):
        Snapshotter(snapshots.objects.parent).load_manifest(manifest)


def test_a_page_collected_since_the_last_save_is_stored_again(setup) -> None:
    """Saving reuses the last save's unchanged pages: not one a collection deleted since."""
    snapshots, store, root = setup
    (root / "data" / "d03" / "f00003.bin").write_bytes(b"only in v1")
    time.sleep(0.15)
    store.add_checkpoint("demo", manifest=snapshots.snapshot("demo", root), comment="",
                         is_auto=False)
    store.delete_checkpoint("demo", "v1")
    snapshots.collect_garbage(store)
    (root / "data" / "d11" / "f00011.bin").write_bytes(b"elsewhere")
    manifest = snapshots.snapshot("demo", root)
    entries = Snapshotter(snapshots.objects.parent).load_manifest(manifest)  # every page
    changed = next(e for e in entries if e.path == "data/d03/f00003.bin")
    assert changed.size == len(b"only in v1")
    assert snapshots.object_path(changed.ref).read_bytes() == b"only in v1"
