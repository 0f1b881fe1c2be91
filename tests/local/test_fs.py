"""Filesystem endpoints (reference section 6), including traversal refusal."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LocalServer
from tests.local.sprite_shell import must, server_in_each_mode  # noqa: F401


def _fs(sprite: str, op: str) -> str:
    return f"/v1/sprites/{sprite}/fs/{op}"


def test_write_read_list_round_trip(http: httpx.Client, sprite: str) -> None:
    written = http.put(_fs(sprite, "write"), params={"path": "data/a.txt",
                                                     "workingDir": "/home/sprite"},
                       content=b"hello")
    assert written.status_code == 200
    assert written.json() == {"path": "/home/sprite/data/a.txt", "size": 5, "mode": "0644"}
    read = http.get(_fs(sprite, "read"), params={"path": "/home/sprite/data/a.txt"})
    assert read.status_code == 200 and read.content == b"hello"
    listing = http.get(_fs(sprite, "list"), params={"path": "/home/sprite"}).json()
    assert listing["path"] == "/home/sprite"
    assert listing["count"] == 1
    entry = listing["entries"][0]
    assert entry["name"] == "data" and entry["isDir"] and entry["type"] == "directory"
    assert entry["path"] == "/home/sprite/data"
    one = http.get(_fs(sprite, "list"), params={"path": "/home/sprite/data/a.txt"}).json()
    assert [e["name"] for e in one["entries"]] == ["a.txt"]
    assert one["entries"][0]["size"] == 5 and one["entries"][0]["modTime"].endswith("Z")


def test_write_mode_and_missing_parent(http: httpx.Client, sprite: str) -> None:
    ok = http.put(_fs(sprite, "write"), params={"path": "/home/sprite/run.sh", "mode": "0755"},
                  content=b"#!/bin/sh\n")
    assert ok.json()["mode"] == "0755"
    missing = http.put(_fs(sprite, "write"), params={"path": "/home/sprite/no/dir/f",
                                                     "mkdirParents": "false"}, content=b"x")
    assert missing.status_code == 404
    assert missing.json()["code"] == "ENOENT"
    bad_mode = http.put(_fs(sprite, "write"), params={"path": "/home/sprite/f", "mode": "9z"},
                        content=b"x")
    assert bad_mode.status_code == 400 and bad_mode.json()["code"] == "EINVAL"


def test_missing_files_are_404_with_fs_error_body(http: httpx.Client, sprite: str) -> None:
    for op, params in [("read", {"path": "/nope"}), ("list", {"path": "/nope"})]:
        response = http.get(_fs(sprite, op), params=params)
        assert response.status_code == 404
        assert response.json() == {"error": "no such file or directory", "code": "ENOENT",
                                   "path": "/nope"}
    assert http.delete(_fs(sprite, "delete"), params={"path": "/nope"}).status_code == 404
    assert http.post(_fs(sprite, "rename"),
                     json={"source": "/nope", "dest": "/x"}).status_code == 404
    assert http.post(_fs(sprite, "copy"), json={"source": "/nope", "dest": "/x"}).status_code == 404
    assert http.post(_fs(sprite, "chmod"),
                     json={"path": "/nope", "mode": "0644"}).status_code == 404


def test_reading_a_directory_is_400(http: httpx.Client, sprite: str) -> None:
    response = http.get(_fs(sprite, "read"), params={"path": "/home/sprite"})
    assert response.status_code == 400 and response.json()["code"] == "EISDIR"


def test_delete_rename_copy_chmod(http: httpx.Client, sprite: str) -> None:
    for path in ("/w/d/a.txt", "/w/d/b.txt", "/w/c.txt"):
        http.put(_fs(sprite, "write"), params={"path": path}, content=path.encode())
    not_empty = http.delete(_fs(sprite, "delete"), params={"path": "/w/d"})
    assert not_empty.status_code == 409 and not_empty.json()["code"] == "ENOTEMPTY"
    renamed = http.post(_fs(sprite, "rename"),
                        json={"source": "c.txt", "dest": "e.txt", "workingDir": "/w"})
    assert renamed.json() == {"source": "/w/c.txt", "dest": "/w/e.txt"}
    copied = http.post(_fs(sprite, "copy"), json={"source": "/w/d", "dest": "/w/d2",
                                                  "recursive": True}).json()
    assert copied["count"] == 2 and copied["totalBytes"] == 20
    assert http.get(_fs(sprite, "read"), params={"path": "/w/d2/a.txt"}).content == b"/w/d/a.txt"
    no_recursive = http.post(_fs(sprite, "copy"), json={"source": "/w/d", "dest": "/w/d3",
                                                        "recursive": False})
    assert no_recursive.status_code == 400
    chmod = http.post(_fs(sprite, "chmod"), json={"path": "/w/d", "mode": "0700",
                                                  "recursive": True}).json()
    assert chmod["count"] == 3 and {a["mode"] for a in chmod["affected"]} == {"0700"}
    deleted = http.request("DELETE", _fs(sprite, "delete"),
                           json={"path": "/w/d", "recursive": True}).json()
    assert deleted == {"deleted": ["/w/d"], "count": 1}
    assert http.get(_fs(sprite, "list"), params={"path": "/w/d"}).status_code == 404


@pytest.mark.parametrize("path", ["../../../etc/passwd", "/../../etc/passwd",
                                  "/home/../../../../etc/passwd"])
def test_dotdot_cannot_leave_the_root(http: httpx.Client, sprite: str, path: str) -> None:
    response = http.get(_fs(sprite, "read"), params={"path": path, "workingDir": "/home"})
    assert response.status_code == 403
    write = http.put(_fs(sprite, "write"), params={"path": path}, content=b"owned")
    assert write.status_code == 403


def test_absolute_paths_stay_inside_the_root(http: httpx.Client, sprite: str,
                                             tmp_path) -> None:
    host_file = tmp_path / "host.txt"
    host_file.write_text("host")
    response = http.get(_fs(sprite, "read"), params={"path": str(host_file)})
    assert response.status_code == 404  # the sprite has no such file; the host's is not it


def test_symlinks_resolve_inside_the_sprite(server: LocalServer, http: httpx.Client,
                                           sprite: str, tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    must(server, sprite, f"ln -s {secret} link && ln -s {tmp_path} dirlink && "
                         "echo mine > data.txt && ln -s /home/sprite/data.txt inside")
    for path in ("/home/sprite/link", "/home/sprite/dirlink/secret.txt"):
        response = http.get(_fs(sprite, "read"), params={"path": path})
        assert response.status_code == 404, path  # the sprite has no such file
        assert str(tmp_path) not in response.text
    inside = http.get(_fs(sprite, "read"), params={"path": "/home/sprite/inside"})
    assert inside.status_code == 200 and inside.content == b"mine\n"
    write = http.put(_fs(sprite, "write"), params={"path": "/home/sprite/dirlink/new"},
                     content=b"x")
    assert write.status_code == 404
    assert not (tmp_path / "new").exists()
    rename = http.post(_fs(sprite, "rename"), json={"source": "/home/sprite/dirlink/secret.txt",
                                                    "dest": "/home/sprite/stolen"})
    assert rename.status_code == 404
    assert secret.read_text() == "host secret"
    # the link itself can be removed; its target is untouched
    unlinked = http.delete(_fs(sprite, "delete"), params={"path": "/home/sprite/link"})
    assert unlinked.status_code == 200
    assert secret.exists()


def test_unknown_sprite_is_404(http: httpx.Client) -> None:
    assert http.get(_fs("no-such", "read"), params={"path": "/x"}).status_code == 404


def test_write_keeps_an_existing_mode_unless_given(http: httpx.Client, sprite: str) -> None:
    path = "/home/sprite/tool"
    assert http.put(_fs(sprite, "write"), params={"path": path, "mode": "0750"},
                    content=b"v1").json()["mode"] == "0750"
    again = http.put(_fs(sprite, "write"), params={"path": path}, content=b"v2")
    assert again.json() == {"path": path, "size": 2, "mode": "0750"}
    assert http.get(_fs(sprite, "read"), params={"path": path}).content == b"v2"


def test_copy_keeps_modes_and_preserve_keeps_times(server: LocalServer, http: httpx.Client,
                                                   sprite: str) -> None:
    http.put(_fs(sprite, "write"), params={"path": "/src/run.sh", "mode": "0700"}, content=b"x")
    must(server, sprite, "touch -d '2001-02-03 04:05:06' ../../src/run.sh")
    http.post(_fs(sprite, "chmod"), json={"path": "/src", "mode": "0750"})
    http.post(_fs(sprite, "copy"), json={"source": "/src", "dest": "/plain"})
    http.post(_fs(sprite, "copy"), json={"source": "/src", "dest": "/kept",
                                         "preserveAttrs": True})

    def entry(path: str) -> dict:
        return http.get(_fs(sprite, "list"), params={"path": path}).json()["entries"][0]

    for copy in ("/plain", "/kept"):
        assert entry(f"{copy}/run.sh")["mode"] == "0700"
        listing = http.get(_fs(sprite, "list"), params={"path": "/"}).json()["entries"]
        assert next(e for e in listing if e["path"] == copy)["mode"] == "0750"
    assert entry("/src/run.sh")["modTime"].startswith("2001-02-03")
    assert entry("/kept/run.sh")["modTime"] == entry("/src/run.sh")["modTime"]
    assert not entry("/plain/run.sh")["modTime"].startswith("2001")


def test_names_that_are_not_utf8_are_listed(server: LocalServer, http: httpx.Client,
                                            sprite: str) -> None:
    must(server, sprite, "python3 -c \"open(b'caf\\xe9', 'w').close()\"")
    listing = http.get(_fs(sprite, "list"), params={"path": "/home/sprite"})
    assert listing.status_code == 200
    assert [e["name"] for e in listing.json()["entries"]] == ["caf\ufffd"]
