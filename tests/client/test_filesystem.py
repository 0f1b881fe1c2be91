"""The sprite filesystem through the client, including folder upload and download."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import httpx
import pytest

from sprites_jupyter.client import ConnectionFailed, FileEntry, NotFound, Sprite, SpritesClient
from sprites_jupyter.client.bulk_read import BodyReader

from .misbehaving import http_server


def test_write_read_list_stat(sp: Sprite) -> None:
    written = sp.write_file("notes/today.txt", "hello\n", mode="0600")
    assert isinstance(written, FileEntry)
    assert (written.path, written.size, written.mode) == ("/home/sprite/notes/today.txt", 6,
                                                          "0600")
    assert sp.read_file("/home/sprite/notes/today.txt") == b"hello\n"
    entries = sp.list_dir("notes")
    assert [(e.name, e.is_dir, e.size, e.mode) for e in entries] == [
        ("today.txt", False, 6, "0600")]
    assert entries[0].mod_time.tzinfo
    assert sp.stat("notes").is_dir and sp.stat("notes").type == "directory"
    assert sp.stat("notes/today.txt").size == 6
    assert sp.stat("/").is_dir
    assert "notes" in {e.name for e in sp.list_dir()}


def test_binary_round_trip(sp: Sprite) -> None:
    data = os.urandom(2 * 1024 * 1024)
    sp.write_file("/tmp/blob.bin", data)
    assert sp.read_file("/tmp/blob.bin") == data


def test_a_large_file_streams_back_whole(sp: Sprite, tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024 + 7)  # several of the client's 4 MiB reads, and a tail
    sp.write_file("big.bin", data)
    assert b"".join(sp.iter_file("big.bin")) == data
    assert sp.download("big.bin", tmp_path / "big.bin") == 1
    assert (tmp_path / "big.bin").read_bytes() == data
    with pytest.raises(NotFound, match=r"/home/sprite/absent\.bin"):
        b"".join(sp.iter_file("absent.bin"))


def test_open_file_reads_into_the_callers_memory_and_whole(sp: Sprite) -> None:
    data = os.urandom(9 * 1024 * 1024 + 7)
    sp.write_file("big.bin", data)
    target = bytearray(len(data))
    view, filled = memoryview(target), 0
    with sp.open_file("big.bin") as source:
        while got := source.readinto(view[filled:]):
            filled += got
        assert source.readinto(bytearray(1)) == 0
    assert filled == len(data) and target == data
    with sp.open_file("big.bin") as source:
        assert source.readall() == data
    with sp.open_file("big.bin") as source:  # a small read first, then the rest in one
        assert source.read(5) == data[:5] and source.readall() == data[5:]
    with pytest.raises(NotFound, match=r"/home/sprite/absent\.bin"):
        sp.open_file("absent.bin")


def test_body_reader_copies_from_chunks_when_the_transport_has_no_direct_body() -> None:
    chunks = [b"ab", b"", b"cdef", b"g"]
    response = httpx.Response(200, content=iter(chunks))
    reader = BodyReader(response, lambda exc: RuntimeError(str(exc)))
    buffer = bytearray(3)
    assert reader.readinto(buffer) == 2 and buffer[:2] == b"ab"
    assert reader.readall() == b"cdefg"
    reader.close()
    assert reader.closed


def test_misbehaving_server_a_download_cut_short_is_one_line_and_leaves_no_file(
        tmp_path: Path) -> None:
    def cut_short(handler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                            b"Content-Length: 1000000\r\nConnection: close\r\n\r\n"
                            + b"x" * 1000)
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
        handler.close_connection = True

    entry = {"name": "f", "path": "/home/sprite/f", "type": "file", "size": 1000000,
             "mode": "0644", "isDir": False}

    def listing(handler) -> None:
        body = json.dumps({"path": "/home/sprite", "entries": [entry]})
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                            % (len(body), body.encode()))
        handler.close_connection = True

    routes = {("GET", "/v1/sprites/s/fs/read"): cut_short,
              ("GET", "/v1/sprites/s/fs/list"): listing}
    with http_server(routes) as url, SpritesClient("t0ken-cut", url) as client:
        sprite = client.sprite("s")
        with pytest.raises(ConnectionFailed) as caught:
            b"".join(sprite.iter_file("f"))
        message = str(caught.value)
        assert message.startswith("read /home/sprite/f on s: the transfer broke off (")
        assert "\n" not in message and "1,000 of 1,000,000 bytes" in message
        with pytest.raises(ConnectionFailed):
            sprite.download("f", tmp_path / "f")
        assert list(tmp_path.iterdir()) == []
        for read in (lambda source: source.readall(),
                     lambda source: source.readinto(bytearray(2_000_000)) and
                     source.readinto(bytearray(2_000_000))):
            with pytest.raises(ConnectionFailed) as caught, sprite.open_file("f") as source:
                read(source)
            assert "\n" not in str(caught.value)
            assert "1,000 of 1,000,000 bytes" in str(caught.value)


def test_write_without_parents_fails_cleanly(sp: Sprite) -> None:
    with pytest.raises(NotFound):
        sp.write_file("missing/dir/file.txt", "x", mkdir_parents=False)


def test_rename_copy_chmod_delete(sp: Sprite) -> None:
    sp.write_file("a.txt", "A")
    sp.rename("a.txt", "b.txt")
    with pytest.raises(NotFound):
        sp.read_file("a.txt")
    sp.copy("b.txt", "c.txt")
    assert sp.read_file("c.txt") == b"A"
    sp.chmod("c.txt", 0o755)
    assert sp.stat("c.txt").mode == "0755"
    sp.chmod("c.txt", "600")
    assert sp.stat("c.txt").mode_bits == 0o600

    sp.write_file("tree/sub/x.txt", "x")
    sp.copy("tree", "tree2")
    assert sp.read_file("tree2/sub/x.txt") == b"x"
    sp.delete("b.txt")
    sp.delete("tree2", recursive=True)
    for gone in ("b.txt", "tree2"):
        with pytest.raises(NotFound):
            sp.stat(gone)
    with pytest.raises(NotFound):
        sp.delete("never-there")


def test_missing_file_errors_say_which_path(sp: Sprite) -> None:
    with pytest.raises(NotFound, match=r"/home/sprite/nope\.txt"):
        sp.read_file("nope.txt")


def test_bad_mode_is_refused_locally(sp: Sprite) -> None:
    with pytest.raises(ValueError, match="octal"):
        sp.chmod("x", "rwx")


def test_upload_and_download_folders(sp: Sprite, tmp_path: Path) -> None:
    source = tmp_path / "project"
    (source / "src" / "pkg").mkdir(parents=True)
    (source / "empty").mkdir()
    (source / "README").write_text("read me")
    (source / "src" / "pkg" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (source / "src" / "pkg" / "run.sh").chmod(0o755)
    (source / "src" / "data.bin").write_bytes(bytes(range(256)) * 100)

    assert sp.upload(source, "/home/sprite/project") == 3
    assert sp.run("/home/sprite/project/src/pkg/run.sh").stdout == "hi\n"
    assert sp.stat("project/src/pkg/run.sh").mode == "0755"
    assert sp.stat("project/empty").is_dir and sp.list_dir("project/empty") == []

    back = tmp_path / "back"
    assert sp.download("project", back) == 3
    assert (back / "README").read_text() == "read me"
    assert (back / "src" / "data.bin").read_bytes() == bytes(range(256)) * 100
    assert (back / "src" / "pkg" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (back / "empty").is_dir()
    assert not list(back.rglob("*.part"))

    assert sp.upload(source / "README", "single.txt") == 1
    assert sp.download("single.txt", tmp_path / "single.txt") == 1
    assert (tmp_path / "single.txt").read_text() == "read me"
    with pytest.raises(NotFound):
        sp.download("nothing-here", tmp_path / "x")


def test_chown(sp: Sprite) -> None:
    uid, gid = (int(n) for n in sp.run("sh", "-c", "id -u; id -g", check=True).stdout.split())
    sp.write_file("mine.txt", "x")
    sp.chown("mine.txt", uid=uid, gid=gid)  # the sprite's own ids (a sandbox maps only these)
    with pytest.raises(ValueError, match="uid"):
        sp.chown("mine.txt")
    with pytest.raises(NotFound):
        sp.chown("absent.txt", uid=uid)
