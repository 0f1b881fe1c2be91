"""Snapshots from find's listing: the same manifests as a walk in Python, and only what
changed since the last listing looked at again."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from sprites_jupyter.local.storage import layer_listing
from sprites_jupyter.local.storage.snapshots import Snapshotter
from tests.local.trees import demo_sprite, fill


@pytest.fixture
def setup(tmp_path: Path):
    return demo_sprite(tmp_path)


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The names of the files whose data snapshots read from now on."""
    stored: list[str] = []
    original = Snapshotter._store_file
    monkeypatch.setattr(Snapshotter, "_store_file",
                        lambda self, tree, rel: stored.append(Path(rel).name)
                        or original(self, tree, rel))
    return stored


def _odd_tree(root: Path) -> None:
    """Every kind of entry a layer holds, with names find and Python might spell apart."""
    fill(root / "data", 12, 512, "odd")
    (root / "empty").mkdir()
    (root / "with space").write_text("s")
    (root / "new\nline").write_text("n")
    (root / "naïve ✓").write_text("u")
    (root / "setuid").write_text("#!/bin/sh\n")
    os.chmod(root / "setuid", 0o4755)
    (root / "link").symlink_to("with space")
    (root / "dangling").symlink_to("/nowhere/at all")
    os.mkfifo(root / "fifo")
    os.mknod(root / "whiteout", 0o600 | 0o020000, os.makedev(0, 0))
    (root / "opaque").mkdir()
    os.setxattr(root / "opaque", "user.overlay.opaque", b"y")
    (root / ".sprite").mkdir()  # the platform's mount point: never in the tree's listing
    (root / ".sprite" / "not-captured").write_text("x")


def _walked(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The manifest a snapshotter without find makes of ``root`` (its own home)."""
    home = tmp_path / "walked"
    home.mkdir(exist_ok=True)
    with monkeypatch.context() as without_find:
        without_find.setattr(layer_listing, "FIND", None)
        return Snapshotter(home).snapshot("demo", root)


def test_a_listed_snapshot_is_the_walked_one(setup, tmp_path: Path, monkeypatch) -> None:
    snapshots, _, root = setup
    _odd_tree(root)
    assert layer_listing.list_tree(os.fspath(root)) is not None, "find is on PATH"
    listed = snapshots.snapshot("demo", root)
    assert listed == _walked(tmp_path, root, monkeypatch)
    kinds = {e.path: e.kind for e in snapshots.load_manifest(listed)}
    assert kinds["whiteout"] == "w" and kinds["opaque"] == "o" and "fifo" not in kinds
    assert kinds["new\nline"] == "f" and kinds["naïve ✓"] == "f"
    assert not any(path.startswith(".sprite/not") for path in kinds)
    assert snapshots.snapshot("demo", root) == listed


def test_only_what_changed_since_the_last_listing_is_read(setup, tmp_path: Path, reads,
                                                          monkeypatch) -> None:
    snapshots, _, root = setup
    fill(root / "data", 40, 1024, "a")
    time.sleep(0.15)  # outlast the racy window: every file is cached
    first = snapshots.snapshot("demo", root)
    reads.clear()
    assert snapshots.snapshot("demo", root) == first
    assert reads == []
    data = root / "data" / "d00"
    kept = (data / "f00000.bin").stat()
    (data / "f00000.bin").write_bytes(b"x" * kept.st_size)  # in place, same size and mtime
    os.utime(data / "f00000.bin", ns=(kept.st_atime_ns, kept.st_mtime_ns))
    (data / "f00020.bin").unlink()
    (data / "added").write_bytes(b"added")
    os.chmod(root / "data" / "d03" / "f00003.bin", 0o600)  # a new ctime: read again
    shutil.rmtree(root / "data" / "d01")
    (root / "data" / "d02" / "f00002.bin").unlink()
    (root / "data" / "d02" / "f00002.bin").symlink_to("elsewhere")
    changed = snapshots.snapshot("demo", root)
    assert sorted(reads) == ["added", "f00000.bin", "f00003.bin"]
    assert changed == _walked(tmp_path, root, monkeypatch)


def test_a_failing_find_falls_back_to_the_walk(setup, tmp_path: Path, monkeypatch) -> None:
    snapshots, _, root = setup
    _odd_tree(root)
    monkeypatch.setattr(layer_listing, "FIND", shutil.which("false"))
    assert layer_listing.list_tree(os.fspath(root)) is None
    failed = snapshots.snapshot("demo", root)
    monkeypatch.undo()
    assert failed == snapshots.snapshot("demo", root) == _walked(tmp_path, root, monkeypatch)


def test_a_file_whose_object_was_collected_is_read_again_though_listed_alike(
        setup, reads) -> None:
    snapshots, store, root = setup
    (root / "only-here").write_bytes(b"its only checkpoint is deleted")
    time.sleep(0.15)
    store.add_checkpoint("demo", manifest=snapshots.snapshot("demo", root), comment="",
                         is_auto=False)
    snapshots.snapshot("demo", root)  # listed: remembered as known
    store.set_source("demo", "v0")
    store.delete_checkpoint("demo", "v1")
    snapshots.collect_garbage(store)
    reads.clear()
    manifest = snapshots.snapshot("demo", root)
    assert reads == ["only-here"]
    entry = next(e for e in snapshots.load_manifest(manifest) if e.path == "only-here")
    assert snapshots.object_path(entry.ref).read_bytes() == b"its only checkpoint is deleted"
