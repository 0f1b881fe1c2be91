"""Collecting what deleted checkpoints released, without a scan of every stored object."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from sprites_jupyter.local.storage.objects import CHUNK, CHUNKED_OVER
from sprites_jupyter.local.storage.snapshots import Snapshotter
from sprites_jupyter.local.storage.store import Store
from sprites_jupyter.local.storage_work import StorageWork
from tests.local.trees import demo_sprite, fingerprint


@pytest.fixture
def setup(tmp_path: Path):
    return demo_sprite(tmp_path)


def _settle() -> None:
    time.sleep(0.15)  # outlast the racy window: unchanged files are not read again


def _checkpoint(snapshots: Snapshotter, store: Store, root: Path) -> str:
    _settle()
    manifest = snapshots.snapshot("demo", root)
    return store.add_checkpoint("demo", manifest=manifest, comment="", is_auto=False).id


def _holding(snapshots: Snapshotter, data: bytes) -> list[Path]:
    return [p for p in snapshots.objects.glob("??/*") if p.read_bytes() == data]


def _stored(snapshots: Snapshotter) -> set[Path]:
    return {*snapshots.objects.glob("??/*"), *snapshots.manifests.glob("??/*"),
            *snapshots.manifests.glob("pages/??/*")}


def test_a_deleted_checkpoint_frees_what_only_it_used_without_a_full_scan(setup) -> None:
    snapshots, store, root = setup
    (root / "shared").write_bytes(b"in every checkpoint")
    (root / "one").write_bytes(b"only in v1")
    _checkpoint(snapshots, store, root)
    (root / "one").unlink()
    (root / "two").write_bytes(b"only in v2")
    v2 = store.get_checkpoint("demo", _checkpoint(snapshots, store, root))
    assert v2 is not None
    expected_v2 = fingerprint(root, mtimes=True)
    before = _stored(snapshots)

    store.delete_checkpoint("demo", "v1")
    snapshots.collect_garbage(store)
    assert not (snapshots.objects / "gc-due").exists()  # no full collection asked for
    assert _holding(snapshots, b"only in v1") == []
    assert _holding(snapshots, b"only in v2") and _holding(snapshots, b"in every checkpoint")
    gone = before - _stored(snapshots)
    assert len([p for p in gone if p.parent.parent == snapshots.manifests]) == 1
    assert store.released()[1] == set()

    (root / "two").unlink()
    snapshots.restore("demo", root, v2.manifest, checkpoint_id="v2", store=store)
    assert fingerprint(root, mtimes=True) == expected_v2


def test_a_manifest_another_checkpoint_still_uses_is_kept_until_it_goes_too(setup) -> None:
    snapshots, store, root = setup
    (root / "kept").write_bytes(b"in both checkpoints")
    first = _checkpoint(snapshots, store, root)
    second = _checkpoint(snapshots, store, root)  # unchanged tree: the same manifest
    store.set_source("demo", "v0")
    store.delete_checkpoint("demo", first)
    snapshots.collect_garbage(store)
    assert _holding(snapshots, b"in both checkpoints")
    assert store.released()[1] == set()  # looked at: not a candidate any more

    store.delete_checkpoint("demo", second)
    snapshots.collect_garbage(store)
    assert _holding(snapshots, b"in both checkpoints") == []


def test_a_release_survives_a_restart_and_is_collected_by_the_next_server(setup) -> None:
    snapshots, store, root = setup
    (root / "lone").write_bytes(b"only in v1")
    _checkpoint(snapshots, store, root)
    store.set_source("demo", "v0")
    store.delete_checkpoint("demo", "v1")  # and the server is killed before it collects
    restarted = Snapshotter(snapshots.objects.parent)
    restarted.collect_garbage(store)
    assert _holding(restarted, b"only in v1") == []


def test_a_release_made_during_a_collection_is_not_forgotten(setup) -> None:
    snapshots, store, root = setup
    (root / "a").write_bytes(b"a")
    first = store.get_checkpoint("demo", _checkpoint(snapshots, store, root))
    (root / "b").write_bytes(b"b")
    second = store.get_checkpoint("demo", _checkpoint(snapshots, store, root))
    assert first is not None and second is not None
    store.delete_checkpoint("demo", first.id)
    up_to, released = store.released()
    store.delete_checkpoint("demo", second.id)  # while a collection works on the first
    store.forget_released(up_to)
    assert released == {first.manifest}
    assert store.released()[1] == {second.manifest}


def test_a_released_small_file_that_is_a_chunk_of_a_large_file_in_use_is_kept(setup) -> None:
    snapshots, store, root = setup
    piece = os.urandom(CHUNK)
    (root / "big.bin").write_bytes(piece * ((CHUNKED_OVER // CHUNK) + 2))
    (root / "small.bin").write_bytes(piece)  # the same bytes as each of big's chunks
    first = _checkpoint(snapshots, store, root)
    (root / "small.bin").unlink()
    kept = _checkpoint(snapshots, store, root)
    expected = fingerprint(root)
    store.delete_checkpoint("demo", first)
    snapshots.collect_garbage(store)
    assert _holding(snapshots, piece)
    row = store.get_checkpoint("demo", kept)
    assert row is not None
    (root / "big.bin").unlink()
    snapshots.restore("demo", root, row.manifest, checkpoint_id=kept, store=store)
    assert fingerprint(root) == expected


def test_what_a_failed_checkpoint_stored_is_collected_at_once(setup) -> None:
    snapshots, store, _ = setup
    work = StorageWork(snapshots, store)

    async def fail_while_storing() -> str:
        try:
            async with work.storing():
                orphan = snapshots.store.put(b"stored by a snapshot no checkpoint records")
                raise OSError("disk full")  # as a snapshot or its record can fail
        except OSError:
            pass
        await work.idle()  # the collection it started
        return orphan

    orphan = asyncio.run(fail_while_storing())
    assert not snapshots.object_path(orphan).exists()
    assert not (snapshots.objects / "gc-due").exists()
