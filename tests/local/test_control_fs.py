"""Filesystem and proxy operations over the control connection, framed as sprites-go's
``Fs*Control`` helpers and ``ProxySocket`` frame them (reference sections 5.4, 6, 10)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from tests.conftest import LocalServer
from tests.local.control_client import TIMEOUT, GoStyle, control, envelope, open_control, read_op
from tests.local.exec_ws import RECV_TIMEOUT, open_exec, session_info
from tests.local.test_proxy import ECHO

HOME = "/home/sprite"


@pytest.fixture
def go(server: LocalServer, sprite: str) -> Iterator[GoStyle]:
    with open_control(server, sprite) as ws:
        yield GoStyle(ws)


def _sh(go: GoStyle, script: str) -> bytes:
    result = go.exec(["sh", "-c", script])
    assert result.end["args"]["exitCode"] == 0, result.stream(2)
    return result.stream(1)


def test_write_then_read_with_go_defaults(go: GoStyle) -> None:
    written, _ = go.fs("fs.write", b"hello\x00world", path="deep/new/a.bin",
                       workingDir=HOME, mode="0600")
    answer, data = go.fs("fs.read", path="deep/new/a.bin", workingDir=HOME)
    assert written == {"path": f"{HOME}/deep/new/a.bin", "size": 11, "mode": "0600"}
    assert answer == {"path": f"{HOME}/deep/new/a.bin", "size": 11}
    assert data == b"hello\x00world"
    assert _sh(go, "stat -c %a deep/new/a.bin") == b"600\n"


def test_relative_paths_default_to_the_home_directory(go: GoStyle) -> None:
    go.fs("fs.write", b"x", path="rel.txt")
    assert _sh(go, "cat /home/sprite/rel.txt") == b"x"


def test_read_a_byte_range(go: GoStyle) -> None:
    go.fs("fs.write", b"0123456789", path="r.txt")
    answer, data = go.fs("fs.read", path="r.txt", start="2", end="5")
    assert (answer["size"], data) == (3, b"234")


def test_write_without_parents_fails_with_enoent(go: GoStyle) -> None:
    answer, _ = go.fs("fs.write", b"x", path="missing/dir/f", mkdirParents="false")
    assert answer["code"] == "ENOENT" and answer["path"] == f"{HOME}/missing/dir/f"
    after, _ = go.fs("fs.list", path=HOME)  # the socket serves the next op
    assert "missing" not in [e["name"] for e in after["entries"]]


def test_list_recursive_and_stat_shape(go: GoStyle) -> None:
    _sh(go, "mkdir -p t/sub && echo a > t/a && echo b > t/sub/b")
    flat, _ = go.fs("fs.list", path="t")
    deep, _ = go.fs("fs.list", path="t", recursive="true")
    single, _ = go.fs("fs.list", path="t/a")
    assert [e["name"] for e in flat["entries"]] == ["a", "sub"]
    assert sorted(e["path"] for e in deep["entries"]) == [
        f"{HOME}/t/a", f"{HOME}/t/sub", f"{HOME}/t/sub/b"]
    assert single["count"] == 1 and single["entries"][0]["path"] == f"{HOME}/t/a"
    assert single["entries"][0]["isDir"] is False and single["entries"][0]["size"] == 2


def test_delete_rename_copy(go: GoStyle) -> None:
    _sh(go, "mkdir -p d/e && echo 1 > d/e/f && echo 2 > g")
    renamed, _ = go.fs("fs.rename", source="g", dest="h")
    copied, _ = go.fs("fs.copy", source="d", dest="d2", recursive="true")
    refused, _ = go.fs("fs.delete", path="d")
    deleted, _ = go.fs("fs.delete", path="d", recursive="true")
    assert renamed == {"source": f"{HOME}/g", "dest": f"{HOME}/h"}
    assert copied["totalBytes"] == 2 and {"source": f"{HOME}/d/e/f",
                                          "dest": f"{HOME}/d2/e/f"} in copied["copied"]
    assert refused["code"] == "ENOTEMPTY"
    assert deleted == {"deleted": [f"{HOME}/d"], "count": 1}
    assert _sh(go, "ls; cat d2/e/f") == b"d2\nh\n1\n"


def test_chmod_and_chown(go: GoStyle) -> None:
    uid, gid = _sh(go, "id -u; id -g").split()
    _sh(go, "echo x > c")
    mode, _ = go.fs("fs.chmod", path="c", mode="0751")
    owner, _ = go.fs("fs.chown", path="c", uid=uid.decode(), gid=gid.decode())
    neither, _ = go.fs("fs.chown", path="c")
    assert mode == {"affected": [{"path": f"{HOME}/c", "mode": "0751"}], "count": 1}
    assert owner == {"affected": [{"path": f"{HOME}/c", "uid": int(uid), "gid": int(gid)}],
                     "count": 1}
    assert neither["code"] == "EINVAL"
    assert _sh(go, "stat -c %a c") == b"751\n"


@pytest.mark.parametrize(("op", "args", "code"), [
    ("fs.read", {"path": "nope"}, "ENOENT"),
    ("fs.read", {"path": "/"}, "EISDIR"),
    ("fs.read", {"path": "x", "start": "-1"}, "EINVAL"),
    ("fs.list", {"path": "missing"}, "ENOENT"),
    ("fs.rename", {"source": "nope", "dest": "y"}, "ENOENT"),
    ("fs.chmod", {"path": "x", "mode": "99"}, "EINVAL"),
    ("fs.chown", {"path": "x", "uid": "abc"}, "EINVAL"),
])
def test_bad_fs_input_is_one_error_answer(go: GoStyle, op: str, args: dict, code: str) -> None:
    go.fs("fs.write", b"x", path="x")
    answer, _ = go.fs(op, **args)
    assert answer["code"] == code and answer["error"]
    assert go.exec(["echo", "ok"]).stream(1) == b"ok\n"  # nothing is left queued


@pytest.fixture
def echo_port(server: LocalServer, sprite: str) -> Iterator[int]:
    """A TCP echo server on the sprite's 127.0.0.1 that answers ``quit`` with ``bye``."""
    with open_exec(server, sprite, ["python3", "-c", ECHO]) as ws:
        session_info(ws)
        yield int(ws.recv(timeout=RECV_TIMEOUT)[1:])


def _go_proxy(ws: ClientConnection, port: int) -> dict:
    ws.send(json.dumps({"type": "start", "operation": "proxy",
                        "params": {"host": "localhost", "port": port, "keep_alive": True}}))
    return json.loads(ws.recv(timeout=TIMEOUT))


def _binary(ws: ClientConnection) -> bytes:
    while not isinstance(frame := ws.recv(timeout=TIMEOUT), bytes):
        pass
    return frame


def test_go_proxy_release_keeps_the_socket(go: GoStyle, echo_port: int) -> None:
    for round_ in range(2):
        assert _go_proxy(go.ws, echo_port) == {"status": "connected",
                                               "target": f"localhost:{echo_port}"}
        go.ws.send(f"ping{round_}".encode())
        assert _binary(go.ws) == f"ping{round_}".encode()
        go.release()
        while json.loads(go.ws.recv(timeout=TIMEOUT)).get("type") != "op.complete":
            pass
    assert go.exec(["echo", "after"]).stream(1) == b"after\n"


def test_go_proxy_target_close_closes_the_socket(go: GoStyle, echo_port: int) -> None:
    _go_proxy(go.ws, echo_port)
    go.ws.send(b"quit")
    assert _binary(go.ws) == b"bye"
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            go.ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def test_prefixed_proxy_and_refusals(server: LocalServer, sprite: str, echo_port: int) -> None:
    with open_control(server, sprite) as ws:
        ws.send(control({"type": "op.start", "op": "proxy",
                         "args": {"host": "localhost", "port": str(echo_port)}}))
        assert envelope(ws.recv(timeout=TIMEOUT))["type"] == "op.ack"
        assert json.loads(ws.recv(timeout=TIMEOUT))["status"] == "connected"
        ws.send(b"quit")
        assert _binary(ws) == b"bye"
        ended = read_op(ws).end
        ws.send(control({"type": "op.start", "op": "proxy",
                         "args": {"host": "example.com", "port": "80"}}))
        remote = read_op(ws).end
        ws.send(control({"type": "op.start", "op": "proxy", "args": {"port": "0"}}))
        bad_port = read_op(ws).end
    assert ended["args"] == {"ok": True}  # a prefixed client keeps its socket
    assert remote["type"] == "op.error" and "localhost" in remote["args"]["error"]
    assert bad_port["type"] == "op.error" and "1 to 65535" in bad_port["args"]["error"]
