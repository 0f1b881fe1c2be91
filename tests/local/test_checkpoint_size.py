"""Each checkpoint says how many bytes it stored that its parent did not have
(``changed_bytes``, an extra field of the Checkpoint object), over real HTTP."""

from __future__ import annotations

import httpx

from tests.local.ndjson import stream_events

DATA = "/home/sprite/data.bin"


def _checkpoint(http: httpx.Client, sprite: str) -> dict:
    status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/checkpoint", json={})
    assert status == 200 and events[-1]["type"] == "complete", events
    checkpoint_id = events[-1]["data"].split()[1]
    return http.get(f"/v1/sprites/{sprite}/checkpoints/{checkpoint_id}").json()


def _write(http: httpx.Client, sprite: str, data: bytes) -> None:
    response = http.put(f"/v1/sprites/{sprite}/fs/write", params={"path": DATA}, content=data)
    assert response.status_code in (200, 201), response.text


def _listed(http: httpx.Client, sprite: str) -> dict[str, object]:
    listing = http.get(f"/v1/sprites/{sprite}/checkpoints",
                       params={"includeAuto": "true"}).json()
    return {entry["id"]: entry.get("changed_bytes") for entry in listing}


def test_a_checkpoint_counts_the_bytes_new_since_its_parent(http: httpx.Client,
                                                            sprite: str) -> None:
    _checkpoint(http, sprite)
    _write(http, sprite, b"x" * 10_000)
    written = _checkpoint(http, sprite)  # the file was written a moment ago: too fresh to cache
    assert written["changed_bytes"] == 10_000
    assert _checkpoint(http, sprite)["changed_bytes"] == 0  # read again, but the same bytes
    _write(http, sprite, b"x" * 10_000)  # rewritten with what it held
    assert _checkpoint(http, sprite)["changed_bytes"] == 0
    _write(http, sprite, b"y" * 2_500)
    changed = _checkpoint(http, sprite)
    assert changed["changed_bytes"] == 2_500
    listed = _listed(http, sprite)
    assert listed[written["id"]] == 10_000 and listed[changed["id"]] == 2_500
    assert listed["v0"] is None  # the base state measures nothing


def test_the_undo_point_of_a_restore_counts_what_the_restore_takes_back(
        http: httpx.Client, sprite: str) -> None:
    base = _checkpoint(http, sprite)
    _write(http, sprite, b"z" * 4_000)
    status, events = stream_events(
        http, "POST", f"/v1/sprites/{sprite}/checkpoints/{base['id']}/restore")
    assert status == 200 and events[-1]["type"] == "complete", events
    autos = {cp: size for cp, size in _listed(http, sprite).items() if cp.startswith("auto-")}
    assert list(autos.values()) == [4_000]
    assert _checkpoint(http, sprite)["changed_bytes"] == 0  # the restored tree is the parent's
