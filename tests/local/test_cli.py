"""``sprites-local serve`` as a user types it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

READY = "Sprites local server listening on http://127.0.0.1:"


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    exe = shutil.which("sprites-local")
    assert exe, "the sprites-local console script is installed with the package"
    return subprocess.Popen([exe, "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def test_serve_prints_ready_line_and_generates_a_private_token(tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = _serve("--home", str(home), env={"SPRITES_LOCAL_TOKEN": ""})
    try:
        line = process.stdout.readline()
        assert line.startswith(READY)
        url = line.split(" on ")[1].strip()
        token_file = home / "token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert json.loads((home / "server.json").read_text()) == {"pid": process.pid, "url": url}
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/v1/sprites", headers=headers).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert not (home / "server.json").exists()


def test_token_from_environment_wins_over_the_file(tmp_path: Path) -> None:
    process = _serve("--home", str(tmp_path), env={"SPRITES_LOCAL_TOKEN": "from-env"})
    try:
        url = process.stdout.readline().split(" on ")[1].strip()
        ok = httpx.get(f"{url}/v1/sprites", headers={"Authorization": "Bearer from-env"})
        assert ok.status_code == 200
        assert not (tmp_path / "token").exists()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_home_from_environment(tmp_path: Path) -> None:
    process = _serve("--token", "t", env={"SPRITES_LOCAL_HOME": str(tmp_path / "h")})
    try:
        assert process.stdout.readline().startswith(READY)
        assert (tmp_path / "h" / "metadata.sqlite3").exists()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _serve("--home", str(tmp_path), "--token", "t", "--port", str(port))
        _, err = process.communicate(timeout=30)
    assert process.returncode != 0
    assert err.strip().count("\n") == 0
    assert f"cannot listen on 127.0.0.1:{port}" in err


@pytest.mark.parametrize("argv", [["serve", "--port", "x"], ["bogus"]])
def test_bad_arguments_are_usage_errors(argv: list[str]) -> None:
    result = subprocess.run(["sprites-local", *argv], capture_output=True, text=True)
    assert result.returncode == 2
    assert "usage: sprites-local" in result.stderr


def _cli(*args: str, registry: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sprites-local", *args], capture_output=True, text=True,
                          env={**os.environ, "SPRITES_LOCAL_REGISTRY": str(registry)},
                          timeout=60)


def _wait_until(check: Callable[[], bool], limit: float = 60.0) -> bool:
    deadline = time.monotonic() + limit
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def test_status_lists_running_servers_and_stop_stops_one(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    env = {"SPRITES_LOCAL_REGISTRY": str(registry)}
    homes = [tmp_path / "one", tmp_path / "two"]
    processes = [_serve("--home", str(home), "--token", "t", env=env) for home in homes]
    try:
        urls = [process.stdout.readline().split(" on ")[1].strip() for process in processes]
        httpx.post(f"{urls[0]}/v1/sprites", json={"name": "demo"},
                   headers={"Authorization": "Bearer t"}, timeout=60).raise_for_status()
        lines = _cli("status", registry=registry).stdout.splitlines()
        assert lines[0].split() == ["HOME", "URL", "PID", "SPRITES", "UPTIME"]
        table, limits = lines[:lines.index("")], lines[lines.index("") + 1:]
        rows = {line.split()[0]: line.split()[1:] for line in table[1:]}
        assert any(line.startswith(f"  {homes[0]}: ") for line in limits), limits
        assert rows[str(homes[0])][:3] == [urls[0], str(processes[0].pid), "1"]
        assert rows[str(homes[1])][:3] == [urls[1], str(processes[1].pid), "0"]
        assert rows[str(homes[0])][3].isdigit() and rows[str(homes[0])][4] in ("s", "min")

        stopped = _cli("stop", "--home", str(homes[0]), registry=registry)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.startswith(f"Stopped the local Sprites server for {homes[0]} "
                                         f"(pid {processes[0].pid}")
        assert processes[0].wait(timeout=30) is not None
        assert not (homes[0] / "server.json").exists()
        remaining = _cli("status", registry=registry).stdout.split("\n\n")[0].splitlines()[1:]
        assert [line.split()[0] for line in remaining] == [str(homes[1])]
        again = _cli("stop", "--home", str(homes[0]), registry=registry)
        assert again.returncode == 0
        assert again.stdout.startswith(f"No local Sprites server is running for home {homes[0]}")
        assert _cli("stop", "--pid", str(processes[1].pid), registry=registry).returncode == 0
        assert processes[1].wait(timeout=30) is not None
        assert _cli("status", registry=registry).stdout == "No local Sprites server is running.\n"
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


def test_idle_server_exits_by_itself(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    process = _serve("--home", str(tmp_path / "home"), "--token", "t", "--idle-exit", "1",
                     env={"SPRITES_LOCAL_REGISTRY": str(registry)})
    try:
        assert process.stdout.readline().startswith(READY)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert not (tmp_path / "home" / "server.json").exists()
    assert not list(registry.glob("*.json"))


def test_a_running_service_keeps_an_idle_server_alive(tmp_path: Path) -> None:
    process = _serve("--home", str(tmp_path / "home"), "--token", "t", "--idle-exit", "1",
                     env={"SPRITES_LOCAL_REGISTRY": str(tmp_path / "registry")})
    try:
        url = process.stdout.readline().split(" on ")[1].strip()
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer t"},
                          timeout=60) as http:
            http.post("/v1/sprites", json={"name": "busy"}).raise_for_status()
            with http.stream("PUT", "/v1/sprites/busy/services/sleeper",
                             params={"duration": "0"},
                             json={"cmd": "sleep", "args": ["600"]}) as response:
                response.read()
            # Several idle limits pass with only the service running: it must stay up.
            assert not _wait_until(lambda: process.poll() is not None, limit=5.0)
            with http.stream("POST", "/v1/sprites/busy/services/sleeper/stop") as response:
                response.read()
        assert _wait_until(lambda: process.poll() is not None)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def test_servers_started_for_kernels_exit_when_idle_for_half_an_hour(tmp_path: Path) -> None:
    from sprites_jupyter.local.launcher import IDLE_EXIT, ensure_server
    from sprites_jupyter.local.registry import is_alive

    info = ensure_server(tmp_path / "home")
    try:
        argv = Path(f"/proc/{info.pid}/cmdline").read_text().split("\0")
        assert argv[argv.index("--idle-exit") + 1] == str(IDLE_EXIT) and IDLE_EXIT == 1800
    finally:
        os.kill(info.pid, signal.SIGTERM)
        _wait_until(lambda: not is_alive(info.pid))
