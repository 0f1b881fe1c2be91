"""The snapshotter on real directories: round trips, incrementality, crash recovery."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from sprites_jupyter.local.snapshots import Snapshotter
from sprites_jupyter.local.store import Store
from tests.local.trees import fill, fingerprint


@pytest.fixture
def setup(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    store = Store(home / "metadata.sqlite3")
    snapshots = Snapshotter(home)
    root = home / "sprites" / "demo" / "root"
    (root / "home" / "sprite").mkdir(parents=True)
    base = snapshots.snapshot("demo", root)
    store.create_sprite("demo", url_settings={"auth": "sprite"}, labels=[], base_manifest=base)
    return snapshots, store, root


def test_round_trip_keeps_content_modes_links_and_empty_dirs(setup) -> None:
    snapshots, store, root = setup
    fill(root / "data", 40, 1000, "a")
    (root / "empty").mkdir()
    (root / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "run.sh", 0o751)
    (root / "abs-link").symlink_to("/does/not/exist")
    (root / "rel-link").symlink_to("run.sh")
    os.mkfifo(root / "fifo")  # special files are skipped, not an error
    manifest = snapshots.snapshot("demo", root)
    (root / "fifo").unlink()
    expected = fingerprint(root)
    shutil.rmtree(root / "data")
    (root / "run.sh").write_text("changed")
    (root / "extra").write_text("x")
    snapshots.restore("demo", root, manifest, checkpoint_id="v1", store=store)
    assert fingerprint(root) == expected
    assert os.readlink(root / "abs-link") == "/does/not/exist"
    assert (root / "empty").is_dir()


def test_unchanged_tree_reads_no_file_data(setup, monkeypatch) -> None:
    snapshots, _, root = setup
    fill(root / "data", 30, 4096, "a")
    first = snapshots.snapshot("demo", root)
    stored: list[Path] = []
    original = Snapshotter._store_file
    monkeypatch.setattr(Snapshotter, "_store_file",
                        lambda self, source: stored.append(source) or original(self, source))
    assert snapshots.snapshot("demo", root) == first
    assert stored == []
    (root / "data" / "d00" / "f00000.bin").write_bytes(b"new")
    assert snapshots.snapshot("demo", root) != first
    assert [p.name for p in stored] == ["f00000.bin"]


def test_identical_content_is_stored_once(setup) -> None:
    snapshots, _, root = setup
    for i in range(10):
        (root / f"copy{i}").write_bytes(b"same bytes" * 1000)
    snapshots.snapshot("demo", root)
    holding = [p for p in snapshots.objects.rglob("*") if p.is_file()
               and p.read_bytes() == b"same bytes" * 1000]
    assert len(holding) == 1


def test_restore_with_a_missing_object_leaves_the_tree_alone(setup) -> None:
    snapshots, store, root = setup
    (root / "file").write_text("in the snapshot")
    manifest = snapshots.snapshot("demo", root)
    (root / "file").write_text("live")
    before = fingerprint(root)
    entry = next(e for e in snapshots.load_manifest(manifest) if e.path == "file")
    snapshots._object_path(entry.ref).unlink()
    with pytest.raises(FileNotFoundError):
        snapshots.restore("demo", root, manifest, checkpoint_id="v1", store=store)
    assert fingerprint(root) == before
    assert not root.with_name("root.restore").exists()


def _staged_restore(snapshots: Snapshotter, root: Path, manifest: str) -> None:
    """Leave the state a crash right after the journal was written leaves."""
    staging = root.with_name("root.restore")
    snapshots._build("demo", root, staging, snapshots.load_manifest(manifest), None)
    (root.parent / "restore.json").write_text(json.dumps({"checkpoint": "v1",
                                                          "manifest": manifest}))


def test_recover_rolls_a_committed_restore_forward(setup) -> None:
    snapshots, store, root = setup
    (root / "file").write_text("target")
    manifest = snapshots.snapshot("demo", root)
    target = fingerprint(root)
    (root / "file").write_text("before")
    _staged_restore(snapshots, root, manifest)
    snapshots.recover("demo", root, store)
    assert fingerprint(root) == target
    assert store.get_sprite("demo").source_id == "v1"


def test_recover_finishes_a_swap_cut_between_the_renames(setup) -> None:
    snapshots, store, root = setup
    (root / "file").write_text("target")
    manifest = snapshots.snapshot("demo", root)
    target = fingerprint(root)
    (root / "file").write_text("before")
    _staged_restore(snapshots, root, manifest)
    os.rename(root, root.with_name("root.old"))
    snapshots.recover("demo", root, store)
    assert fingerprint(root) == target
    assert not root.with_name("root.old").exists()


def test_recover_drops_an_uncommitted_staging_tree(setup) -> None:
    snapshots, store, root = setup
    (root / "file").write_text("target")
    manifest = snapshots.snapshot("demo", root)
    (root / "file").write_text("before")
    before = fingerprint(root)
    snapshots._build("demo", root, root.with_name("root.restore"),
                     snapshots.load_manifest(manifest), None)
    snapshots.recover("demo", root, store)
    assert fingerprint(root) == before
    assert not root.with_name("root.restore").exists()
    assert store.get_sprite("demo").source_id == "v0"
