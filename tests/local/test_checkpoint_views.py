"""Checkpoint views on real directories and through the real server (built after the
checkpoint returns), the in-sprite diff helper reading them, and data freed at once."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from sprites_jupyter.local.storage import checkpoint_views
from sprites_jupyter.magic_commands.diff import helper_source
from tests.conftest import LocalServer, start_server
from tests.local.test_checkpoints import _checkpoint, _root
from tests.local.trees import demo_sprite


@pytest.fixture
def setup(tmp_path: Path):
    snapshots, store, root = demo_sprite(tmp_path, url_settings={"auth": "sprite"})
    views = tmp_path / "views"

    def checkpoint(*, is_auto: bool = False) -> str:
        manifest = snapshots.snapshot("demo", root)
        row = store.add_checkpoint("demo", manifest=manifest, comment="", is_auto=is_auto,
                                   auto_id=f"auto-{len(os.listdir(views))}" if is_auto else None)
        checkpoint_views.CheckpointViews(snapshots, store, "demo", views).settle()
        return row.id

    return root, views, checkpoint


def test_views_share_the_stored_bytes_and_record_modes_and_mtimes(setup):
    root, views, checkpoint = setup
    home = root / "home/sprite"
    (home / "data").mkdir()
    (home / "data/a.txt").write_text("alpha\n")
    (home / "run.sh").write_text("echo hi\n")
    (home / "run.sh").chmod(0o755)
    (home / "link").symlink_to("run.sh")
    os.utime(home / "data/a.txt", ns=(0, 1_600_000_000_123_456_789))
    assert checkpoint() == "v1"
    view = views / "v1"
    assert (view / "home/sprite/data/a.txt").read_text() == "alpha\n"
    assert (view / "home/sprite/data/a.txt").stat().st_nlink >= 2, "a link to the object"
    assert os.readlink(view / "home/sprite/link") == "run.sh"
    record = json.loads((view / checkpoint_views.RECORD).read_text())["entries"]
    assert record["home/sprite/run.sh"] == [0o755, (home / "run.sh").stat().st_mtime_ns]
    assert record["home/sprite/data/a.txt"][1] == 1_600_000_000_123_456_789
    assert record["home/sprite/data"][1] == (home / "data").stat().st_mtime_ns
    assert not any(name.startswith(".building-") for name in os.listdir(views))


def test_only_the_five_newest_manual_checkpoints_have_views(setup):
    root, views, checkpoint = setup
    made = []
    for i in range(7):
        (root / "home/sprite/n.txt").write_text(str(i))
        made.append(checkpoint())
    checkpoint(is_auto=True)
    assert sorted(os.listdir(views)) == sorted(made[-5:])


def test_the_diff_helper_sees_a_chmod_between_two_views(setup, tmp_path):
    root, views, checkpoint = setup
    script = root / "home/sprite/run.sh"
    script.write_text("echo hi\n")
    checkpoint()
    script.chmod(0o755)
    (root / "home/sprite/new.txt").write_text("new\n")
    checkpoint()
    request = {"op": "diff", "a": "v1", "b": "v2", "checkpoints": str(views)}
    done = subprocess.run(["python3", "-", json.dumps(request)], input=helper_source(),
                          capture_output=True, text=True, cwd=tmp_path, check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert {r[0]: r[1] for r in rows} == {"/home/sprite/run.sh": "mode-changed",
                                          "/home/sprite/new.txt": "added"}


def _described(view: Path) -> dict[str, tuple]:
    """Everything a view shows: each path's type, the stored object a file links (its
    inode), a symlink's target, a directory's mode and mtime; and the record."""
    shown: dict[str, tuple] = {}
    for directory, dirs, files in os.walk(view):
        for name in dirs + files:
            path = Path(directory) / name
            info = path.lstat()
            if path.is_symlink():
                shown[str(path.relative_to(view))] = ("l", os.readlink(path))
            elif path.is_dir() and name == ".sprite" and directory == str(view):
                shown[".sprite"] = ("d",)  # the record's directory, not the checkpoint's
            elif path.is_dir():
                shown[str(path.relative_to(view))] = ("d", info.st_mode, info.st_mtime_ns)
            elif path.name != "stat.json":
                shown[str(path.relative_to(view))] = ("f", info.st_ino)
    shown["record"] = ("r", (view / checkpoint_views.RECORD).read_text())
    return shown


def test_a_recycled_view_is_the_view_a_fresh_build_makes(tmp_path: Path) -> None:
    """Views built by one CheckpointViews recycle the ones that leave: after every kind of
    change (edit, delete, file <-> directory, symlink retargeted, chmod) each view shows
    exactly what a view built from nothing shows."""
    snapshots, store, root = demo_sprite(tmp_path)

    def checkpoint() -> str:
        manifest = snapshots.snapshot("demo", root)
        return store.add_checkpoint("demo", manifest=manifest, comment="", is_auto=False).id

    kept = checkpoint_views.CheckpointViews(snapshots, store, "demo", tmp_path / "kept")
    home = root / "home/sprite"
    changes = [
        lambda: [(home / f"d{i}").mkdir() for i in range(3)],
        lambda: [(home / f"d{i}/f{j}").write_text(f"{i}{j}") for i in range(3) for j in range(4)],
        lambda: (home / "d0/f1").write_text("edited"),
        lambda: [os.unlink(p) for p in (home / "d1").iterdir()] and (home / "d1").rmdir(),
        lambda: (home / "d1").write_text("a file where a directory was"),
        lambda: (home / "link").symlink_to("d0"),
        lambda: ((home / "link").unlink(), (home / "link").symlink_to("d2")),
        lambda: ((home / "d2").chmod(0o750), (home / "d0/f0").chmod(0o600)),
        lambda: None,
        lambda: ((home / "d1").unlink(), (home / "d1").mkdir(), (home / "d1/new").write_text("n")),
    ]
    inodes: set[int] = set()
    for number, change in enumerate(changes):
        change()
        made = checkpoint()
        kept.announce()
        kept.settle()
        inode = (kept.directory / made).stat().st_ino
        assert (inode in inodes) == (number >= checkpoint_views.RECENT), "recycled once full"
        inodes.add(inode)
        fresh = tmp_path / f"fresh{number}"
        checkpoint_views.CheckpointViews(snapshots, store, "demo", fresh).settle()
        assert sorted(os.listdir(kept.directory)) == sorted(os.listdir(fresh)), number
        assert made in os.listdir(fresh)
        for view in os.listdir(fresh):
            assert _described(kept.directory / view) == _described(fresh / view), (number, view)


def test_a_view_recycled_for_an_unchanged_tree_is_left_as_it_is(tmp_path: Path) -> None:
    """Per-cell checkpoints of cells that change no file: the view that leaves shows what
    the new one must, so it is renamed into place, not patched or written again."""
    snapshots, store, root = demo_sprite(tmp_path)
    (root / "home/sprite/kept.txt").write_text("unchanged")
    views = checkpoint_views.CheckpointViews(snapshots, store, "demo", tmp_path / "views")
    made = []
    for _ in range(checkpoint_views.RECENT + 1):
        made.append(store.add_checkpoint("demo", manifest=snapshots.snapshot("demo", root),
                                         comment="", is_auto=False).id)
        views.announce()
        views.settle()
        if len(made) == 2:
            first = views.directory / made[0] / checkpoint_views.RECORD
            record = first.stat()
    newest = (views.directory / made[-1] / checkpoint_views.RECORD).stat()
    assert (newest.st_ino, newest.st_mtime_ns) == (record.st_ino, record.st_mtime_ns)
    fresh = tmp_path / "fresh"
    checkpoint_views.CheckpointViews(snapshots, store, "demo", fresh).settle()
    assert _described(views.directory / made[-1]) == _described(fresh / made[-1])


def test_a_view_overtaken_by_newer_checkpoints_while_built_is_recycled(tmp_path: Path) -> None:
    """Checkpoints that come faster than views are built (a notebook's per-cell ones on a
    loaded machine): a view no longer wanted when its build ends is kept and recycled
    into a newer one, not deleted and built again from nothing."""
    snapshots, store, root = demo_sprite(tmp_path)
    home = root / "home/sprite"
    for number in range(20):
        (home / f"f{number}").write_text(str(number))

    def checkpoint() -> str:
        manifest = snapshots.snapshot("demo", root)
        return store.add_checkpoint("demo", manifest=manifest, comment="", is_auto=False).id

    class Overtaken(checkpoint_views.CheckpointViews):
        overtaken: int | None = None

        def _build(self, checkpoint_id: str, entries: list) -> None:
            if self.overtaken is None:  # checkpoints arrive while the first build runs
                (home / "f0").write_text("changed meanwhile")
                for _ in range(checkpoint_views.RECENT):
                    checkpoint()
                    self.announce()  # as each checkpoint request does
            super()._build(checkpoint_id, entries)
            if self.overtaken is None:
                [kept] = [e for e in os.scandir(self.directory)  # not the empty .building-
                          if e.name.startswith(".removing-") and os.listdir(e.path)]
                self.overtaken = kept.inode()

    first = checkpoint()
    views = Overtaken(snapshots, store, "demo", tmp_path / "views")
    views.settle()
    assert first not in os.listdir(views.directory)
    inodes = {(views.directory / name).stat().st_ino for name in os.listdir(views.directory)}
    assert views.overtaken in inodes, "the overtaken build was not recycled"
    fresh = tmp_path / "fresh"
    checkpoint_views.CheckpointViews(snapshots, store, "demo", fresh).settle()
    assert sorted(os.listdir(views.directory)) == sorted(os.listdir(fresh))
    for view in os.listdir(fresh):
        assert _described(views.directory / view) == _described(fresh / view), view


def _until(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_checkpoint_announces_its_view_and_builds_it_after_returning(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    many = _root(server, sprite) / "home/sprite/many"
    many.mkdir()
    for number in range(3000):
        (many / f"f{number}").write_text(str(number))
    views = server.home / "sprites" / sprite / "platform" / "checkpoints"
    made = [_checkpoint(http, sprite) for _ in range(6)]
    seen = set(os.listdir(views))
    # Right after the request: each of the five newest is there or announced.
    assert all(c in seen or f".building-{c}" in seen for c in made[-5:]), seen
    assert made[0] not in seen and f".building-{made[0]}" not in seen
    _until(lambda: sorted(os.listdir(views)) == sorted(made[-5:]), "views never settled")
    assert (views / made[-1] / "home/sprite/many/f2999").read_text() == "2999"


def test_deleting_a_sprite_frees_its_data_without_a_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home")
    try:
        with server.http() as http:
            assert http.post("/v1/sprites", json={"name": "keep"}).status_code == 201
            def stored() -> set[str]:
                return {p.parent.parent.name + p.parent.name + p.name
                        for p in server.home.glob("*/??/*") if p.is_file()}

            before = stored()
            assert http.post("/v1/sprites", json={"name": "gone"}).status_code == 201
            data = _root(server, "gone") / "home/sprite/data"
            data.write_bytes(os.urandom(3 << 20))
            assert _checkpoint(http, "gone") == "v1"
            assert len(stored() - before) >= 2, "the file and the manifests were stored"
            assert http.delete("/v1/sprites/gone").status_code == 204
            _until(lambda: stored() <= before, "the deleted sprite's data stayed")
            assert not (server.home / "sprites" / "gone").exists()
            assert _checkpoint(http, "keep") == "v1", "the other sprite still checkpoints"
    finally:
        server.stop()
