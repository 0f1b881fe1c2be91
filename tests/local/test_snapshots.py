"""The snapshotter on real directories: round trips, incrementality, crash recovery."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from sprites_jupyter.local.storage import restore_plan
from sprites_jupyter.local.storage.layer_format import locate
from sprites_jupyter.local.storage.layer_reader import LayerReader
from sprites_jupyter.local.storage.snapshots import SnapshotError, Snapshotter
from tests.local.trees import demo_sprite, fill, fingerprint


@pytest.fixture
def setup(tmp_path: Path):
    return demo_sprite(tmp_path, url_settings={"auth": "sprite"})


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


def _settle() -> None:
    """Outlast the window in which a just-changed file is read again by the next snapshot."""
    time.sleep(0.15)


@pytest.fixture
def reads(monkeypatch) -> list[Path]:
    """The files whose data snapshots read from now on."""
    stored: list[Path] = []
    original = Snapshotter._store_file
    monkeypatch.setattr(Snapshotter, "_store_file",
                        lambda self, tree, rel: stored.append(Path(tree.top, rel))
                        or original(self, tree, rel))
    return stored


def test_unchanged_tree_reads_no_file_data(setup, reads) -> None:
    snapshots, _, root = setup
    fill(root / "data", 30, 4096, "a")
    _settle()
    first = snapshots.snapshot("demo", root)
    reads.clear()
    assert snapshots.snapshot("demo", root) == first
    assert reads == []
    (root / "data" / "d00" / "f00000.bin").write_bytes(b"new")
    assert snapshots.snapshot("demo", root) != first
    assert [p.name for p in reads] == ["f00000.bin"]


def _content(snapshots: Snapshotter, manifest: str, path: str) -> bytes:
    entry = next(e for e in snapshots.load_manifest(manifest) if e.path == path)
    return snapshots.object_path(entry.ref).read_bytes()


def test_a_rewrite_that_keeps_size_and_mtime_is_still_seen(setup) -> None:
    """cp -p, rsync -t and tar put the old mtime back; the ctime gives them away."""
    snapshots, _, root = setup
    data = root / "data.txt"
    data.write_text("AAAA")
    _settle()
    snapshots.snapshot("demo", root)
    old = data.stat()
    data.write_text("CCCC")
    os.utime(data, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert _content(snapshots, snapshots.snapshot("demo", root), "data.txt") == b"CCCC"


def test_a_file_changed_just_before_a_snapshot_is_read_again(setup, reads) -> None:
    """Within one timestamp tick a second change would leave every stat field alone."""
    snapshots, _, root = setup
    (root / "fresh").write_text("x")
    first = snapshots.snapshot("demo", root)
    _settle()
    reads.clear()
    assert snapshots.snapshot("demo", root) == first
    assert [p.name for p in reads] == ["fresh"]
    reads.clear()
    snapshots.snapshot("demo", root)
    assert reads == []


def test_checkpoint_after_a_restore_reads_no_file_data(setup, reads) -> None:
    snapshots, store, root = setup
    fill(root / "data", 40, 2048, "a")
    _settle()
    before = snapshots.snapshot("demo", root)
    (root / "data" / "d01" / "f00001.bin").write_bytes(b"changed")
    (root / "data" / "new").write_bytes(b"new")
    _settle()
    snapshots.snapshot("demo", root)
    snapshots.restore("demo", root, before, checkpoint_id="v1", store=store)
    reads.clear()
    assert snapshots.snapshot("demo", root) == before
    assert reads == []


def test_reading_never_follows_a_symlink_or_blocks_on_a_fifo(setup, tmp_path: Path) -> None:
    """What the walk saw as a file may be swapped for a link or a fifo before it is read."""
    snapshots, _, root = setup
    secret = tmp_path / "outside-secret"
    secret.write_text("host data")
    (root / "link").symlink_to(secret)
    os.mkfifo(root / "fifo")
    results: dict[str, object] = {}
    with LayerReader(os.fspath(root)) as tree:
        reader = threading.Thread(target=lambda: results.update(
            link=snapshots._store_file(tree, "link"), fifo=snapshots._store_file(tree, "fifo"),
            gone=snapshots._store_file(tree, "gone")))
        reader.start()
        reader.join(timeout=60)  # a blocked read never ends; a loaded machine is only slow
    assert not reader.is_alive(), "reading a fifo blocked"
    assert results == {"link": None, "fifo": None, "gone": None}


def test_errors_name_the_sprite_path(setup, monkeypatch) -> None:
    snapshots, _, root = setup
    (root / "home" / "sprite" / "private").write_text("x")

    def refuse(self, tree, rel):
        raise PermissionError(13, "Permission denied", locate(tree.top, rel))

    monkeypatch.setattr(Snapshotter, "_store_file", refuse)
    with pytest.raises(SnapshotError) as failure:
        snapshots.snapshot("demo", root)
    assert str(failure.value) == "Permission denied: /home/sprite/private"


def test_restore_never_writes_through_a_live_symlink(setup, tmp_path: Path) -> None:
    snapshots, store, root = setup
    (root / "cfg").mkdir()
    (root / "cfg" / "settings").write_text("restored")
    manifest = snapshots.snapshot("demo", root)
    shutil.rmtree(root / "cfg")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "cfg").symlink_to(outside)
    snapshots.restore("demo", root, manifest, checkpoint_id="v1", store=store)
    assert not (root / "cfg").is_symlink()
    assert (root / "cfg" / "settings").read_text() == "restored"
    assert list(outside.iterdir()) == []


def test_objects_are_never_linked_into_the_tree(setup) -> None:
    snapshots, store, root = setup
    fill(root / "data", 20, 1000, "a")
    _settle()
    manifest = snapshots.snapshot("demo", root)
    shutil.rmtree(root / "data")
    snapshots.restore("demo", root, manifest, checkpoint_id="v1", store=store)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 20
    assert all(p.stat().st_nlink == 1 for p in files)
    objects = [p for p in snapshots.objects.rglob("*") if p.is_file()]
    assert all(p.stat().st_nlink == 1 for p in objects)


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
    before = fingerprint(root, mtimes=True)
    entry = next(e for e in snapshots.load_manifest(manifest) if e.path == "file")
    snapshots.object_path(entry.ref).unlink()
    with pytest.raises(SnapshotError, match="stored data of /file is missing"):
        snapshots.restore("demo", root, manifest, checkpoint_id="v1", store=store)
    assert fingerprint(root, mtimes=True) == before
    assert sorted(p.name for p in root.parent.iterdir()) == ["root"]
    assert store.get_sprite("demo").source_id == "v0"


class _Crash(BaseException):
    """Stands in for SIGKILL: unwinds without any of the restore's own error handling."""


def _crash_after(monkeypatch, steps: int | None) -> None:
    """Make the next restore die right after its commit point (``steps=None``), or after
    doing only the first ``steps`` of its journaled renames."""
    real = restore_plan.apply

    def apply(top, sprite_dir, journal):
        if steps is not None:
            ops = [*journal["trash"], *journal["mkdir"], *journal["place"]][:steps]
            real(top, sprite_dir, {"trash": [o for o in ops if o in journal["trash"]],
                                   "mkdir": [o for o in ops if o in journal["mkdir"]],
                                   "place": [o for o in ops if o in journal["place"]]})
        raise _Crash

    monkeypatch.setattr(restore_plan, "apply", apply)


def _two_trees(snapshots: Snapshotter, root: Path) -> tuple[str, str, str]:
    """A target snapshot and a different live tree; returns (manifest, target, before)."""
    fill(root / "data", 30, 1000, "target")
    (root / "gone-later").mkdir()
    (root / "link").symlink_to("data")
    _settle()
    manifest = snapshots.snapshot("demo", root)
    target = fingerprint(root, mtimes=True)
    fill(root / "data", 15, 1000, "before")
    (root / "gone-later").rmdir()
    (root / "link").unlink()
    (root / "link").mkdir()
    (root / "link" / "inside").write_text("x")
    (root / "extra").write_text("x")
    _settle()
    snapshots.snapshot("demo", root)
    return manifest, target, fingerprint(root, mtimes=True)


@pytest.mark.parametrize("steps", [None, 0, 1, 2, 5, 17])
def test_recover_rolls_a_committed_restore_forward(setup, monkeypatch, steps) -> None:
    snapshots, store, root = setup
    manifest, target, before = _two_trees(snapshots, root)
    _crash_after(monkeypatch, steps)
    with pytest.raises(_Crash):
        snapshots.restore("demo", root, manifest, checkpoint_id="v1", store=store)
    assert (root.parent / "restore.json").exists()
    monkeypatch.undo()
    Snapshotter(root.parents[2]).recover("demo", root, store)
    assert fingerprint(root, mtimes=True) == target != before
    assert store.get_sprite("demo").source_id == "v1"
    assert sorted(p.name for p in root.parent.iterdir()) == ["root"]


def test_recover_drops_an_uncommitted_restore(setup, monkeypatch) -> None:
    snapshots, store, root = setup
    manifest, _, before = _two_trees(snapshots, root)
    real_stage, staged = Snapshotter._stage, []

    def stage_then_die(self, dest, entry, owner):
        real_stage(self, dest, entry, owner)
        staged.append(dest)
        if len(staged) == 3:
            raise _Crash

    monkeypatch.setattr(Snapshotter, "_stage", stage_then_die)
    monkeypatch.setattr(restore_plan, "clear", lambda sprite_dir: None)  # as if killed
    with pytest.raises(_Crash):
        snapshots.restore("demo", root, manifest, checkpoint_id="v1", store=store)
    monkeypatch.undo()
    assert (root.parent / "restore-staging").exists()
    Snapshotter(root.parents[2]).recover("demo", root, store)
    assert fingerprint(root, mtimes=True) == before
    assert store.get_sprite("demo").source_id == "v0"
    assert sorted(p.name for p in root.parent.iterdir()) == ["root"]


def test_restore_replaces_types_and_keeps_unchanged_files_in_place(setup) -> None:
    snapshots, store, root = setup
    manifest, target, _ = _two_trees(snapshots, root)
    untouched = root / "data" / "d19" / "f00019.bin"
    inode = untouched.stat().st_ino
    snapshots.restore("demo", root, manifest, checkpoint_id="v1", store=store)
    assert fingerprint(root, mtimes=True) == target
    assert untouched.stat().st_ino == inode  # unchanged content is not rewritten
    assert (root / "link").is_symlink() and (root / "gone-later").is_dir()


def test_restore_of_read_only_directories(setup) -> None:
    snapshots, store, root = setup
    (root / "locked" / "inner").mkdir(parents=True)
    (root / "locked" / "inner" / "file").write_text("v1")
    os.chmod(root / "locked" / "inner", 0o500)
    os.chmod(root / "locked", 0o555)
    manifest = snapshots.snapshot("demo", root)
    target = fingerprint(root, mtimes=True)
    os.chmod(root / "locked", 0o755)
    os.chmod(root / "locked" / "inner", 0o755)
    (root / "locked" / "inner" / "file").write_text("changed")
    (root / "locked" / "new").write_text("x")
    snapshots.restore("demo", root, manifest, checkpoint_id="v1", store=store)
    assert fingerprint(root, mtimes=True) == target
    os.chmod(root / "locked", 0o755)
    os.chmod(root / "locked" / "inner", 0o755)


def _holding(snapshots: Snapshotter, data: bytes) -> list[Path]:
    return [p for p in snapshots.objects.glob("??/*") if p.read_bytes() == data]


def test_garbage_collection_keeps_exactly_what_checkpoints_need(setup) -> None:
    snapshots, store, root = setup
    home = root.parents[2]
    (root / "shared").write_bytes(b"in every checkpoint")
    (root / "one").write_bytes(b"only in v1")
    _settle()
    store.add_checkpoint("demo", manifest=snapshots.snapshot("demo", root), comment="",
                         is_auto=False)
    (root / "one").unlink()
    (root / "two").write_bytes(b"only in v2")
    _settle()
    v2 = store.add_checkpoint("demo", manifest=snapshots.snapshot("demo", root), comment="",
                              is_auto=False)
    expected_v2 = fingerprint(root, mtimes=True)
    manifests = len(list(snapshots.manifests.glob("??/*")))

    Snapshotter(home).collect_garbage(store)  # nothing released yet: nothing goes
    assert _holding(snapshots, b"only in v1")
    store.delete_checkpoint("demo", "v1")
    snapshots.mark_garbage()
    Snapshotter(home).collect_garbage(store)
    assert _holding(snapshots, b"only in v1") == []
    assert _holding(snapshots, b"only in v2") and _holding(snapshots, b"in every checkpoint")
    assert len(list(snapshots.manifests.glob("??/*"))) == manifests - 1
    assert not (snapshots.objects / "gc-due").exists()

    (root / "two").unlink()
    (root / "one").write_bytes(b"only in v1")
    after = Snapshotter(home)
    after.restore("demo", root, v2.manifest, checkpoint_id="v2", store=store)
    assert fingerprint(root, mtimes=True) == expected_v2


@pytest.mark.parametrize("collector", ["same server", "restarted server"])
def test_a_cached_file_whose_object_was_collected_is_read_again(setup, collector) -> None:
    snapshots, store, root = setup
    home = root.parents[2]
    (root / "kept-in-tree").write_bytes(b"its only checkpoint is deleted")
    _settle()
    store.add_checkpoint("demo", manifest=snapshots.snapshot("demo", root), comment="",
                         is_auto=False)
    store.set_source("demo", "v0")
    store.delete_checkpoint("demo", "v1")
    snapshots.mark_garbage()
    restarted = snapshots if collector == "same server" else Snapshotter(home)
    restarted.collect_garbage(store)
    assert _holding(restarted, b"its only checkpoint is deleted") == []
    manifest = restarted.snapshot("demo", root)  # the stat cache still names the object
    assert _content(restarted, manifest, "kept-in-tree") == b"its only checkpoint is deleted"


def test_what_a_restore_replaced_is_deleted_in_the_background(setup) -> None:
    snapshots, store, root = setup
    fill(root / "data", 30, 1000, "a")
    manifest = snapshots.snapshot("demo", root)
    fill(root / "data", 30, 1000, "b")
    snapshots.restore("demo", root, manifest, checkpoint_id="v1", store=store)
    assert sorted(p.name for p in root.parent.iterdir()) == ["root"]
    discarded = root.parents[2] / "discarded"
    deadline = time.monotonic() + 60
    while any(discarded.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(discarded.iterdir())


def test_a_name_that_is_not_utf8_is_stored_and_restored_byte_for_byte(setup) -> None:
    """Linux names are bytes; a Latin-1 ``café`` once made every checkpoint fail."""
    snapshots, store, root = setup
    name = os.fsencode(root / "home" / "sprite") + b"/caf\xe9.txt"
    with open(name, "wb") as handle:
        handle.write(b"latin-1 name")
    manifest = snapshots.snapshot("demo", root)
    paths = {os.fsencode(e.path) for e in snapshots.load_manifest(manifest)}
    assert b"home/sprite/caf\xe9.txt" in paths
    os.unlink(name)
    snapshots.snapshot("demo", root)
    snapshots.restore("demo", root, manifest, checkpoint_id="v1", store=store)
    with open(name, "rb") as handle:
        assert handle.read() == b"latin-1 name"
    assert snapshots.snapshot("demo", root) == manifest
