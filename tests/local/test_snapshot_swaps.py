"""A sprite process swapping a directory for a symlink while a checkpoint reads its tree:
nothing outside the tree is ever read (the server would store it as the sprite's)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sprites_jupyter.local.storage import layer_listing, layer_reader
from sprites_jupyter.local.storage.layer_reader import LayerReader
from sprites_jupyter.local.storage.snapshots import Snapshotter
from tests.local.trees import demo_sprite

_SECRETS = {"shadow": b"host canary: shadow", "first": b"host canary: first",
            "sub/secret": b"host canary: below"}


def _host_canaries(tmp_path: Path) -> Path:
    """A directory outside the tree, as the host's /etc would be, with canary files (and
    one name only it has)."""
    host = tmp_path / "host-etc"
    (host / "sub").mkdir(parents=True)
    for name, content in _SECRETS.items():
        (host / name).write_bytes(content)
    (host / "only-on-host").write_bytes(b"host canary: unlisted")
    (host / "host-link").symlink_to("/host/target")
    return host


def _sprite_files(root: Path) -> None:
    directory = root / "home" / "sprite" / "a"
    (directory / "sub").mkdir(parents=True)
    for name in _SECRETS:
        (directory / name).write_bytes(b"the sprite's own " + name.encode())
    (directory / "host-link").symlink_to("/sprite/target")


def _swap_at_first_read(monkeypatch: pytest.MonkeyPatch, root: Path, host: Path) -> list[str]:
    """At the snapshot's first read of a file in ``a/``, do what a sprite process can do
    meanwhile: ``mv a a.old; ln -s <host dir> a``. The paths read, in order."""
    original = Snapshotter._store_file
    directory = root / "home" / "sprite" / "a"
    read: list[str] = []

    def swap_then_read(self: Snapshotter, tree: LayerReader, rel: str):
        if rel.startswith("home/sprite/a/") and not read:
            directory.rename(directory.with_name("a.old"))
            directory.symlink_to(host)
        if rel.startswith("home/sprite/a/"):
            read.append(rel)
        return original(self, tree, rel)

    monkeypatch.setattr(Snapshotter, "_store_file", swap_then_read)
    return read


@pytest.mark.parametrize("lister", ["find", "python walk"])
def test_a_directory_swapped_for_a_symlink_mid_snapshot_is_never_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lister: str) -> None:
    snapshots, _, root = demo_sprite(tmp_path, _sprite_files)  # the base snapshot: unswapped
    for name in _SECRETS:  # changed since, so that the next snapshot reads them again
        (root / "home" / "sprite" / "a" / name).write_bytes(b"changed " + name.encode())
    host = _host_canaries(tmp_path)
    if lister == "python walk":
        monkeypatch.setattr(layer_listing, "FIND", None)
    read = _swap_at_first_read(monkeypatch, root, host)
    manifest = snapshots.snapshot("demo", root)
    assert read, "the snapshot read the changed files (and so swapped the directory)"
    assert (root / "home" / "sprite" / "a").is_symlink()
    stored = {path.read_bytes() for path in snapshots.objects.rglob("*") if path.is_file()}
    assert b"the sprite's own shadow" in stored  # the base snapshot's, found by this scan
    leaked = {name for name, content in _SECRETS.items() if content in stored}
    assert not leaked, f"host files stored as the sprite's: {leaked}"
    entries = {e.path: e for e in snapshots.load_manifest(manifest)}
    assert "home/sprite/a/only-on-host" not in entries
    link = entries.get("home/sprite/a/host-link")
    assert link is None or link.ref == "/sprite/target"


@pytest.mark.parametrize("openat2", [True, False], ids=["openat2", "one step per component"])
def test_the_reader_answers_gone_below_a_swapped_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openat2: bool) -> None:
    if not openat2:
        monkeypatch.setattr(layer_reader, "have_openat2", lambda: False)
    host = _host_canaries(tmp_path)
    os.setxattr(host / "sub", "user.overlay.opaque", b"y")
    root = tmp_path / "sprite" / "root"
    _sprite_files(root)
    os.setxattr(root / "home" / "sprite" / "a" / "sub", "user.overlay.opaque", b"y")
    a = "home/sprite/a"
    with LayerReader(os.fspath(root)) as tree:
        fd = tree.open_file(f"{a}/shadow")  # what a read sees before the swap
        assert fd is not None
        os.close(fd)
        assert tree.readlink(f"{a}/host-link") == "/sprite/target"
        assert tree.is_opaque(f"{a}/sub") and tree.listdir(f"{a}/sub") == ["secret"]
        assert tree.lstat(".") is not None  # the reader moves away from a/
        (root / a).rename(root / f"{a}.old")
        (root / a).symlink_to(host)
        assert tree.open_file(f"{a}/shadow") is None
        assert tree.open_file(f"{a}/sub/secret") is None
        assert tree.lstat(f"{a}/only-on-host") is None
        assert tree.readlink(f"{a}/host-link") is None
        assert tree.is_opaque(f"{a}/sub") is False
        assert tree.listdir(f"{a}/sub") is None
        assert tree.listdir(a) is None
        assert tree.lstat(a) is not None  # the symlink itself is still there to record
