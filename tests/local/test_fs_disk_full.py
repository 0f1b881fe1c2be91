"""A full disk: a server whose home is a small tmpfs the test mounted on its own
directory. A write that hits ENOSPC is a 507 naming the cause and leaves no partial
file; reads, listings and deletes still work on a disk with no byte left, so space can
be freed through the API."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LocalServer, start_server
from tests.local.conftest import SMALL_DISK_MB

HOME = "/home/sprite"



@pytest.fixture
def full_disk_server(small_disk: Path) -> Iterator[LocalServer]:
    running = start_server(small_disk / "home")
    try:
        yield running
    finally:
        running.stop()


def _fill(directory: Path) -> Path:
    """Fill the disk to its last byte with a file of the test's own (outside any sprite)."""
    filler = directory / "filler"
    with open(filler, "ab", buffering=0) as handle:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == 28  # ENOSPC
    return filler


def _free(directory: Path) -> int:
    info = os.statvfs(directory)
    return info.f_bavail * info.f_frsize


def test_enospc_is_507_and_leaves_nothing_behind_reads_and_deletes_still_work(
        full_disk_server: LocalServer, small_disk: Path) -> None:
    server = full_disk_server
    name = f"t-{uuid.uuid4().hex[:10]}"
    with server.http() as http:
        assert http.post("/v1/sprites", json={"name": name}).status_code == 201
        fs = f"/v1/sprites/{name}/fs"
        keep = os.urandom(2 << 20)
        assert http.put(f"{fs}/write", params={"path": f"{HOME}/keep"},
                        content=keep).status_code == 200
        free_before = _free(small_disk)

        too_big = http.put(f"{fs}/write", params={"path": f"{HOME}/big"},
                           content=b"x" * ((SMALL_DISK_MB + 8) << 20))
        assert too_big.status_code == 507, too_big.text
        body = too_big.json()
        assert body["code"] == "ENOSPC" and "no space left" in body["error"]
        assert body["path"] == f"{HOME}/big"
        assert str(small_disk) not in too_big.text
        names = [e["name"] for e in http.get(f"{fs}/list", params={"path": HOME}).json()[
            "entries"]]
        assert names == ["keep"]  # no partial file, no temporary file
        assert _free(small_disk) >= free_before - (64 << 10)

        filler = _fill(small_disk)
        try:
            again = http.post(f"{fs}/copy", json={"source": f"{HOME}/keep",
                                                  "dest": f"{HOME}/keep2"})
            assert again.status_code == 507 and again.json()["code"] == "ENOSPC", again.text
            read = http.get(f"{fs}/read", params={"path": f"{HOME}/keep"})
            assert read.status_code == 200 and read.content == keep
            listing = http.get(f"{fs}/list", params={"path": HOME})
            assert listing.status_code == 200
            assert [e["name"] for e in listing.json()["entries"]] == ["keep"]  # no partial copy
            deleted = http.delete(f"{fs}/delete", params={"path": f"{HOME}/keep"})
            assert deleted.status_code == 200, deleted.text
            assert _free(small_disk) >= 2 << 20
            written = http.put(f"{fs}/write", params={"path": f"{HOME}/after"}, content=b"ok")
            assert written.status_code == 200, written.text
        finally:
            filler.unlink()
        assert http.get(f"/v1/sprites/{name}").status_code == 200
