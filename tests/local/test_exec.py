"""Exec over WebSocket and HTTP against the real server: the frames byte by byte (section 3)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from sprites_jupyter.local.runtime.egress.sprite_egress import PROXY_ENV
from tests.conftest import LocalServer
from tests.local.exec_ws import (
    RECV_TIMEOUT,
    exec_url,
    open_exec,
    read_to_close,
    run,
    session_info,
    sprite_root,
)
from tests.local.sprite_procs import host_pid, sandboxed

ENV = shutil.which("env")


def test_echo_frames_byte_by_byte(server: LocalServer, sprite: str) -> None:
    with open_exec(server, sprite, ["echo", "hello"]) as ws:
        assert "signal" in ws.response.headers["X-Sprite-Capabilities"]
        info = session_info(ws)
        transcript = read_to_close(ws)
    assert info["session_id"].isdigit() and isinstance(info["session_id"], str)
    assert info["command"] == "echo hello"
    assert (info["is_owner"], info["tty"], info["cols"], info["rows"]) == (True, False, 0, 0)
    assert isinstance(info["created"], int)
    assert transcript.messages == [b"\x01hello\n", b"\x03\x00"]
    assert transcript.close_code == 1000


def test_stdout_and_stderr_are_separate_streams(server: LocalServer, sprite: str) -> None:
    _, transcript = run(server, sprite, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert transcript.stream(1) == b"out\n"
    assert transcript.stream(2) == b"err\n"
    assert transcript.messages[-1] == b"\x03\x03"
    assert all(isinstance(m, bytes) and m[:1] in (b"\x01", b"\x02") for m in
               transcript.messages[:-1])


def test_stdin_frames_and_eof(server: LocalServer, sprite: str) -> None:
    _, transcript = run(server, sprite, ["cat"], stdin="true",
                        send=[b"\x00abc", b"\x00", b"\x00def", b"\x04"])
    assert transcript.stream(1) == b"abcdef"
    assert transcript.messages[-1] == b"\x03\x00"


def test_without_stdin_the_process_reads_eof_and_input_is_discarded(
        server: LocalServer, sprite: str) -> None:
    with open_exec(server, sprite, ["sh", "-c", "echo ready; sleep 1; cat"]) as ws:
        session_info(ws)
        assert ws.recv(timeout=RECV_TIMEOUT) == b"\x01ready\n"
        ws.send(b"\x00ignored")
        transcript = read_to_close(ws)
    assert transcript.messages == [b"\x03\x00"]


def test_env_replaces_the_environment(server: LocalServer, sprite: str) -> None:
    _, transcript = run(server, sprite, [ENV], env=["FOO=bar", "EMPTY="])
    given = [line for line in transcript.stream(1).decode().splitlines()
             if line.partition("=")[0] not in PROXY_ENV]  # a sandbox's egress proxy, kept
    assert sorted(given) == ["EMPTY=", "FOO=bar"]


def _seen_from_host(http: httpx.Client, server: LocalServer, sprite: str, spath: str) -> str:
    """Where a sprite path is for its processes: itself in a sandbox, under the tree if not."""
    return spath if sandboxed(http) else str(sprite_root(server, sprite)) + spath


def test_default_dir_and_home_are_the_mapped_home(server: LocalServer, http: httpx.Client,
                                                  sprite: str) -> None:
    _, transcript = run(server, sprite, ["sh", "-c", 'pwd; echo "$HOME"; echo "$TERM"'])
    home = _seen_from_host(http, server, sprite, "/home/sprite")
    cwd, home_var, term = transcript.stream(1).decode().splitlines()
    assert os.path.realpath(cwd) == home
    assert os.path.realpath(home_var) == home
    assert term == ""


def test_dir_is_mapped_into_the_sprite(server: LocalServer, http: httpx.Client,
                                       sprite: str) -> None:
    _, transcript = run(server, sprite, ["pwd"], dir="/tmp")
    assert transcript.stream(1).decode().strip() == _seen_from_host(http, server, sprite, "/tmp")


def test_sprite_path_executable_runs_from_the_sprite_tree(
        server: LocalServer, sprite: str) -> None:
    script = sprite_root(server, sprite) / "home" / "sprite" / "hello.sh"
    script.write_text("#!/bin/sh\necho from-the-sprite\n")
    script.chmod(0o755)
    _, transcript = run(server, sprite, ["/home/sprite/hello.sh"])
    assert transcript.stream(1) == b"from-the-sprite\n"


@pytest.mark.parametrize(("script", "code"), [
    ("exit 0", 0), ("exit 3", 3), ("exit 255", 255),
    ("kill -KILL $$", 137), ("kill -TERM $$", 143), ("kill -HUP $$", 129),
])
def test_exit_codes(server: LocalServer, sprite: str, script: str, code: int) -> None:
    _, transcript = run(server, sprite, ["sh", "-c", script])
    assert transcript.messages[-1] == bytes([3, code])
    assert transcript.close_code == 1000


def test_unknown_executable_exits_127_with_a_message(server: LocalServer, sprite: str) -> None:
    info, transcript = run(server, sprite, ["no-such-program-xyz", "arg"])
    assert info["command"] == "no-such-program-xyz arg"
    assert b"no-such-program-xyz: command not found" in transcript.stream(2)
    assert transcript.messages[-1] == b"\x03\x7f"
    assert transcript.close_code == 1000


def test_unknown_executable_in_tty_mode_ends_with_the_exit_message(
        server: LocalServer, sprite: str) -> None:
    with open_exec(server, sprite, ["no-such-program-xyz"], tty="true") as ws:
        assert session_info(ws)["tty"] is True
        transcript = read_to_close(ws)
    assert transcript.raw == b"no-such-program-xyz: command not found\r\n"
    assert json.loads(transcript.messages[-1]) == {"type": "exit", "exit_code": 127}


def test_large_output_is_split_into_frames_of_at_most_256_kib(
        server: LocalServer, sprite: str) -> None:
    _, transcript = run(server, sprite, ["head", "-c", "3000000", "/dev/zero"])
    output = [m for m in transcript.messages if m[:1] == b"\x01"]
    assert len(output) >= 12
    assert max(len(m) for m in output) <= 256 * 1024
    assert transcript.stream(1) == bytes(3000000)
    assert transcript.messages[-1] == b"\x03\x00"


def test_tty_geometry_resize_and_text_exit(server: LocalServer, sprite: str) -> None:
    script = 'stty size; echo "$TERM"; read line; stty size; echo "got $line"'
    with open_exec(server, sprite, ["sh", "-c", script], tty="true", rows=30, cols=100) as ws:
        info = session_info(ws)
        assert (info["tty"], info["rows"], info["cols"]) == (True, 30, 100)
        seen = b""
        while b"xterm-256color" not in seen:
            seen += ws.recv(timeout=RECV_TIMEOUT)
        ws.send(json.dumps({"type": "resize", "rows": 40, "cols": 120}))
        ws.send(b"hi\r")
        transcript = read_to_close(ws)
    assert seen.startswith(b"30 100\r\n")
    assert json.loads(transcript.messages[-1]) == {"type": "exit", "exit_code": 0}
    output = transcript.raw
    assert b"40 120\r\n" in output and b"got hi" in output
    assert transcript.close_code == 1000


def test_tty_exit_code_is_in_the_exit_message(server: LocalServer, sprite: str) -> None:
    with open_exec(server, sprite, ["sh", "-c", "exit 7"], tty="true") as ws:
        session_info(ws)
        transcript = read_to_close(ws)
    assert json.loads(transcript.messages[-1]) == {"type": "exit", "exit_code": 7}


def _wait_for_exec_of(http: httpx.Client, sprite: str, parent: int, program: bytes) -> None:
    """Wait until a child of ``parent`` has exec'd ``program`` (its signal handlers reset)."""
    deadline = time.monotonic() + RECV_TIMEOUT
    children = Path(f"/proc/{host_pid(http, sprite, parent)}/task")
    while time.monotonic() < deadline:
        for task in children.iterdir():
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0] == program:
                        return
        time.sleep(0.01)
    raise AssertionError(f"{program!r} never started under {parent}")


@pytest.mark.parametrize(("name", "code"), [("TERM", 143), ("sigint", 130), ("9", 137)])
def test_signal_message_signals_the_process_group(
        server: LocalServer, http: httpx.Client, sprite: str, name: str, code: int) -> None:
    with open_exec(server, sprite, ["sh", "-c", "echo ready; sleep 60; echo never"]) as ws:
        shell = int(session_info(ws)["session_id"])
        assert ws.recv(timeout=RECV_TIMEOUT) == b"\x01ready\n"
        _wait_for_exec_of(http, sprite, shell, b"sleep")  # else the signal can race the fork
        ws.send(json.dumps({"type": "signal", "signal": name}))
        transcript = read_to_close(ws)
    assert transcript.messages[-1] == bytes([3, code])
    assert b"never" not in transcript.stream(1)


def test_unknown_text_messages_and_signals_are_ignored(server: LocalServer, sprite: str) -> None:
    ignored = ["not json", json.dumps({"type": "hello"}),
               json.dumps({"type": "signal", "signal": "BOGUS"})]
    _, transcript = run(server, sprite, ["cat"], stdin="true",
                        send=[*ignored, b"\x00still here", b"\x04"])
    assert transcript.stream(1) == b"still here"
    assert transcript.messages[-1] == b"\x03\x00"


@pytest.mark.parametrize(("params", "status"), [
    ({}, 400),
    ({"cmd": "true", "dir": "/no/such/dir"}, 400),
    ({"cmd": "true", "dir": "/../.."}, 403),
    ({"cmd": "true", "env": "NOEQUALS"}, 400),
    ({"cmd": "true", "tty": "maybe"}, 400),
    ({"cmd": "true", "max_run_after_disconnect": "soon"}, 400),
])
def test_bad_upgrades_are_refused_with_a_status(
        server: LocalServer, sprite: str, params: dict, status: int) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(exec_url(server, sprite, **params), additional_headers=server.headers)
    assert refused.value.response.status_code == status
    assert json.loads(refused.value.response.body)["message"]


def test_exec_on_an_unknown_sprite_is_404(server: LocalServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(exec_url(server, "no-such-sprite", cmd="true"), additional_headers=server.headers)
    assert refused.value.response.status_code == 404


def test_head_exec_carries_the_sprite_version(http: httpx.Client, sprite: str) -> None:
    response = http.head(f"/v1/sprites/{sprite}/exec")
    assert response.status_code == 200
    assert response.headers["Sprite-Version"]


def test_http_exec_streams_frames_ending_with_the_exit(http: httpx.Client, sprite: str) -> None:
    response = http.post(f"/v1/sprites/{sprite}/exec",
                         params={"cmd": ["sh", "-c", "cat; echo err >&2; exit 4"],
                                 "stdin": "true"},
                         content=b"body bytes")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content.startswith(b"\x01body bytes")
    assert b"\x02err\n" in response.content
    assert response.content[-2:] == b"\x03\x04"


def test_http_exec_without_stdin_ignores_the_body(http: httpx.Client, sprite: str) -> None:
    response = http.post(f"/v1/sprites/{sprite}/exec", params={"cmd": "cat"}, content=b"x")
    assert response.content == b"\x03\x00"


def test_http_exec_unknown_executable(http: httpx.Client, sprite: str) -> None:
    response = http.post(f"/v1/sprites/{sprite}/exec", params={"cmd": "no-such-program-xyz"})
    assert response.status_code == 200
    assert response.content[-2:] == b"\x03\x7f"


@pytest.mark.parametrize("params", [
    {"cmd": "true", "tty": "true"}, {"cmd": "true", "id": "1"},
    {"cmd": "true", "detachable": "true"}, {"cmd": "true", "cc": "true"}, {},
])
def test_http_exec_rejects_socket_only_parameters(
        http: httpx.Client, sprite: str, params: dict) -> None:
    response = http.post(f"/v1/sprites/{sprite}/exec", params=params)
    assert response.status_code == 400
    assert response.json()["message"]
