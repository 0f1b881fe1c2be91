"""A full disk under the server's home, on a small tmpfs this test mounts: reads, exec and
deletes keep working (none needs a database write), writes are a clear 507 or error
event, the server starts on a full disk, and everything works again once space is freed."""

from __future__ import annotations

import errno
import uuid
from pathlib import Path

import httpx

from tests.conftest import LocalServer, start_server

DISK_FULL = "disk holding the local server's data is full"



def _fill(disk: Path) -> Path:
    """Write a canary file (``disk/filler``, or ``disk`` when that is a file name to take)
    until the disk is full; return it."""
    filler = disk if not disk.is_dir() else disk / "filler"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _exec_output(http: httpx.Client, sprite: str, *argv: str) -> bytes:
    response = http.post(f"/v1/sprites/{sprite}/exec", params=[("cmd", a) for a in argv])
    assert response.status_code == 200, response.text
    return response.content


def _calls_that_need_no_space(http: httpx.Client, sprite: str) -> None:
    assert http.get(f"/v1/sprites/{sprite}").status_code == 200
    assert http.get("/v1/sprites").status_code == 200
    listed = http.get(f"/v1/sprites/{sprite}/checkpoints")
    assert listed.status_code == 200 and "v1" in listed.text
    frames = _exec_output(http, sprite, "echo", "still-here")
    assert b"still-here" in frames and frames.endswith(b"\x03\x00")
    read = http.get(f"/v1/sprites/{sprite}/fs/read", params={"path": "/home/sprite/a.txt"})
    assert read.status_code == 200 and read.content == b"kept"
    assert http.get(f"/v1/sprites/{sprite}/fs/list",
                    params={"path": "/home/sprite"}).status_code == 200


def test_disk_full(small_disk: Path) -> None:
    home = small_disk / "home"
    server: LocalServer = start_server(home)
    sprite = f"t-{uuid.uuid4().hex[:8]}"
    try:
        with server.http() as http:
            assert http.post("/v1/sprites", json={"name": sprite}).status_code == 201
            for name in ("a.txt", "b.txt"):
                assert http.put(f"/v1/sprites/{sprite}/fs/write", content=b"kept",
                                params={"path": f"/home/sprite/{name}"}).status_code == 200
            doomed = f"{sprite}-doomed"
            assert http.post("/v1/sprites", json={"name": doomed}).status_code == 201
            assert http.put(f"/v1/sprites/{doomed}/fs/write", content=b"d" * 2_000_000,
                            params={"path": "/home/sprite/big"}).status_code == 200
            assert "Checkpoint v1 created" in http.post(
                f"/v1/sprites/{sprite}/checkpoint", json={}).text
            filler = _fill(small_disk)

            _calls_that_need_no_space(http, sprite)
            created = http.post("/v1/sprites", json={"name": f"{sprite}-2"})
            assert created.status_code == 507, created.text
            assert DISK_FULL in created.json()["message"]
            stream = http.post(f"/v1/sprites/{sprite}/checkpoint", json={"comment": "x"})
            error = [line for line in stream.text.splitlines() if '"error"' in line]
            assert error and DISK_FULL in error[0] and str(small_disk) not in stream.text
            deleted = http.delete(f"/v1/sprites/{sprite}/fs/delete",
                                  params={"path": "/home/sprite/b.txt"})
            assert deleted.status_code == 200, deleted.text
            _fill(small_disk / "more")
            gone = http.delete(f"/v1/sprites/{doomed}")
            assert gone.status_code == 204, gone.text
            assert http.get(f"/v1/sprites/{doomed}").status_code == 404
            _fill(small_disk / "more2")

        server.stop()
        _fill(small_disk)  # whatever the stop freed is taken again
        server = start_server(home)
        with server.http() as http:
            _calls_that_need_no_space(http, sprite)
            filler.unlink()
            (small_disk / "filler").unlink(missing_ok=True)
            assert http.post("/v1/sprites", json={"name": f"{sprite}-3"}).status_code == 201
            assert "created" in http.post(f"/v1/sprites/{sprite}/checkpoint", json={}).text
    finally:
        server.stop()
