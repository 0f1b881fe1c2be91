"""Checkpoints over real HTTP (reference section 8): ids, streams, lineage, restore."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import LocalServer, start_server
from tests.local.exec_ws import open_exec, read_to_close, session_info
from tests.local.ndjson import stream_events
from tests.local.sandbox_checks import eventually
from tests.local.trees import fill, leftovers


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


def test_complete_event_carries_the_new_checkpoint_object(
        http: httpx.Client, sprite: str) -> None:
    _, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/checkpoint",
                              json={"comment": "carried"})
    sent = events[-1]["checkpoint"]
    assert sent == http.get(f"/v1/sprites/{sprite}/checkpoints/v1").json()
    assert (sent["id"], sent["comment"], sent["history"]) == ("v1", "carried", ["v0"])


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


def test_a_404_names_only_the_newest_checkpoints(http: httpx.Client, sprite: str) -> None:
    for number in range(10):
        _checkpoint(http, sprite, f"c{number}")
    message = http.get(f"/v1/sprites/{sprite}/checkpoints/v99").json()["message"]
    assert message == "checkpoint not found: 'v99' (newest: v10, v9, v8, v7, v6, v5, v4, v3, …)"


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
    assert "newest: v0" in response.json()["message"]


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


def test_restore_ends_exec_sessions_with_137(server: LocalServer, http: httpx.Client,
                                             sprite: str) -> None:
    assert _checkpoint(http, sprite) == "v1"
    with open_exec(server, sprite, ["sleep", "600"]) as ws:
        session_info(ws)
        assert http.get(f"/v1/sprites/{sprite}/exec").json()["count"] == 1
        _restore(http, sprite, "v1")
        transcript = read_to_close(ws)
    assert transcript.messages[-1] == b"\x03\x89"  # the exit frame: 137 = killed
    assert http.get(f"/v1/sprites/{sprite}/exec").json()["sessions"] == []


def test_the_undo_point_holds_what_services_write_as_they_stop(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    """The safety checkpoint is taken after services stop, so their last writes are kept."""
    graceful = ("trap 'echo flushed > at-exit; exit 0' TERM; touch trapping; "
                "while :; do sleep 0.05; done")
    status, _ = stream_events(http, "PUT", f"/v1/sprites/{sprite}/services/db",
                              params={"duration": "0"},
                              json={"cmd": "sh", "args": ["-c", graceful]})
    assert status == 200
    home = _root(server, sprite) / "home" / "sprite"
    deadline = time.monotonic() + 60  # a TERM before the trap is set would just kill it
    while not (home / "trapping").exists():
        assert time.monotonic() < deadline, "the service never set its trap"
        time.sleep(0.05)
    assert _checkpoint(http, sprite) == "v1"
    events = _restore(http, sprite, "v1")
    auto = next(re.search(r"auto-\d+", e["data"]).group(0) for e in events
                if "auto-" in e.get("data", ""))
    assert not (home / "at-exit").exists()  # v1 was taken while db ran
    _restore(http, sprite, auto)
    assert (home / "at-exit").read_text() == "flushed\n"


def test_a_failed_restore_leaves_the_sprite_as_it_was(server: LocalServer, http: httpx.Client,
                                                      sprite: str) -> None:
    home = _root(server, sprite) / "home" / "sprite"
    (home / "data.txt").write_text("in v1")
    assert _checkpoint(http, sprite) == "v1"
    (home / "data.txt").write_text("live")
    for stored in (server.home / "objects").glob("??/*"):
        if stored.read_bytes() == b"in v1":
            stored.unlink()
    status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/checkpoints/v1/restore")
    assert status == 200
    assert events[-1]["type"] == "error" and events[-1]["error"].startswith("Restore failed: ")
    assert "time" in events[-1]
    assert (home / "data.txt").read_text() == "live"
    current = http.get(f"/v1/sprites/{sprite}/checkpoints/Current").json()
    assert current["source_id"] == "v1"
    assert not leftovers(server.home / "sprites" / sprite)


def test_a_failed_checkpoint_records_nothing(server: LocalServer, http: httpx.Client,
                                             sprite: str) -> None:
    (_root(server, sprite) / "home" / "sprite" / "new.bin").write_bytes(b"data")
    incoming = server.home / "objects" / "incoming"
    incoming.rename(incoming.with_name("incoming.away"))
    incoming.write_text("not a directory: storing an object fails")
    try:
        status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/checkpoint", json={})
    finally:
        incoming.unlink()
        incoming.with_name("incoming.away").rename(incoming)
    assert status == 200
    assert events[-1]["type"] == "error"
    assert events[-1]["error"].startswith("Checkpoint failed: ")
    listed = http.get(f"/v1/sprites/{sprite}/checkpoints", params={"includeAuto": "true"}).json()
    assert [c["id"] for c in listed] == ["Current", "v0"]
    assert _checkpoint(http, sprite) == "v1"


def test_auto_checkpoints_are_hidden_unless_asked_for(http: httpx.Client, sprite: str) -> None:
    _checkpoint(http, sprite)
    _restore(http, sprite, "v0")
    plain = [c["id"] for c in http.get(f"/v1/sprites/{sprite}/checkpoints").json()]
    assert plain == ["Current", "v1", "v0"]
    for value in ("false", "0"):
        listed = http.get(f"/v1/sprites/{sprite}/checkpoints", params={"includeAuto": value})
        assert [c["id"] for c in listed.json()] == plain
    everything = http.get(f"/v1/sprites/{sprite}/checkpoints",
                          params={"includeAuto": "true"}).json()
    autos = [c for c in everything if c["id"].startswith("auto-")]
    assert len(autos) == 1 and autos[0]["is_auto"] is True
    assert re.fullmatch(r"auto-\d{13}", autos[0]["id"])
    assert everything[0]["id"] == "Current" and everything[0]["source_id"] == "v0"
    junk = http.get(f"/v1/sprites/{sprite}/checkpoints", params={"includeAuto": "maybe"})
    assert junk.status_code == 400 and "message" in junk.json()


def test_live_state_aliases_and_their_status_codes(http: httpx.Client, sprite: str) -> None:
    _checkpoint(http, sprite)
    for alias in ("Current", "active"):
        got = http.get(f"/v1/sprites/{sprite}/checkpoints/{alias}")
        assert got.status_code == 200
        assert got.json()["id"] == "Current" and got.json()["source_id"] == "v1"
        assert http.delete(f"/v1/sprites/{sprite}/checkpoints/{alias}").status_code == 409
        assert http.post(f"/v1/sprites/{sprite}/checkpoints/{alias}/restore").status_code == 404


@pytest.mark.parametrize("junk", ["v1x", "auto-", "V1", "%20", "v-1", "..."])
def test_junk_checkpoint_ids_are_json_404s(http: httpx.Client, sprite: str, junk: str) -> None:
    for response in (http.get(f"/v1/sprites/{sprite}/checkpoints/{junk}"),
                     http.delete(f"/v1/sprites/{sprite}/checkpoints/{junk}"),
                     http.post(f"/v1/sprites/{sprite}/checkpoints/{junk}/restore"),
                     http.get(f"/v1/sprites/{sprite}/checkpoints", params={"history": junk})):
        assert response.status_code in (400, 404), response.text
        assert "message" in response.json()


def test_checkpoint_endpoints_of_an_unknown_or_invalid_sprite(http: httpx.Client) -> None:
    for name, code in (("no-such-sprite", 404), ("Bad_Name", 400)):
        base = f"/v1/sprites/{name}"
        for response in (http.post(f"{base}/checkpoint", json={}),
                         http.get(f"{base}/checkpoints"),
                         http.get(f"{base}/checkpoints/v0"),
                         http.delete(f"{base}/checkpoints/v0"),
                         http.post(f"{base}/checkpoints/v0/restore")):
            assert response.status_code == code, (name, response.request.url)
            assert "message" in response.json()


def test_deleting_an_auto_checkpoint_and_a_later_one(http: httpx.Client, sprite: str) -> None:
    _checkpoint(http, sprite)
    _checkpoint(http, sprite)
    _restore(http, sprite, "v1")
    auto = next(c["id"] for c in http.get(f"/v1/sprites/{sprite}/checkpoints",
                                          params={"includeAuto": "true"}).json()
                if c["id"].startswith("auto-"))
    assert http.delete(f"/v1/sprites/{sprite}/checkpoints/{auto}").status_code == 204
    assert http.delete(f"/v1/sprites/{sprite}/checkpoints/v2").status_code == 204
    assert http.delete(f"/v1/sprites/{sprite}/checkpoints/v1").status_code == 409
    assert http.get(f"/v1/sprites/{sprite}/checkpoints/v2").status_code == 404
    assert _checkpoint(http, sprite) == "v3"


def test_a_write_that_arrives_mid_restore_waits_and_is_not_lost(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    home = _root(server, sprite) / "home" / "sprite"
    assert _checkpoint(http, sprite) == "v1"
    fill(home / "bulk", 400, 64 * 1024, "after")  # enough for the restore to take a while
    (home / "later.txt").write_text("made after v1")
    url = f"/v1/sprites/{sprite}/checkpoints/v1/restore"
    with server.http() as restoring, restoring.stream("POST", url) as response:
        lines = response.iter_lines()
        while json.loads(next(lines))["data"] != "Stopping services...":
            pass
        written = http.put(f"/v1/sprites/{sprite}/fs/write",
                           params={"path": "/home/sprite/later.txt"}, content=b"written mid-way")
        events = [json.loads(line) for line in lines if line]
    assert events[-1] == {**events[-1], "type": "complete", "data": "Restored to v1"}
    assert written.status_code == 200
    assert (home / "later.txt").read_text() == "written mid-way"
    assert not (home / "bulk").exists()


def test_deleted_checkpoints_free_their_data_without_a_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home")
    try:
        with server.http() as http:
            assert http.post("/v1/sprites", json={"name": "gc"}).status_code == 201
            home = _root(server, "gc") / "home" / "sprite"
            (home / "big.bin").write_bytes(b"\x01" * 200_000)
            assert _checkpoint(http, "gc") == "v1"
            (home / "big.bin").write_bytes(b"\x02" * 200_000)
            assert _checkpoint(http, "gc") == "v2"
            objects = server.home / "objects"
            holding = [p for p in objects.glob("??/*") if p.read_bytes() == b"\x01" * 200_000]
            assert holding  # what only v1 holds

            assert http.delete("/v1/sprites/gc/checkpoints/v1").status_code == 204

            eventually(lambda: not any(p.exists() for p in holding), "v1's data freed")
            (home / "big.bin").write_bytes(b"\x03")
            _restore(http, "gc", "v2")
            assert (home / "big.bin").read_bytes() == b"\x02" * 200_000
    finally:
        server.stop()


def test_a_file_name_that_is_not_utf8_is_checkpointed_and_restored(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    """Linux names are bytes: a Latin-1 ``café`` made every checkpoint of its sprite fail."""
    home = os.fsencode(_root(server, sprite) / "home" / "sprite")
    name = home + b"/caf\xe9.txt"
    with open(name, "wb") as handle:
        handle.write(b"latin-1 name")
    assert _checkpoint(http, sprite) == "v1"
    view = os.fsencode(server.home / "sprites" / sprite / "platform" / "checkpoints" / "v1")
    shown = view + b"/home/sprite/caf\xe9.txt"
    eventually(lambda: os.path.exists(shown), "the checkpoint's view shows the file")
    with open(shown, "rb") as handle:
        assert handle.read() == b"latin-1 name"
    os.unlink(name)
    _restore(http, sprite, "v1")
    with open(name, "rb") as handle:
        assert handle.read() == b"latin-1 name"
    assert b"caf\xe9.txt" in os.listdir(home)
    assert _checkpoint(http, sprite) == "v2"
