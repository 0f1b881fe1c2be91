"""A real ``kill -9`` in the middle of a checkpoint or a restore loses nothing.

After the server restarts on the same home: every earlier checkpoint restores
intact, no half-made checkpoint is listed, and the sprite's tree is wholly at
its pre-restore state or wholly at the target.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import LocalServer, start_server
from tests.local.ndjson import stream_events
from tests.local.trees import fill, fingerprint

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
    assert sorted(p.name for p in sprite_dir.iterdir()) == ["root"]
