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
