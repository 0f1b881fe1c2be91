"""Exec sessions against the real server: detach, list, attach with scrollback, kill (section 4)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import LocalServer
from tests.local.exec_ws import (
    RECV_TIMEOUT,
    open_attach,
    open_exec,
    read_to_close,
    session_info,
)
from tests.local.ndjson import stream_events

WAIT = 60.0


def eventually(condition: Callable[[], bool]) -> None:
    """Poll until ``condition`` holds; fail after a generous deadline (not a timing assert)."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


def detached(server: LocalServer, sprite: str, script: str, *, ready: bytes = b"ready",
             **params: object) -> str:
    """Start ``sh -c script``, read up to ``ready``, disconnect; return the session id."""
    params.setdefault("max_run_after_disconnect", "60s")
    with open_exec(server, sprite, ["sh", "-c", script], **params) as ws:
        sid = session_info(ws)["session_id"]
        seen = b""
        while ready not in seen:
            frame = ws.recv(timeout=RECV_TIMEOUT)
            seen += frame[1:] if params.get("tty") != "true" else frame
    return sid


def session_ids(http: httpx.Client, sprite: str) -> list[str]:
    return [s["id"] for s in http.get(f"/v1/sprites/{sprite}/exec").json()["sessions"]]


def test_disconnect_list_attach_and_kill(server: LocalServer, http: httpx.Client,
                                         sprite: str) -> None:
    sid = detached(server, sprite, "echo ready; echo oops >&2; sleep 60")
    listing = http.get(f"/v1/sprites/{sprite}/exec").json()
    assert listing["count"] == 1
    (entry,) = listing["sessions"]
    assert entry["id"] == sid
    assert entry["command"].endswith("sh -c echo ready; echo oops >&2; sleep 60")
    assert entry["command"].startswith("/")
    assert (entry["workdir"], entry["tty"]) == ("/home/sprite", False)
    assert entry["created"].endswith("Z") and entry["last_activity"].endswith("Z")
    assert isinstance(entry["bytes_per_second"], int)
    assert isinstance(entry["is_active"], bool)
    assert http.get(f"/v1/sprites/{sprite}/exec/{sid}").json()["id"] == sid

    with open_attach(server, sprite, sid) as ws:
        info = session_info(ws)
        assert (info["session_id"], info["is_owner"], info["tty"]) == (sid, False, False)
        assert ws.recv(timeout=RECV_TIMEOUT) == b"\x01ready\n"
        assert ws.recv(timeout=RECV_TIMEOUT) == b"\x02oops\n"
        status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/exec/{sid}/kill")
        transcript = read_to_close(ws)
    assert status == 200
    assert [e["type"] for e in events] == ["signal", "exited", "complete"]
    assert (events[0]["signal"], events[0]["pid"]) == ("SIGTERM", int(sid))
    assert events[-1]["exit_code"] == 143
    assert transcript.messages == [b"\x03\x8f"]
    assert transcript.close_code == 1000

    assert sid not in session_ids(http, sprite)
    assert http.get(f"/v1/sprites/{sprite}/exec/{sid}").status_code == 404
    gone = http.post(f"/v1/sprites/{sprite}/exec/{sid}/kill")
    assert gone.status_code == 410
    with pytest.raises(InvalidStatus) as refused:
        open_attach(server, sprite, sid)
    assert refused.value.response.status_code == 404


def test_kill_escalates_to_sigkill_when_term_is_ignored(server: LocalServer, http: httpx.Client,
                                                        sprite: str) -> None:
    sid = detached(server, sprite, "trap '' TERM; echo ready; sleep 60")
    status, events = stream_events(
        http, "POST", f"/v1/sprites/{sprite}/exec/{sid}/kill?signal=term&timeout=300ms")
    assert status == 200
    assert [e["type"] for e in events] == ["signal", "timeout", "killed", "complete"]
    assert events[-1]["exit_code"] == 137


def test_kill_reads_a_json_body_as_fallback(server: LocalServer, http: httpx.Client,
                                            sprite: str) -> None:
    # exec: no shell waits for sleep, so a SIGINT cannot race the fork (exit 130 either way)
    sid = detached(server, sprite, "echo ready; exec sleep 60")
    status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/exec/{sid}/kill",
                                   json={"signal": "SIGINT", "timeout": 10})
    assert status == 200
    assert events[0]["signal"] == "SIGINT"
    assert events[-1] == {"type": "complete", "exit_code": 130}


def test_kill_errors_come_before_streaming(server: LocalServer, http: httpx.Client,
                                           sprite: str) -> None:
    sid = detached(server, sprite, "echo ready; sleep 60")
    base = f"/v1/sprites/{sprite}/exec"
    assert http.post(f"{base}/{sid}/kill?signal=SIGBOGUS").status_code == 400
    assert http.post(f"{base}/{sid}/kill?timeout=forever").status_code == 400
    assert http.post(f"{base}/999999999/kill").status_code == 404
    assert http.get(f"{base}/999999999").json()["message"] == "session not found: 999999999"
    assert sid in session_ids(http, sprite)
    assert http.post(f"{base}/{sid}/kill?signal=KILL").status_code == 200


def test_attach_by_legacy_query_form_and_several_attachers(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    sid = detached(server, sprite, "echo ready; cat", stdin="true")
    with open_attach(server, sprite, sid) as first, \
            open_attach(server, sprite, sid, legacy=True) as second:
        for ws in (first, second):
            assert session_info(ws)["is_owner"] is False
            assert ws.recv(timeout=RECV_TIMEOUT) == b"\x01ready\n"
        second.send(b"\x00from second\n")
        first.send(b"\x00from first\n")
        for ws in (first, second):
            seen = b""
            while seen.count(b"\n") < 2:
                frame = ws.recv(timeout=RECV_TIMEOUT)
                assert frame[:1] == b"\x01"
                seen += frame[1:]
            assert sorted(seen.splitlines()) == [b"from first", b"from second"]
        first.send(b"\x04")
        transcripts = [read_to_close(first), read_to_close(second)]
    assert all(t.messages == [b"\x03\x00"] and t.close_code == 1000 for t in transcripts)
    with pytest.raises(InvalidStatus) as refused:
        open_attach(server, sprite, "424242", legacy=True)
    assert refused.value.response.status_code == 404


def test_tty_session_reattaches_with_raw_scrollback(server: LocalServer, http: httpx.Client,
                                                    sprite: str) -> None:
    sid = detached(server, sprite, "echo ready; read line; echo got $line", tty="true")
    assert http.get(f"/v1/sprites/{sprite}/exec").json()["sessions"][0]["tty"] is True
    with open_attach(server, sprite, sid) as ws:
        info = session_info(ws)
        assert (info["tty"], info["rows"], info["cols"]) == (True, 24, 80)
        replay = ws.recv(timeout=RECV_TIMEOUT)
        assert isinstance(replay, bytes) and replay.startswith(b"ready")
        ws.send(b"again\r")
        transcript = read_to_close(ws)
    assert b"got again" in transcript.raw
    assert json.loads(transcript.messages[-1]) == {"type": "exit", "exit_code": 0}


def test_scrollback_keeps_about_the_last_mebibyte(server: LocalServer, http: httpx.Client,
                                                  sprite: str) -> None:
    sid = detached(server, sprite, "seq 1 400000; echo ready; sleep 60")
    with open_attach(server, sprite, sid) as ws:
        session_info(ws)
        replay = b""
        while not replay.endswith(b"ready\n"):
            replay += ws.recv(timeout=RECV_TIMEOUT)[1:]
    total = sum(len(f"{n}\n") for n in range(1, 400001)) + len(b"ready\n")
    assert 1024 * 1024 <= len(replay) < total
    assert replay.endswith(b"399999\n400000\nready\n")
    assert http.post(f"/v1/sprites/{sprite}/exec/{sid}/kill?signal=KILL").status_code == 200


def test_max_run_after_disconnect_kills_the_detached_process(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    # listed still, within a countdown of 3 s (a loaded machine can take a second to ask)
    sid = detached(server, sprite, "echo ready; sleep 60", max_run_after_disconnect="3s")
    assert sid in session_ids(http, sprite)
    eventually(lambda: sid not in session_ids(http, sprite))


def test_reattaching_stops_the_disconnect_countdown(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    # the reattach must come within the countdown (3 s, not 1 s: a loaded machine can take
    # a second to connect); the process outlives it
    sid = detached(server, sprite, "echo ready; sleep 4; echo done", max_run_after_disconnect="3s")
    with open_attach(server, sprite, sid) as ws:
        session_info(ws)
        transcript = read_to_close(ws)
    assert transcript.stream(1) == b"ready\ndone\n"
    assert transcript.messages[-1] == b"\x03\x00"


def test_deleting_the_sprite_ends_attached_sockets_with_137(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    with open_exec(server, sprite, ["sh", "-c", "echo ready; sleep 60"]) as ws:
        session_info(ws)
        assert ws.recv(timeout=RECV_TIMEOUT) == b"\x01ready\n"
        assert http.delete(f"/v1/sprites/{sprite}").status_code == 204
        transcript = read_to_close(ws)
    assert transcript.messages == [b"\x03\x89"]
    assert transcript.close_code == 1000


def test_sessions_of_an_unknown_sprite_are_404(server: LocalServer, http: httpx.Client) -> None:
    assert http.get("/v1/sprites/no-such-sprite/exec").status_code == 404
    with pytest.raises(InvalidStatus) as refused:
        open_attach(server, "no-such-sprite", "1")
    assert refused.value.response.status_code == 404
    with pytest.raises(InvalidStatus):
        open_exec(server, "no-such-sprite", ["true"])


def test_port_opened_and_closed_messages(server: LocalServer, sprite: str) -> None:
    script = ("import socket, sys\n"
              "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
              "print(s.getsockname()[1], flush=True); sys.stdin.readline(); s.close()\n"
              "sys.stdin.readline()\n")
    with open_exec(server, sprite, ["python3", "-c", script], stdin="true") as ws:
        pid = int(session_info(ws)["session_id"])
        port = int(ws.recv(timeout=RECV_TIMEOUT)[1:])
        opened = json.loads(ws.recv(timeout=RECV_TIMEOUT))
        assert opened == {"type": "port_opened", "port": port, "address": "127.0.0.1",
                          "pid": pid}
        ws.send(b"\x00close\n")
        closed = json.loads(ws.recv(timeout=RECV_TIMEOUT))
        assert closed == {**opened, "type": "port_closed"}
        ws.send(b"\x04")
        assert read_to_close(ws).messages == [b"\x03\x00"]


def test_http_exec_client_leaving_starts_the_countdown(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    params = {"cmd": ["sh", "-c", "echo ready; sleep 60"], "max_run_after_disconnect": "1s"}
    with http.stream("POST", f"/v1/sprites/{sprite}/exec", params=params) as response:
        assert next(response.iter_raw()) == b"\x01ready\n"
        (sid,) = session_ids(http, sprite)
    eventually(lambda: sid not in session_ids(http, sprite))
