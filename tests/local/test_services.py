"""Services (reference section 7) against the real local server, over plain httpx."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LocalServer, start_server
from tests.local.ndjson import stream_events
from tests.local.sandbox_checks import eventually, wait_for_service_line
from tests.local.service_calls import (
    LONG,
    event_types,
    put_service,
    service_host_pid,
    service_state,
    sprite_platform,
    sprite_root,
    svc_path,
)
from tests.local.sprite_procs import alive, sandboxed


def test_list_is_empty_then_shows_service_with_state(http: httpx.Client, sprite: str) -> None:
    assert http.get(svc_path(sprite)).json() == []
    status, _ = put_service(http, sprite, "web", {"cmd": "sh", "args": LONG, "http_port": 8080,
                                                  "env": {"A": "1"}})
    assert status == 200
    [listed] = http.get(svc_path(sprite)).json()
    assert {k: listed[k] for k in ("name", "cmd", "args", "needs", "http_port", "env")} == {
        "name": "web", "cmd": "sh", "args": LONG, "needs": [], "http_port": 8080,
        "env": {"A": "1"}}
    state = listed["state"]
    assert state["name"] == "web" and state["status"] == "running"
    assert isinstance(state["pid"], int) and state["started_at"].endswith("Z")
    assert state["restart_count"] == 0
    assert http.get(svc_path(sprite, "web")).json()["name"] == "web"


def test_unknown_service_and_sprite_are_404(http: httpx.Client, sprite: str) -> None:
    missing = http.get(svc_path(sprite, "nope"))
    assert missing.status_code == 404
    assert missing.json()["message"] == "service not found: nope"
    assert http.get(svc_path("no-such-sprite")).status_code == 404
    assert put_service(http, "no-such-sprite", "web", {"cmd": "true"})[0] == 404
    for op in ("start", "stop", "restart"):
        assert http.post(svc_path(sprite, "nope", op)).status_code == 404
    assert http.get(svc_path(sprite, "nope", "logs")).status_code == 404
    assert http.delete(svc_path(sprite, "nope")).status_code == 404


def test_put_streams_started_output_complete(http: httpx.Client, sprite: str) -> None:
    status, events = put_service(http, sprite, "web", {"cmd": "sh", "args": [
        "-c", "echo hello; echo oops >&2; exec sleep 60"]}, duration="1s")
    assert status == 200
    assert event_types(events)[0] == "started" and event_types(events)[-1] == "complete"
    output = {(e["type"], e["data"]) for e in events if "data" in e}
    assert output == {("stdout", "hello\n"), ("stderr", "oops\n")}
    assert "exit" not in event_types(events)
    assert all(isinstance(e["timestamp"], int) for e in events)
    log = "/.sprite/logs/services/web.log"
    assert events[-1]["log_files"] == {"combined": log, "stdout": log, "stderr": log}


def test_put_of_a_process_that_exits_ends_with_exit(http: httpx.Client, sprite: str) -> None:
    _, events = put_service(http, sprite, "once", {"cmd": "sh", "args": ["-c", "echo bye; exit 3"]},
                            duration="30s")
    assert event_types(events) == ["started", "stdout", "exit", "complete"]
    assert events[2]["exit_code"] == 3


def test_put_of_a_command_that_cannot_start(http: httpx.Client, sprite: str) -> None:
    _, events = put_service(http, sprite, "bad", {"cmd": "/no/such/program"}, duration="2s")
    assert event_types(events) == ["error", "exit", "complete"]
    assert "/no/such/program" in events[0]["data"]
    assert events[1]["exit_code"] == 1
    state = service_state(http, sprite, "bad")
    assert state["status"] == "failed" and "pid" not in state


def test_duration_zero_only_completes_but_starts(http: httpx.Client, sprite: str) -> None:
    _, events = put_service(http, sprite, "web", {"cmd": "sh", "args": LONG}, duration="0")
    assert event_types(events) == ["complete"]
    assert service_state(http, sprite, "web")["status"] == "running"


def test_env_dir_and_home(server: LocalServer, http: httpx.Client, sprite: str) -> None:
    (sprite_root(server, sprite) / "home/sprite/work").mkdir()
    _, events = put_service(http, sprite, "envy", {
        "cmd": "sh", "args": ["-c", 'echo "$GREETING"; pwd; echo "$HOME"'],
        "env": {"GREETING": "hi"}, "dir": "work"}, duration="10s")
    lines = "".join(e["data"] for e in events if e["type"] == "stdout").splitlines(True)
    root = "" if sandboxed(http) else os.path.realpath(sprite_root(server, sprite))
    assert lines == ["hi\n", f"{root}/home/sprite/work\n", f"{root}/home/sprite\n"]
    assert http.get(svc_path(sprite, "envy")).json()["dir"] == "/home/sprite/work"


@pytest.mark.parametrize(("body", "fragment"), [
    ({}, "missing cmd"),
    ({"cmd": 5}, "missing cmd"),
    ({"cmd": "sh", "args": "x"}, "args must be a list"),
    ({"cmd": "sh", "needs": [1]}, "needs must be a list"),
    ({"cmd": "sh", "http_port": 70000}, "http_port"),
    ({"cmd": "sh", "http_port": True}, "http_port"),
    ({"cmd": "sh", "env": {"A": 1}}, "env must be"),
    ({"cmd": "sh", "dir": "../../.."}, "invalid dir"),
    ({"cmd": "sh", "colour": "red"}, "unknown field(s) in service definition: colour"),
    ({"cmd": "sh", "name": "other"}, "differs from the URL"),
    ({"cmd": "sh", "needs": ["db"]}, "dependency not found: db"),
    ({"cmd": "sh", "needs": ["web"]}, "cannot depend on itself"),
])
def test_put_rejects_bad_definitions(http: httpx.Client, sprite: str, body: dict[str, Any],
                                     fragment: str) -> None:
    status, [error] = put_service(http, sprite, "web", body)
    assert status == 400
    assert fragment in error["message"]
    assert http.get(svc_path(sprite)).json() == []


def test_put_rejects_bad_json_and_names(http: httpx.Client, sprite: str) -> None:
    bad_json = http.put(svc_path(sprite, "web"), content=b"{nope")
    assert bad_json.status_code == 400 and "invalid JSON" in bad_json.json()["message"]
    assert http.put(svc_path(sprite, "web"), json=["cmd"]).status_code == 400
    assert http.put(svc_path(sprite, "-bad"), json={"cmd": "sh"}).status_code == 400
    assert http.put(svc_path(sprite, "web"), params={"duration": "soon"},
                    json={"cmd": "sh"}).status_code == 400


def test_cycles_and_second_http_port(http: httpx.Client, sprite: str) -> None:
    assert put_service(http, sprite, "a", {"cmd": "sh", "args": LONG, "http_port": 8000})[0] == 200
    assert put_service(http, sprite, "b", {"cmd": "sh", "args": LONG, "needs": ["a"]})[0] == 200
    status, [error] = put_service(http, sprite, "a", {"cmd": "sh", "args": LONG, "needs": ["b"]})
    assert status == 400 and error["message"] == "circular dependency detected"
    status, [error] = put_service(http, sprite, "c", {"cmd": "sh", "args": LONG, "http_port": 9000})
    assert status == 409 and "another service already has an HTTP port" in error["message"]
    assert put_service(http, sprite, "a", {"cmd": "sh", "args": LONG, "http_port": 9000})[0] == 200


def test_update_restarts_a_running_service(http: httpx.Client, sprite: str) -> None:
    put_service(http, sprite, "web", {"cmd": "sh", "args": ["-c", "echo one; exec sleep 60"]})
    old_pid = service_state(http, sprite, "web")["pid"]
    old_host_pid = service_host_pid(http, sprite, "web")
    _, events = put_service(http, sprite, "web",
                            {"cmd": "sh", "args": ["-c", "echo two; exec sleep 60"]},
                            duration="1s")
    assert event_types(events)[:4] == ["stopping", "stopped", "started", "stdout"]
    assert events[3]["data"] == "two\n" and event_types(events)[-1] == "complete"
    assert service_state(http, sprite, "web")["pid"] != old_pid
    assert not alive(old_host_pid)
    assert http.get(svc_path(sprite, "web")).json()["args"] == ["-c", "echo two; exec sleep 60"]


def test_stream_delivers_started_before_later_output(server: LocalServer, http: httpx.Client,
                                                     sprite: str) -> None:
    gate = sprite_root(server, sprite) / "home/sprite/go"
    script = "while [ ! -f go ]; do sleep 0.05; done; echo after-gate; exec sleep 60"
    with http.stream("PUT", svc_path(sprite, "gated"), params={"duration": "30s"},
                     json={"cmd": "sh", "args": ["-c", script]}) as response:
        lines = response.iter_lines()
        assert json.loads(next(lines))["type"] == "started"
        gate.touch()
        assert json.loads(next(lines)) | {"timestamp": 0} == {
            "type": "stdout", "data": "after-gate\n", "timestamp": 0}


def test_start_runs_needs_first_and_leaves_running_ones(http: httpx.Client, sprite: str) -> None:
    put_service(http, sprite, "db", {"cmd": "sh", "args": LONG})
    put_service(http, sprite, "app", {"cmd": "sh", "args": LONG, "needs": ["db"]})
    stream_events(http, "POST", svc_path(sprite, "app", "stop"))
    stream_events(http, "POST", svc_path(sprite, "db", "stop"))
    assert service_state(http, sprite, "db")["status"] == "stopped"

    status, events = stream_events(http, "POST", svc_path(sprite, "app", "start"),
                                   params={"duration": "0.5s"})
    types = event_types(events)
    assert status == 200 and types[0] == "started" and types[-1] == "complete"
    assert set(types[1:-1]) <= {"stdout"}  # "up" may miss the window under load
    db, app = service_state(http, sprite, "db"), service_state(http, sprite, "app")
    assert db["status"] == app["status"] == "running"
    assert db["started_at"] <= app["started_at"]

    _, again = stream_events(http, "POST", svc_path(sprite, "app", "start"),
                             params={"duration": "0.2s"})
    assert event_types(again) == ["complete"]
    assert service_state(http, sprite, "app")["pid"] == app["pid"]


def test_stop_of_a_needed_service_conflicts(http: httpx.Client, sprite: str) -> None:
    put_service(http, sprite, "db", {"cmd": "sh", "args": LONG})
    put_service(http, sprite, "app", {"cmd": "sh", "args": LONG, "needs": ["db"]})
    status, [error] = stream_events(http, "POST", svc_path(sprite, "db", "stop"))
    assert status == 409
    assert error["message"] == "cannot stop service db: service app depends on it and is running"
    deleted = http.delete(svc_path(sprite, "db"))
    assert deleted.status_code == 409 and deleted.json()["message"] == "service app depends on db"
    assert service_state(http, sprite, "db")["status"] == "running"


def test_stop_streams_output_and_is_sticky(http: httpx.Client, sprite: str) -> None:
    script = 'trap "echo bye; exit 0" TERM; echo up; while true; do sleep 0.05; done'
    put_service(http, sprite, "web", {"cmd": "sh", "args": ["-c", script]}, duration="0.3s")
    wait_for_service_line(http, sprite, "web", "up\n")
    status, events = stream_events(http, "POST", svc_path(sprite, "web", "stop"))
    assert status == 200
    types = event_types(events)
    assert types[0] == "stopping" and types[-2:] == ["stopped", "complete"]
    assert [e["data"] for e in events if e["type"] == "stdout"] == ["bye\n"]
    assert events[-2]["exit_code"] == 0
    status, [error] = stream_events(http, "POST", svc_path(sprite, "web", "stop"))
    assert status == 409 and error["message"] == "service is not running: web"
    time.sleep(1.0)  # longer than the first crash-restart backoff (0.5 s)
    state = service_state(http, sprite, "web")
    assert state["status"] == "stopped" and state["restart_count"] == 0


def test_stop_kills_after_timeout(http: httpx.Client, sprite: str) -> None:
    put_service(http, sprite, "stubborn", {"cmd": "sh", "args": ["-c", 'trap "" TERM; echo up; '
                                                                       'exec sleep 60']})
    eventually(lambda: any(e.get("data") == "up\n" for e in stream_events(
        http, "GET", svc_path(sprite, "stubborn", "logs"))[1]), "the TERM trap to be set")
    _, events = stream_events(http, "POST", svc_path(sprite, "stubborn", "stop"),
                              params={"timeout": "0.3s"})
    assert event_types(events) == ["stopping", "stopped", "complete"]
    assert events[1]["exit_code"] == 137


def test_crash_is_restarted_with_backoff(http: httpx.Client, sprite: str) -> None:
    put_service(http, sprite, "flaky", {"cmd": "sh", "args": ["-c", "echo run; sleep 0.2; exit 2"]})
    failed = eventually(
        lambda: (s := service_state(http, sprite, "flaky"))["status"] == "failed" and s,
        "the first crash")
    assert failed["error"] == "exited with code 2" and failed["next_restart_at"].endswith("Z")
    eventually(lambda: service_state(http, sprite, "flaky")["restart_count"] >= 2, "two restarts")

    def runs() -> list[str]:
        _, logs = stream_events(http, "GET", svc_path(sprite, "flaky", "logs"))
        return [e["data"] for e in logs if e["type"] == "stdout"]
    eventually(lambda: len(runs()) >= 3, "the second restart's output")
    assert runs()[:3] == ["run\n"] * 3


def test_signal_kill_counts_as_crash(http: httpx.Client, sprite: str) -> None:
    put_service(http, sprite, "web", {"cmd": "sh", "args": LONG})
    pid = service_state(http, sprite, "web")["pid"]
    host = service_host_pid(http, sprite, "web")
    response = http.post(svc_path(sprite, "signal"), json={"name": "web", "signal": "SIGKILL"})
    assert response.status_code == 204 and response.content == b""
    eventually(lambda: not alive(host), "the killed service to exit")  # the signal is sent
    state = eventually(lambda: (s := service_state(http, sprite, "web"))["restart_count"] == 1
                       and s["status"] == "running" and s, "the automatic restart")
    assert state["pid"] != pid


def test_signal_is_delivered_and_errors(http: httpx.Client, sprite: str) -> None:
    script = 'trap "echo got-hup" HUP; echo up; while true; do sleep 0.05; done'
    put_service(http, sprite, "web", {"cmd": "sh", "args": ["-c", script]}, duration="0.3s")
    wait_for_service_line(http, sprite, "web", "up\n")
    assert http.post(svc_path(sprite, "signal"), json={"name": "web", "signal": "hup"}
                     ).status_code == 204
    eventually(lambda: any(e.get("data") == "got-hup\n" for e in stream_events(
        http, "GET", svc_path(sprite, "web", "logs"))[1]), "the HUP trap's output")
    cases = [({"signal": "HUP"}, 400), ({"name": "web"}, 400),
             ({"name": "web", "signal": "FOO"}, 400), ({"name": "nope", "signal": "HUP"}, 404)]
    for body, code in cases:
        assert http.post(svc_path(sprite, "signal"), json=body).status_code == code, body
    stream_events(http, "POST", svc_path(sprite, "web", "stop"))
    assert http.post(svc_path(sprite, "signal"), json={"name": "web", "signal": "TERM"}
                     ).status_code == 409


def test_restart_stops_then_starts(http: httpx.Client, sprite: str) -> None:
    put_service(http, sprite, "web", {"cmd": "sh", "args": LONG})
    eventually(lambda: any(e.get("data") == "up\n" for e in stream_events(
        http, "GET", svc_path(sprite, "web", "logs"))[1]), "the first run's output")
    _, events = stream_events(http, "POST", svc_path(sprite, "web", "restart"),
                              params={"duration": "0.5s"})
    # "up" is printed once the new process runs; under load it may come after the window
    types = event_types(events)
    assert types[:3] == ["stopping", "stopped", "started"] and types[-1] == "complete"
    assert set(types[3:-1]) <= {"stdout"}
    stream_events(http, "POST", svc_path(sprite, "web", "stop"))
    _, events = stream_events(http, "POST", svc_path(sprite, "web", "restart"),
                              params={"duration": "0.5s"})
    types = event_types(events)
    assert types[0] == "started" and types[-1] == "complete" and set(types[1:-1]) <= {"stdout"}


def test_delete_stops_and_keeps_the_log(server: LocalServer, http: httpx.Client,
                                        sprite: str) -> None:
    put_service(http, sprite, "web", {"cmd": "sh", "args": LONG}, duration="0.3s")
    host = service_host_pid(http, sprite, "web")
    response = http.delete(svc_path(sprite, "web"))
    assert response.status_code == 204 and response.content == b""
    assert not alive(host)
    assert http.get(svc_path(sprite, "web")).status_code == 404
    assert http.delete(svc_path(sprite, "web")).status_code == 404
    assert (sprite_platform(server, sprite) / "logs/services/web.log").exists()
    assert not (sprite_platform(server, sprite) / "services/web.json").exists()


def test_boot_starts_services_and_ends_orphans(tmp_path: Path) -> None:
    local = start_server(tmp_path / "home")
    try:
        with local.http() as http:
            assert http.post("/v1/sprites", json={"name": "boot"}).status_code == 201
            put_service(http, "boot", "db", {"cmd": "sh", "args": LONG})
            put_service(http, "boot", "app", {"cmd": "sh", "args": LONG, "needs": ["db"]})
            put_service(http, "boot", "idle", {"cmd": "sh", "args": LONG})
            stream_events(http, "POST", svc_path("boot", "idle", "stop"))
            first = [service_host_pid(http, "boot", name) for name in ("db", "app")]
            in_sandbox = sandboxed(http)
        local.stop()
        assert not any(alive(pid) for pid in first)

        local = start_server(tmp_path / "home")
        with local.http() as http:
            states = {name: service_state(http, "boot", name) for name in ("db", "app", "idle")}
            second = [service_host_pid(http, "boot", name) for name in ("db", "app")]
        assert states["db"]["status"] == states["app"]["status"] == "running"
        assert states["db"]["started_at"] <= states["app"]["started_at"]
        assert states["idle"]["status"] == "stopped"

        local.stop(kill=True)
        if in_sandbox:  # the sandbox's init dies with the server, and its processes with it
            eventually(lambda: not any(alive(pid) for pid in second), "the sandbox to end")
        else:  # unsandboxed, orphans outlive the server, and its next start ends them
            assert all(alive(pid) for pid in second)
        local = start_server(tmp_path / "home")
        eventually(lambda: not any(alive(pid) for pid in second), "the orphans to be ended")
        with local.http() as http:
            assert service_state(http, "boot", "db")["status"] == "running"
    finally:
        local.stop()


def test_restore_brings_back_the_definitions_and_restarts_them(http: httpx.Client,
                                                               sprite: str) -> None:
    put_service(http, sprite, "db", {"cmd": "sh", "args": LONG})
    put_service(http, sprite, "app", {"cmd": "sh", "args": LONG, "needs": ["db"]})
    put_service(http, sprite, "idle", {"cmd": "sh", "args": LONG})
    stream_events(http, "POST", svc_path(sprite, "idle", "stop"))
    status, made = stream_events(http, "POST", f"/v1/sprites/{sprite}/checkpoint", json={})
    assert status == 200 and made[-1]["type"] == "complete"
    checkpoint = made[-1]["data"].split()[1]
    before = [service_host_pid(http, sprite, name) for name in ("db", "app")]
    put_service(http, sprite, "app", {"cmd": "sh", "args": ["-c", "echo changed; exec sleep 60"]})
    put_service(http, sprite, "extra", {"cmd": "sh", "args": LONG})
    extra_pid = service_host_pid(http, sprite, "extra")

    status, restored = stream_events(
        http, "POST", f"/v1/sprites/{sprite}/checkpoints/{checkpoint}/restore")
    assert status == 200 and restored[-1]["type"] == "complete"
    listed = {s["name"]: s for s in http.get(svc_path(sprite)).json()}
    assert sorted(listed) == ["app", "db", "idle"]
    assert listed["app"]["needs"] == ["db"] and listed["app"]["args"] == LONG
    assert listed["db"]["state"]["status"] == listed["app"]["state"]["status"] == "running"
    assert listed["db"]["state"]["started_at"] <= listed["app"]["state"]["started_at"]
    assert listed["idle"]["state"]["status"] == "stopped"
    assert not alive(extra_pid) and not any(alive(pid) for pid in before)


