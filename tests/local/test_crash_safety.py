"""A real ``kill -9`` in the middle of a checkpoint or a restore loses nothing.

After the server restarts on the same home: every earlier checkpoint restores
intact, no half-made checkpoint is listed, and the sprite's tree is wholly at
its pre-restore state or wholly at the target.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sprites_jupyter.local.runtime.sandbox.cgroups import clean_recorded
from sprites_jupyter.local.storage.snapshots import Snapshotter
from sprites_jupyter.local.storage.store import Store
from tests.conftest import LocalServer, start_server
from tests.local.ndjson import stream_events
from tests.local.trees import fill, fingerprint, leftovers

FILES, SIZE = 1500, 32 * 1024  # ~48 MB: long enough to be interrupted


def _kill_during(server: LocalServer, path: str, after_events: int, delay: float) -> list[dict]:
    """Start a streamed operation, kill -9 the server after some events and a delay."""
    seen: list[dict] = []
    with server.http() as http, http.stream("POST", path, json={}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                seen.append(json.loads(line))
            if len(seen) >= after_events:
                time.sleep(delay)
                server.stop(kill=True)
                break
    return seen


def _home_dir(server: LocalServer, sprite: str) -> Path:
    return server.home / "sprites" / sprite / "root" / "home" / "sprite"


def _restored_fingerprint(http: httpx.Client, server: LocalServer, sprite: str, cp: str) -> str:
    status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/checkpoints/{cp}/restore")
    assert status == 200 and events[-1]["type"] == "complete", events
    return fingerprint(_home_dir(server, sprite))


@pytest.fixture
def crashable(tmp_path: Path):
    servers: list[LocalServer] = []

    def start() -> LocalServer:
        servers.append(start_server(tmp_path / "home"))
        return servers[-1]

    yield start
    for server in servers:
        server.stop(kill=True)
    clean_recorded((tmp_path / "home").resolve())  # the killed server's cgroups (as root)


@pytest.mark.parametrize(("after_events", "delay"), [(1, 0.0), (2, 0.05), (2, 0.25)])
def test_kill_during_checkpoint(crashable, after_events: int, delay: float) -> None:
    server = crashable()
    with server.http() as http:
        assert http.post("/v1/sprites", json={"name": "demo"}).status_code == 201
        fill(_home_dir(server, "demo"), FILES, SIZE, "one")
        stream_events(http, "POST", "/v1/sprites/demo/checkpoint", json={})
    v1 = fingerprint(_home_dir(server, "demo"))
    fill(_home_dir(server, "demo"), FILES, SIZE, "two")
    v2_expected = fingerprint(_home_dir(server, "demo"))

    _kill_during(server, "/v1/sprites/demo/checkpoint", after_events, delay)
    server = crashable()
    with server.http() as http:
        ids = [c["id"] for c in http.get("/v1/sprites/demo/checkpoints").json()]
        assert ids[:1] == ["Current"] and ids[-2:] == ["v1", "v0"]
        assert set(ids) <= {"Current", "v2", "v1", "v0"}
        if "v2" in ids:  # the kill came after the commit: v2 must then be complete
            assert _restored_fingerprint(http, server, "demo", "v2") == v2_expected
        assert _restored_fingerprint(http, server, "demo", "v1") == v1
        assert stream_events(http, "POST", "/v1/sprites/demo/checkpoint",
                             json={})[1][-1]["data"] in ("Checkpoint v2 created",
                                                         "Checkpoint v3 created")


@pytest.mark.parametrize("delay", [0.0, 0.03, 0.1, 0.3])
def test_kill_during_restore(crashable, delay: float) -> None:
    server = crashable()
    with server.http() as http:
        assert http.post("/v1/sprites", json={"name": "demo"}).status_code == 201
        fill(_home_dir(server, "demo"), FILES, SIZE, "target")
        stream_events(http, "POST", "/v1/sprites/demo/checkpoint", json={})
    target = fingerprint(_home_dir(server, "demo"))
    fill(_home_dir(server, "demo"), FILES, SIZE, "before")
    (_home_dir(server, "demo") / "only-before.txt").write_text("x")
    before = fingerprint(_home_dir(server, "demo"))

    seen = _kill_during(server, "/v1/sprites/demo/checkpoints/v1/restore", 4, delay)
    assert seen[-1]["data"] == "Restoring filesystem..."
    server = crashable()
    state = fingerprint(_home_dir(server, "demo"))
    assert state in (before, target), "the tree is a mix of the old state and the target"
    with server.http() as http:
        ids = [c["id"] for c in http.get("/v1/sprites/demo/checkpoints").json()]
        assert "v1" in ids and "v0" in ids
        current = http.get("/v1/sprites/demo/checkpoints/Current").json()
        assert current["source_id"] == "v1"
        assert _restored_fingerprint(http, server, "demo", "v1") == target
    sprite_dir = server.home / "sprites" / "demo"
    assert not leftovers(sprite_dir)


# A denser sweep than the server can give: a child process runs one restore or checkpoint
# and is killed with SIGKILL at evenly spaced moments across its measured duration;
# recovery (what the server does at start) must then leave one whole state or the other.

_CHILD = """
import sys
from pathlib import Path
from sprites_jupyter.local.runtime.sandbox.cgroups import clean_recorded
from sprites_jupyter.local.storage.snapshots import Snapshotter
from sprites_jupyter.local.storage.store import Store
home, operation, checkpoint = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
store, snapshots = Store(home / "metadata.sqlite3"), Snapshotter(home)
root = home / "sprites" / "demo" / "root"
print("go", flush=True)
if operation == "restore":
    row = store.get_checkpoint("demo", checkpoint)
    snapshots.restore("demo", root, row.manifest, checkpoint_id=checkpoint, store=store)
else:
    manifest = snapshots.snapshot("demo", root)
    store.add_checkpoint("demo", manifest=manifest, comment="", is_auto=False)
print("done", flush=True)
"""

# Kill moments, as fractions of the operation's uninterrupted duration; the sweep ends
# with a run that is let finish. (Kills after a restore's commit point come from
# test_kill_after_the_commit_point_finishes_the_restore, which times them from it.)
SWEEP: list[float | None] = [i / 10 for i in range(11)] + [None]


def _run_child(home: Path, operation: str, checkpoint: str, kill_after: float | None, *,
               once_exists: Path | None = None) -> float:
    """Run the child; kill -9 it ``kill_after`` seconds after it starts the operation (or
    after ``once_exists`` appears, if given). Returns how long the operation ran."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(home), operation, checkpoint],
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert child.stdout is not None and child.stdout.readline() == "go\n"
    started = time.perf_counter()
    if kill_after is None:
        assert child.stdout.readline() == "done\n"
    else:
        while once_exists is not None and not once_exists.exists() and child.poll() is None:
            time.sleep(0.0002)
        time.sleep(kill_after)
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    return time.perf_counter() - started


def _after_restart(home: Path) -> tuple[Snapshotter, Store]:
    """What a restarted server does first: recover the sprite."""
    store, snapshots = Store(home / "metadata.sqlite3"), Snapshotter(home)
    snapshots.recover("demo", home / "sprites" / "demo" / "root", store)
    return snapshots, store


def _two_states(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A sprite with v1 (state A) and v2 (state B: files rewritten, removed, added,
    a mode changed, a directory replaced by a symlink); the tree is at B."""
    home = tmp_path / "home"
    root = home / "sprites" / "demo" / "root"
    (root / "home" / "sprite").mkdir(parents=True)
    store, snapshots = Store(home / "metadata.sqlite3"), Snapshotter(home)
    store.create_sprite("demo", url_settings={"auth": "sprite"}, labels=[],
                        base_manifest=snapshots.snapshot("demo", root))
    work = root / "home" / "sprite"
    fill(work / "a", 1200, 16 * 1024, "A")
    fill(work / "b", 600, 16 * 1024, "A")
    (work / "tool").write_text("#!/bin/sh\n")
    states = {}
    for checkpoint in ("v1", "v2"):
        if checkpoint == "v2":
            fill(work / "a", 600, 16 * 1024, "B")
            shutil.rmtree(work / "b")
            (work / "b").symlink_to("a")
            fill(work / "c", 300, 16 * 1024, "B")
            os.chmod(work / "tool", 0o755)
        states[checkpoint] = fingerprint(root, mtimes=True)
        store.add_checkpoint("demo", manifest=snapshots.snapshot("demo", root), comment="",
                             is_auto=False)
    store.close()
    return home, states


def test_kill_at_any_moment_of_a_restore_leaves_one_whole_state(tmp_path: Path) -> None:
    home, states = _two_states(tmp_path)
    root = home / "sprites" / "demo" / "root"
    duration = {target: _run_child(home, "restore", target, None) for target in ("v1", "v2")}
    assert fingerprint(root, mtimes=True) == states["v2"]
    at = "v2"
    for fraction in SWEEP:
        target = "v2" if at == "v1" else "v1"
        _run_child(home, "restore", target,
                   None if fraction is None else duration[target] * fraction)
        _, store = _after_restart(home)
        state = fingerprint(root, mtimes=True)
        assert state in (states["v1"], states["v2"]), f"a mix after a kill at {fraction}"
        at = "v1" if state == states["v1"] else "v2"
        assert at == target or fraction is not None
        assert store.get_sprite("demo").source_id == at
        assert sorted(p.name for p in root.parent.iterdir()) == ["root"]
        store.close()


def test_kill_after_the_commit_point_finishes_the_restore(tmp_path: Path) -> None:
    """Kills timed from the moment the journal appears land among the journaled renames."""
    home, states = _two_states(tmp_path)
    root = home / "sprites" / "demo" / "root"
    journal = root.parent / "restore.json"
    at, interrupted = "v2", 0
    for delay in (0.0, 0.0, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.03, 0.06, 0.12):
        target = "v2" if at == "v1" else "v1"
        _run_child(home, "restore", target, delay, once_exists=journal)
        interrupted += journal.exists()
        _, store = _after_restart(home)
        assert fingerprint(root, mtimes=True) == states[target]
        assert store.get_sprite("demo").source_id == target
        assert sorted(p.name for p in root.parent.iterdir()) == ["root"]
        store.close()
        at = target
    assert interrupted, "no kill landed between the commit point and the end"


def test_kill_at_any_moment_of_a_checkpoint_loses_nothing(tmp_path: Path) -> None:
    home, states = _two_states(tmp_path)
    root = home / "sprites" / "demo" / "root"
    work = root / "home" / "sprite"
    duration = 0.0
    for point, fraction in enumerate(SWEEP):
        fill(work / "a", 1200, 16 * 1024, f"C{point}")  # all new data to store
        expected = fingerprint(root, mtimes=True)
        if not duration:  # measure on a copy of the home, so the sweep starts clean
            shutil.copytree(home, tmp_path / "measure", symlinks=True)
            duration = _run_child(tmp_path / "measure", "checkpoint", "", None)
        _run_child(home, "checkpoint", "", None if fraction is None else duration * fraction)
        snapshots, store = _after_restart(home)
        listed = [row.id for row in store.list_checkpoints("demo", include_auto=True)]
        assert listed[-3:] == ["v2", "v1", "v0"]
        made = listed[:-3]
        assert len(made) <= 1, listed
        assert made or fraction is not None, "the uninterrupted checkpoint is not listed"
        if made:  # recorded, so it must be whole
            row = store.get_checkpoint("demo", made[0])
            snapshots.restore("demo", root, row.manifest, checkpoint_id=row.id, store=store)
            assert fingerprint(root, mtimes=True) == expected
            store.delete_checkpoint("demo", row.id)
        for checkpoint in ("v1", "v2"):
            row = store.get_checkpoint("demo", checkpoint)
            snapshots.restore("demo", root, row.manifest, checkpoint_id=checkpoint, store=store)
            assert fingerprint(root, mtimes=True) == states[checkpoint]
        store.close()
