"""Bad input to the filesystem endpoints: each is a clear 4xx naming no host path, and
the server answers the next request."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LocalServer
from tests.local.sprite_shell import must, server_in_each_mode  # noqa: F401

HOME = "/home/sprite"


def _fs(sprite: str, op: str) -> str:
    return f"/v1/sprites/{sprite}/fs/{op}"


def _refused(server: LocalServer, http: httpx.Client, sprite: str,
             response: httpx.Response, status: int = 400, word: str = "") -> str:
    assert response.status_code == status, response.text
    text = response.text
    assert str(server.home) not in text and "/tmp/" not in text, text
    assert word in text, text
    assert http.get(f"/v1/sprites/{sprite}").status_code == 200
    return text


@pytest.mark.parametrize("working_dir", [5, [], {"a": 1}, True, "/home\x00/x"])
def test_working_dir_must_be_a_string(server: LocalServer, http: httpx.Client, sprite: str,
                                      working_dir: object) -> None:
    http.put(_fs(sprite, "write"), params={"path": f"{HOME}/f"}, content=b"x")
    for op in ("chmod", "chown", "copy", "rename"):
        body = {"path": "f", "source": "f", "dest": "g", "mode": "0600", "uid": 0,
                "workingDir": working_dir}
        _refused(server, http, sprite, http.post(_fs(sprite, op), json=body), word="workingDir")


@pytest.mark.parametrize("field", ["uid", "gid"])
@pytest.mark.parametrize("value", [-5, -1, 2**32, 2**32 - 1, 10**20, 1.5, "0", True])
def test_chown_ids_must_be_in_range(server: LocalServer, http: httpx.Client, sprite: str,
                                    field: str, value: object) -> None:
    http.put(_fs(sprite, "write"), params={"path": f"{HOME}/f"}, content=b"x")
    response = http.post(_fs(sprite, "chown"), json={"path": f"{HOME}/f", field: value})
    assert response.json()["code"] == "EINVAL"
    _refused(server, http, sprite, response, word=field)


def test_chown_in_range_changes_the_owner_or_names_the_missing_id(
        http: httpx.Client, sprite: str) -> None:
    http.put(_fs(sprite, "write"), params={"path": f"{HOME}/f"}, content=b"x")
    response = http.post(_fs(sprite, "chown"), json={"path": f"{HOME}/f", "uid": 2**32 - 2,
                                                     "gid": 0})
    if response.status_code == 400:  # a sandbox: its user namespace maps a few ids only
        assert "does not exist in this sprite" in response.json()["error"]
        return
    if response.status_code == 403:
        pytest.skip("the server is not root here, so it may not give files away")
    assert response.json() == {"affected": [{"path": f"{HOME}/f", "uid": 2**32 - 2, "gid": 0}],
                               "count": 1}


def test_chown_speaks_the_sprites_own_ids(server: LocalServer, http: httpx.Client,
                                          sprite: str) -> None:
    uid, gid = (int(n) for n in must(server, sprite, "id -u; id -g").split())
    must(server, sprite, "echo x > f")
    response = http.post(_fs(sprite, "chown"), json={"path": f"{HOME}/f", "uid": uid,
                                                     "gid": gid})
    assert response.json() == {"affected": [{"path": f"{HOME}/f", "uid": uid, "gid": gid}],
                               "count": 1}
    assert must(server, sprite, "stat -c '%u %g' f").split() == [str(uid), str(gid)]


@pytest.mark.parametrize("mode", [True, None, "rwx", "12345", -1, 0o10000, [7]])
def test_chmod_mode_must_be_octal(server: LocalServer, http: httpx.Client, sprite: str,
                                  mode: object) -> None:
    http.put(_fs(sprite, "write"), params={"path": f"{HOME}/f"}, content=b"x")
    _refused(server, http, sprite,
             http.post(_fs(sprite, "chmod"), json={"path": f"{HOME}/f", "mode": mode}),
             word="mode")


@pytest.mark.parametrize("op", ["copy", "chmod", "chown", "delete"])
def test_flags_must_be_booleans(server: LocalServer, http: httpx.Client, sprite: str,
                                op: str) -> None:
    body = {"path": HOME, "source": HOME, "dest": "/x", "mode": "0755", "uid": 0,
            "recursive": 7}
    response = http.request("DELETE" if op == "delete" else "POST", _fs(sprite, op), json=body)
    _refused(server, http, sprite, response, word="recursive")


@pytest.mark.parametrize("field", ["source", "dest"])
@pytest.mark.parametrize("op", ["copy", "rename"])
def test_source_and_dest_must_be_paths(server: LocalServer, http: httpx.Client, sprite: str,
                                       op: str, field: str) -> None:
    body = {"source": f"{HOME}/a", "dest": f"{HOME}/b", field: 5}
    _refused(server, http, sprite, http.post(_fs(sprite, op), json=body), word="path")


def test_copying_the_root_is_refused_at_once(server: LocalServer, http: httpx.Client,
                                             sprite: str) -> None:
    response = http.post(_fs(sprite, "copy"), json={"source": "/", "dest": f"{HOME}/all",
                                                    "recursive": True})
    _refused(server, http, sprite, response, word="into itself")
    assert http.get(_fs(sprite, "list"), params={"path": f"{HOME}/all"}).status_code == 404


@pytest.mark.parametrize("dest", ["d/sub", "d/sub/deeper", "d", "d/."])
def test_copying_a_directory_into_itself_is_refused(server: LocalServer, http: httpx.Client,
                                                    sprite: str, dest: str) -> None:
    http.put(_fs(sprite, "write"), params={"path": f"{HOME}/d/f"}, content=b"x")
    http.put(_fs(sprite, "write"), params={"path": f"{HOME}/d/sub/g"}, content=b"y")
    before = http.get(_fs(sprite, "list"), params={"path": f"{HOME}/d",
                                                   "recursive": "true"}).json()
    response = http.post(_fs(sprite, "copy"), json={"source": "d", "dest": dest,
                                                    "workingDir": HOME})
    _refused(server, http, sprite, response, word="into itself")
    after = http.get(_fs(sprite, "list"), params={"path": f"{HOME}/d",
                                                  "recursive": "true"}).json()
    assert after == before


def test_copying_through_a_symlink_into_itself_is_refused(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    must(server, sprite, "mkdir -p d/sub && ln -s /home/sprite/d/sub shortcut")
    response = http.post(_fs(sprite, "copy"), json={"source": f"{HOME}/d",
                                                    "dest": f"{HOME}/shortcut/copy"})
    _refused(server, http, sprite, response, word="into itself")


def test_a_copy_beside_itself_works(http: httpx.Client, sprite: str) -> None:
    http.put(_fs(sprite, "write"), params={"path": f"{HOME}/d/f"}, content=b"x")
    response = http.post(_fs(sprite, "copy"), json={"source": f"{HOME}/d",
                                                    "dest": f"{HOME}/d-copy"})
    assert response.json() == {"copied": [{"source": f"{HOME}/d/f", "dest": f"{HOME}/d-copy/f"}],
                               "count": 1, "totalBytes": 1}


@pytest.mark.parametrize("path", ["a" * 300, "/".join(["d" * 200] * 21), "x\x00y"],
                         ids=["long-name", "long-path", "nul"])
def test_impossible_paths_are_400(server: LocalServer, http: httpx.Client, sprite: str,
                                  path: str) -> None:
    for response in (http.get(_fs(sprite, "read"), params={"path": path}),
                     http.put(_fs(sprite, "write"), params={"path": path}, content=b"x"),
                     http.post(_fs(sprite, "chmod"), json={"path": path, "mode": "0644"})):
        _refused(server, http, sprite, response)


def test_the_root_cannot_be_deleted_or_renamed(server: LocalServer, http: httpx.Client,
                                               sprite: str) -> None:
    _refused(server, http, sprite, http.delete(_fs(sprite, "delete"),
                                               params={"path": "/", "recursive": "true"}),
             403, "root")
    _refused(server, http, sprite, http.post(_fs(sprite, "rename"),
                                             json={"source": "/", "dest": "/x"}), 403, "root")
    assert http.get(_fs(sprite, "list"), params={"path": HOME}).status_code == 200
