"""The control connection against the real server: envelope, exec in both SDK framings,
attach, errors, and pooling (reference section 5)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import LocalServer
from tests.local.control_client import (
    TIMEOUT,
    GoStyle,
    JsStyle,
    OpResult,
    control,
    envelope,
    open_control,
    read_op,
)
from tests.local.exec_ws import open_exec, session_info


def test_unknown_sprite_is_refused_at_the_upgrade(server: LocalServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_control(server, "no-such-sprite")
    assert refused.value.response.status_code == 404


def test_go_exec_frames_and_exit(server: LocalServer, sprite: str) -> None:
    with open_control(server, sprite) as ws:
        result = GoStyle(ws).exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert [c["type"] for c in result.controls] == ["op.ack", "op.complete"]
    assert result.end["args"] == {"ok": True, "exitCode": 3}
    assert result.info["tty"] is False and result.info["session_id"].isdigit()
    assert result.stream(1) == b"out\n" and result.stream(2) == b"err\n"
    assert result.data[-1] == b"\x03\x03"  # the exit frame, after all output


def test_correlation_id_is_echoed(server: LocalServer, sprite: str) -> None:
    with open_control(server, sprite) as ws:
        JsStyle(ws).start_exec(["true"], op_id="op-7")
        ws.send(b"\x04")
        result = read_op(ws)
    assert {c.get("id") for c in result.controls} == {"op-7"}


def test_go_raw_stdin_and_single_byte_eof(server: LocalServer, sprite: str) -> None:
    with open_control(server, sprite) as ws:
        # a raw chunk that starts with NUL: sprites-go names path, so it is data, not a prefix
        result = GoStyle(ws).exec(["od", "-An", "-c"], stdin=b"\x00ab")
    assert result.stream(1).split() == [b"\\0", b"a", b"b"]
    assert result.end["args"]["exitCode"] == 0


def test_js_prefixed_stdin_frames(server: LocalServer, sprite: str) -> None:
    with open_control(server, sprite) as ws:
        client = JsStyle(ws)
        client.start_exec(["cat"])
        for frame in (b"\x00abc", b"\x00", b"\x00def", b"\x04"):
            ws.send(frame)
        result = read_op(ws)
    assert result.stream(1) == b"abcdef"
    assert result.end["args"]["exitCode"] == 0


def test_tty_exec_reports_exit_as_text_and_in_complete(server: LocalServer, sprite: str
                                                       ) -> None:
    with open_control(server, sprite) as ws:
        client = GoStyle(ws)
        client.start_exec(["sh", "-c", "read line; echo got $line; exit 5"], tty=True,
                          stdin=True)
        ws.send(b"hi\r")
        result = read_op(ws)
        client.release()
    assert result.info["tty"] is True
    assert b"got hi" in result.raw
    assert {"type": "exit", "exit_code": 5} in result.texts()
    assert result.end["args"]["exitCode"] == 5


def test_signal_text_and_js_binary_resize(server: LocalServer, sprite: str) -> None:
    with open_control(server, sprite) as ws:
        client = JsStyle(ws)
        client.start_exec(["sh", "-c", "stty size; sleep 1; stty size; sleep 30"],
                          tty=True, rows="24", cols="80")
        started = OpResult()
        while b"24 80" not in started.raw:
            frame = ws.recv(timeout=TIMEOUT)
            (started.controls if envelope(frame) else started.data).append(
                envelope(frame) or frame)
        ws.send(json.dumps({"type": "resize", "cols": 100, "rows": 40}).encode())
        while b"40 100" not in started.raw:
            started.data.append(ws.recv(timeout=TIMEOUT))
        ws.send(json.dumps({"type": "signal", "signal": "TERM"}))
        result = read_op(ws, started)
    assert started.controls[0]["type"] == "op.ack"
    assert result.end["args"]["exitCode"] == 143


def test_attach_learns_tty_from_session_info(server: LocalServer, sprite: str) -> None:
    with open_exec(server, sprite, ["sh", "-c", "echo ready; sleep 30"], tty="true") as owner:
        sid = session_info(owner)["session_id"]
        assert b"ready" in owner.recv(timeout=TIMEOUT)
        with open_control(server, sprite) as ws:
            client = GoStyle(ws)
            client.start_exec([], attach=sid)  # no tty argument: the session says
            assert envelope(ws.recv(timeout=TIMEOUT))["type"] == "op.ack"
            info = json.loads(ws.recv(timeout=TIMEOUT))
            assert info["type"] == "session_info"
            assert (info["tty"], info["session_id"], info["is_owner"]) == (True, sid, False)
            assert b"ready" in ws.recv(timeout=TIMEOUT)  # scrollback, after session_info
            httpx.post(f"{server.url}/v1/sprites/{sprite}/exec/{sid}/kill",
                       params={"signal": "KILL", "timeout": "5s"}, headers=server.headers)
            result = read_op(ws)
    assert result.end["args"]["exitCode"] == 137


def test_attach_to_unknown_session_is_op_not_found(server: LocalServer, sprite: str) -> None:
    with open_control(server, sprite) as ws:
        JsStyle(ws).start_exec([], id="999999")
        result = read_op(ws)
    assert result.end["type"] == "op.error"
    assert result.end["args"]["code"] == "op.not_found"
    assert "999999" in result.end["args"]["error"] == result.end["args"]["message"]


def test_missing_command_fails_the_op_and_ends_the_exec_frames(server: LocalServer,
                                                               sprite: str) -> None:
    with open_control(server, sprite) as ws:
        ws.send(control({"type": "op.start", "op": "exec", "args": {"dir": "/"}}))
        result = read_op(ws)
        again = GoStyle(ws).exec(["echo", "still usable"])
    assert result.end["type"] == "op.error"
    assert "No command specified" in result.end["args"]["error"]
    assert result.data[-1] == b"\x03\x01"  # sprites-go reads only exec frames: it ends too
    assert again.stream(1) == b"still usable\n"


def test_command_not_found_exits_127(server: LocalServer, sprite: str) -> None:
    with open_control(server, sprite) as ws:
        result = GoStyle(ws).exec(["no-such-program-xyz"])
    assert result.end["args"] == {"ok": True, "exitCode": 127}
    assert b"no-such-program-xyz" in result.stream(2)


def test_busy_unknown_op_and_not_active(server: LocalServer, sprite: str) -> None:
    with open_control(server, sprite) as ws:
        ws.send(b"\x00stray")
        idle = envelope(ws.recv(timeout=TIMEOUT))
        ws.send(control({"type": "op.start", "op": "teleport", "id": "x"}))
        unknown = read_op(ws).end
        client = JsStyle(ws)
        client.start_exec(["sleep", "30"], op_id="first")
        assert envelope(ws.recv(timeout=TIMEOUT))["type"] == "op.ack"
        ws.send(control({"type": "op.start", "op": "exec", "id": "second",
                         "args": {"cmd": ["true"]}}))
        busy = envelope(ws.recv(timeout=TIMEOUT))
        ws.send(json.dumps({"type": "signal", "signal": "KILL"}))
        first = read_op(ws).end
    assert idle["type"] == "op.error" and idle["args"]["code"] == "op.not_active"
    assert (unknown["type"], unknown["id"], unknown["args"]["code"]) == (
        "op.error", "x", "op.not_found")
    assert (busy["type"], busy["id"], busy["args"]["code"]) == ("op.error", "second", "op.busy")
    assert (first["id"], first["args"]["exitCode"]) == ("first", 137)


@pytest.mark.parametrize("frame", [
    "control:not json",
    "control:[1, 2]",
    'control:{"type": "op.start"}',
    'control:{"type": "op.start", "op": "exec", "args": {"cmd": [{"x": 1}]}}',
    'control:{"type": "op.start", "op": "exec", "args": 7}',
])
def test_malformed_frames_get_op_error_and_the_socket_stays_usable(
        server: LocalServer, sprite: str, frame: str) -> None:
    with open_control(server, sprite) as ws:
        ws.send(frame)
        answer = envelope(ws.recv(timeout=TIMEOUT))
        after = GoStyle(ws).exec(["echo", "ok"])
    assert answer["type"] == "op.error" and answer["args"]["error"]
    assert after.stream(1) == b"ok\n"


def test_release_between_ops_gets_no_answer(server: LocalServer, sprite: str) -> None:
    with open_control(server, sprite) as ws:
        client = GoStyle(ws)
        client.release()
        client.release()
        result = client.exec(["echo", "next"])
    assert result.controls[0]["type"] == "op.ack"  # nothing was queued before it
    assert result.stream(1) == b"next\n"


def test_release_during_exec_detaches(server: LocalServer, sprite: str) -> None:
    with open_control(server, sprite) as ws:
        client = GoStyle(ws)
        client.start_exec(["sleep", "30"])
        assert envelope(ws.recv(timeout=TIMEOUT))["type"] == "op.ack"
        sid = json.loads(ws.recv(timeout=TIMEOUT))["session_id"]
        client.release()
        end = read_op(ws).end
        listed = httpx.get(f"{server.url}/v1/sprites/{sprite}/exec",
                           headers=server.headers).json()["sessions"]
        httpx.post(f"{server.url}/v1/sprites/{sprite}/exec/{sid}/kill",
                   params={"signal": "KILL", "timeout": "5s"}, headers=server.headers)
    assert end["args"] == {"ok": True, "detached": True}
    assert sid in [s["id"] for s in listed]  # the process outlives the op, as on exec


def test_fifty_sequential_ops_on_one_socket(server: LocalServer, sprite: str) -> None:
    with open_control(server, sprite) as ws:
        go, js = GoStyle(ws), JsStyle(ws)
        results: list[OpResult] = [
            (go if i % 2 else js).exec(["sh", "-c", f"echo {i}; exit {i % 7}"])
            for i in range(50)]
    assert [r.stream(1) for r in results] == [f"{i}\n".encode() for i in range(50)]
    assert [r.end["args"]["exitCode"] for r in results] == [i % 7 for i in range(50)]


def test_execs_keep_last_running_at_current(server: LocalServer, sprite: str,
                                            http: httpx.Client) -> None:
    """A loop of commands writes ``last_running_at`` at most once a second, yet a sprite
    that ran is warm at once and its time follows the latest runs."""
    assert http.get(f"/v1/sprites/{sprite}").json()["status"] == "cold"
    with open_control(server, sprite) as ws:
        GoStyle(ws).exec(["true"])
        first = http.get(f"/v1/sprites/{sprite}").json()
        assert first["status"] == "warm" and first["last_running_at"]
        for _ in range(5):
            GoStyle(ws).exec(["true"])
        time.sleep(1.1)  # past the interval: the next run is recorded again
        GoStyle(ws).exec(["true"])
    later = http.get(f"/v1/sprites/{sprite}").json()["last_running_at"]
    assert later > first["last_running_at"]


def test_twenty_sockets_at_once_on_one_sprite(server: LocalServer, sprite: str) -> None:
    def one(i: int) -> bytes:
        with open_control(server, sprite) as ws:
            client = GoStyle(ws)
            first = client.exec(["sh", "-c", f"sleep 0.5; echo a{i}"])
            second = client.exec(["cat"], stdin=f"b{i}".encode())
            return first.stream(1) + second.stream(1)

    with ThreadPoolExecutor(20) as pool:
        outputs = list(pool.map(one, range(20)))
    assert outputs == [f"a{i}\nb{i}".encode() for i in range(20)]


def test_op_in_the_query_starts_at_connect(server: LocalServer, sprite: str) -> None:
    url = (f"{server.ws_url}/v1/sprites/{sprite}/control?op=exec&cmd=sh&cmd=-c"
           "&cmd=echo+from+query")
    with connect(url, additional_headers=server.headers) as ws:
        result = read_op(ws)
        after = GoStyle(ws).exec(["echo", "next"])
    assert result.stream(1) == b"from query\n" and result.end["args"]["exitCode"] == 0
    assert after.stream(1) == b"next\n"


def test_leaving_mid_op_detaches_and_another_socket_attaches(server: LocalServer,
                                                             sprite: str) -> None:
    with open_control(server, sprite) as ws:
        GoStyle(ws).start_exec(["sh", "-c", "echo started; sleep 30"],
                               max_run_after_disconnect="0")
        assert envelope(ws.recv(timeout=TIMEOUT))["type"] == "op.ack"
        sid = json.loads(ws.recv(timeout=TIMEOUT))["session_id"]
        assert ws.recv(timeout=TIMEOUT) == b"\x01started\n"
    with open_control(server, sprite) as ws:
        client = JsStyle(ws)
        client.start_exec([], id=sid)
        assert envelope(ws.recv(timeout=TIMEOUT))["type"] == "op.ack"
        assert json.loads(ws.recv(timeout=TIMEOUT))["session_id"] == sid
        ws.send(json.dumps({"type": "signal", "signal": "KILL"}))
        result = read_op(ws)
    assert result.stream(1) == b"started\n"  # the scrollback, replayed to the new socket
    assert result.end["args"]["exitCode"] == 137
