"""Large files in checkpoints over real HTTP: stored in chunks, restored whole, collected."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx

from sprites_jupyter.local.storage.objects import CHUNK, CHUNKED_OVER
from tests.conftest import LocalServer, start_server
from tests.local.exec_ws import run
from tests.local.test_checkpoints import _checkpoint, _restore, _root

SIZE = CHUNKED_OVER + 8 * CHUNK  # 20 MiB: the smallest kind of file that is chunked
EDIT_AT = SIZE // 2 + 12_345  # not on a chunk boundary: the edit straddles three chunks
EDIT = 1 << 20


def _allocated(directory: Path) -> int:
    """Bytes of disk allocated under ``directory`` (what ``du`` counts)."""
    return sum(p.lstat().st_blocks * 512 for p in directory.rglob("*") if p.is_file())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _chunk_names(data: bytes) -> set[str]:
    return {hashlib.sha256(data[at:at + CHUNK]).hexdigest() for at in range(0, len(data), CHUNK)}


def _edit(path: Path) -> None:
    with open(path, "r+b") as file:
        file.seek(EDIT_AT)
        file.write(os.urandom(EDIT))


def test_a_small_edit_to_a_large_file_stores_only_the_chunks_it_touched(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    big = _root(server, sprite) / "home" / "sprite" / "big.bin"
    big.write_bytes(os.urandom(SIZE))
    first = _sha(big)
    assert _checkpoint(http, sprite) == "v1"
    objects = server.home / "objects"
    before = _allocated(objects)
    _edit(big)
    second = _sha(big)
    assert _checkpoint(http, sprite) == "v2"
    growth = _allocated(objects) - before
    touched = (EDIT_AT + EDIT - 1) // CHUNK - EDIT_AT // CHUNK + 1
    listing = 32 * (SIZE // CHUNK)
    assert touched * CHUNK <= growth <= touched * CHUNK + listing + 64 * 1024, growth
    big.write_bytes(b"live")
    _restore(http, sprite, "v1")
    assert _sha(big) == first
    _restore(http, sprite, "v2")
    assert _sha(big) == second


def _await_view(views: Path, checkpoint_id: str) -> None:
    """A checkpoint's view, once the checkpoint is made, is there or announced as being
    built (its large file is assembled in the background); wait for it."""
    assert (views / checkpoint_id).is_dir() or (views / f".building-{checkpoint_id}").is_dir()
    deadline = time.monotonic() + 120
    while not (views / checkpoint_id).is_dir():
        assert time.monotonic() < deadline, f"the view of {checkpoint_id} never appeared"
        time.sleep(0.05)


def test_a_view_shows_a_chunked_file_whole(server: LocalServer, http: httpx.Client,
                                           sprite: str) -> None:
    big = _root(server, sprite) / "home" / "sprite" / "big.bin"
    big.write_bytes(os.urandom(SIZE))
    first = _sha(big)
    views = server.home / "sprites" / sprite / "platform" / "checkpoints"
    assert _checkpoint(http, sprite) == "v1"
    _await_view(views, "v1")
    _edit(big)
    second = _sha(big)
    assert _checkpoint(http, sprite) == "v2"
    _await_view(views, "v2")
    assert _sha(views / "v1" / "home/sprite/big.bin") == first
    assert _sha(views / "v2" / "home/sprite/big.bin") == second
    inside = "/.sprite/checkpoints/v1/home/sprite/big.bin"
    _, probe = run(server, sprite, ["test", "-f", inside])
    if probe.messages[-1] == b"\x03\x00":  # mounted inside (a sandboxed server): read it there
        _, shown = run(server, sprite, ["sha256sum", inside])
        assert shown.stream(1).split()[0].decode() == first


def test_gc_frees_the_chunks_only_a_deleted_checkpoint_used_at_once(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home")
    try:
        with server.http() as http:
            assert http.post("/v1/sprites", json={"name": "gc"}).status_code == 201
            big = _root(server, "gc") / "home" / "sprite" / "big.bin"
            big.write_bytes(os.urandom(SIZE))
            old = big.read_bytes()
            assert _checkpoint(http, "gc") == "v1"
            _edit(big)
            new = big.read_bytes()
            assert _checkpoint(http, "gc") == "v2"
            objects = server.home / "objects"
            only_old = _chunk_names(old) - _chunk_names(new)
            shared = _chunk_names(old) & _chunk_names(new)
            assert len(only_old) == 3 and len(shared) == SIZE // CHUNK - 3
            assert only_old <= {p.parent.name + p.name for p in objects.glob("??/*")}
            before = _allocated(objects)
            assert http.delete("/v1/sprites/gc/checkpoints/v1").status_code == 204
            deadline = time.monotonic() + 30
            while only_old & {p.parent.name + p.name for p in objects.glob("??/*")}:
                assert time.monotonic() < deadline, "the deleted checkpoint's chunks stayed"
                time.sleep(0.1)
            assert shared <= {p.parent.name + p.name for p in objects.glob("??/*")}
            assert before - _allocated(objects) >= 3 * CHUNK
            big.write_bytes(b"live")
            _restore(http, "gc", "v2")
            assert big.read_bytes() == new
    finally:
        server.stop()
