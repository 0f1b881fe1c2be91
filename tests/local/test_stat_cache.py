"""The stat cache on disk: appended saves, and a torn append."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sprites_jupyter.local.storage.snapshots import Snapshotter
from tests.local.trees import fill


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    root = home / "sprites" / "demo" / "root"
    fill(root / "data", 40, 2048, "a")
    time.sleep(0.15)  # past the racy window: what the first snapshot reads is cached
    return home, root


def _reads_after_restart(home: Path, root: Path, monkeypatch) -> list[Path]:
    """The files a snapshot by a fresh server (a new Snapshotter on the home) reads."""
    reads: list[Path] = []
    original = Snapshotter._store_file
    monkeypatch.setattr(Snapshotter, "_store_file",
                        lambda self, tree, rel: reads.append(Path(tree.top, rel))
                        or original(self, tree, rel))
    Snapshotter(home).snapshot("demo", root)
    monkeypatch.undo()
    return reads


def test_saves_appended_to_the_cache_survive_a_restart(tree, monkeypatch) -> None:
    home, root = tree
    snapshots = Snapshotter(home)
    snapshots.snapshot("demo", root)
    for i in range(3):  # each snapshot appends what changed: one entry, one path dropped
        (root / "data" / "d00" / "f00000.bin").write_bytes(b"round %d" % i)
        (root / "data" / f"d{i + 1:02d}" / f"f{i + 1:05d}.bin").unlink()
        time.sleep(0.15)
        snapshots.snapshot("demo", root)
    cache = home / "statcache" / "demo.cache"
    size = cache.stat().st_size
    assert _reads_after_restart(home, root, monkeypatch) == []
    assert cache.stat().st_size == size  # nothing changed: nothing written


def test_a_torn_append_costs_only_a_reread(tree, monkeypatch) -> None:
    home, root = tree
    snapshots = Snapshotter(home)
    snapshots.snapshot("demo", root)
    changed = root / "data" / "d00" / "f00000.bin"
    changed.write_bytes(b"changed")
    time.sleep(0.15)
    snapshots.snapshot("demo", root)
    cache = home / "statcache" / "demo.cache"
    cache.write_bytes(cache.read_bytes()[:-3])  # a crash in the middle of the append
    assert _reads_after_restart(home, root, monkeypatch) == [changed]
