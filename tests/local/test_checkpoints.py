"""Checkpoints over real HTTP (reference section 8): ids, streams, lineage, restore."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import LocalServer
from tests.local.ndjson import stream_events


def _root(server: LocalServer, sprite: str) -> Path:
    return server.home / "sprites" / sprite / "root"


def _checkpoint(http: httpx.Client, sprite: str, comment: str | None = None) -> str:
    body = {} if comment is None else {"comment": comment}
    status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/checkpoint", json=body)
    assert status == 200
    assert events[-1]["type"] == "complete", events
    match = re.fullmatch(r"Checkpoint (v\d+) created", events[-1]["data"])
    assert match, events[-1]
    return match.group(1)


def _restore(http: httpx.Client, sprite: str, checkpoint: str) -> list[dict]:
    status, events = stream_events(http, "POST",
                                   f"/v1/sprites/{sprite}/checkpoints/{checkpoint}/restore")
    assert status == 200
    assert events[-1] == {**events[-1], "type": "complete", "data": f"Restored to {checkpoint}"}
    return events


def test_create_streams_info_then_complete_with_time_on_every_event(
        http: httpx.Client, sprite: str) -> None:
    status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/checkpoint",
                                   json={"comment": "first"})
    assert status == 200
    assert [e["type"] for e in events[:-1]] == ["info"] * (len(events) - 1)
    assert events[0]["data"] == "Creating checkpoint..."
    assert events[-1] == {**events[-1], "type": "complete", "data": "Checkpoint v1 created"}
    for event in events:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", event["time"])


def test_v0_is_seeded_and_numbers_are_never_reused(http: httpx.Client, sprite: str) -> None:
    listing = http.get(f"/v1/sprites/{sprite}/checkpoints").json()
    assert [c["id"] for c in listing] == ["Current", "v0"]
    assert _checkpoint(http, sprite) == "v1"
    assert _checkpoint(http, sprite, "two") == "v2"
    assert http.delete(f"/v1/sprites/{sprite}/checkpoints/v1").status_code == 204
    assert _checkpoint(http, sprite) == "v3"
    listing = http.get(f"/v1/sprites/{sprite}/checkpoints").json()
    assert [c["id"] for c in listing] == ["Current", "v3", "v2", "v0"]
    v2 = next(c for c in listing if c["id"] == "v2")
    assert v2["comment"] == "two" and v2["is_auto"] is False and v2["source_id"] == "v1"


def test_get_checkpoint_and_404s(http: httpx.Client, sprite: str) -> None:
    _checkpoint(http, sprite, "one")
    _checkpoint(http, sprite, "two")
    got = http.get(f"/v1/sprites/{sprite}/checkpoints/v2").json()
    assert got["id"] == "v2" and got["comment"] == "two"
    assert got["source_id"] == "v1" and got["history"] == ["v0", "v1"]
    current = http.get(f"/v1/sprites/{sprite}/checkpoints/Current").json()
    assert current["source_id"] == "v2" and current["history"] == ["v0", "v1", "v2"]
    for bad in ("v99", "nope", "auto-1"):
        missing = http.get(f"/v1/sprites/{sprite}/checkpoints/{bad}")
        assert missing.status_code == 404
        assert "checkpoint not found" in missing.json()["message"]
    assert http.get("/v1/sprites/no-such/checkpoints").status_code == 404
    assert http.post("/v1/sprites/no-such/checkpoint", json={}).status_code == 404


@pytest.mark.parametrize("body", [b"[1]", b"{bad", b'{"comment": 3}', b'{"comment": "x", "y": 1}'])
def test_bad_create_bodies_are_400(http: httpx.Client, sprite: str, body: bytes) -> None:
    response = http.post(f"/v1/sprites/{sprite}/checkpoint", content=body,
                         headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert http.get(f"/v1/sprites/{sprite}/checkpoints").json()[-1]["id"] == "v0"


def test_empty_body_is_accepted(http: httpx.Client, sprite: str) -> None:
    status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/checkpoint")
    assert status == 200 and events[-1]["data"] == "Checkpoint v1 created"


def test_restore_brings_files_back_and_can_be_undone(server: LocalServer, http: httpx.Client,
                                                     sprite: str) -> None:
    home = _root(server, sprite) / "home" / "sprite"
    (home / "result.txt").write_text("baseline")
    (home / "keep").mkdir()
    (home / "keep" / "model.bin").write_bytes(b"\x00" * 10_000)
    (home / "link").symlink_to("result.txt")
    assert _checkpoint(http, sprite, "baseline") == "v1"
    (home / "result.txt").write_text("experiment broke it")
    (home / "new-file").write_text("later")
    (home / "keep" / "model.bin").unlink()

    events = _restore(http, sprite, "v1")
    assert events[0]["data"] == "Restoring to checkpoint v1..."
    auto = next(re.search(r"auto-\d+", e["data"]).group(0) for e in events
                if "auto-" in e.get("data", ""))
    assert (home / "result.txt").read_text() == "baseline"
    assert not (home / "new-file").exists()
    assert (home / "keep" / "model.bin").read_bytes() == b"\x00" * 10_000
    assert (home / "link").is_symlink() and (home / "link").read_text() == "baseline"

    hidden = [c["id"] for c in http.get(f"/v1/sprites/{sprite}/checkpoints").json()]
    assert auto not in hidden
    listed = http.get(f"/v1/sprites/{sprite}/checkpoints", params={"includeAuto": "true"}).json()
    auto_entry = next(c for c in listed if c["id"] == auto)
    assert auto_entry["is_auto"] is True

    _restore(http, sprite, auto)
    assert (home / "result.txt").read_text() == "experiment broke it"
    assert (home / "new-file").read_text() == "later"
    assert not (home / "keep" / "model.bin").exists()


def test_lineage_after_restoring_an_older_checkpoint(http: httpx.Client, sprite: str) -> None:
    for _ in range(3):
        _checkpoint(http, sprite)
    _restore(http, sprite, "v1")
    assert _checkpoint(http, sprite) == "v4"
    v4 = http.get(f"/v1/sprites/{sprite}/checkpoints/v4").json()
    assert v4["source_id"] == "v1" and v4["history"] == ["v0", "v1"]
    lines = http.get(f"/v1/sprites/{sprite}/checkpoints", params={"history": "v1"})
    assert lines.headers["content-type"].startswith("text/plain")
    assert lines.text.split() == ["v4", "v3", "v2"]


def test_restore_unknown_is_404_before_streaming(http: httpx.Client, sprite: str) -> None:
    response = http.post(f"/v1/sprites/{sprite}/checkpoints/v42/restore")
    assert response.status_code == 404
    assert "have v0" in response.json()["message"]


def test_delete_rules(http: httpx.Client, sprite: str) -> None:
    assert http.delete(f"/v1/sprites/{sprite}/checkpoints/Current").status_code == 409
    _checkpoint(http, sprite)
    active = http.delete(f"/v1/sprites/{sprite}/checkpoints/v1")
    assert active.status_code == 409 and "active" in active.json()["message"]
    assert http.delete(f"/v1/sprites/{sprite}/checkpoints/v0").status_code == 204
    assert http.delete(f"/v1/sprites/{sprite}/checkpoints/v0").status_code == 404


def test_unchanged_tree_stores_nothing_new(server: LocalServer, http: httpx.Client,
                                           sprite: str) -> None:
    home = _root(server, sprite) / "home" / "sprite"
    for i in range(50):
        (home / f"f{i}").write_bytes(bytes([i]) * 5000)
    _checkpoint(http, sprite)
    objects = server.home / "objects"
    before = sorted(p for p in objects.rglob("*") if p.is_file())
    _checkpoint(http, sprite)
    after = sorted(p for p in objects.rglob("*") if p.is_file())
    assert after == before
