"""Per-sprite limits (``sprites-local serve --max-processes / --max-memory /
--service-log-max``): each reached with its clear error, the server answering the
other sprites meanwhile. Each test runs a server of its own with a small limit, as the
tests' user (root in CI) and as an ordinary user the test makes (no cgroup there: the
per-process rlimits alone)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sprites_jupyter.local.runtime.sandbox.bwrap import find_bubblewrap
from tests.conftest import LocalServer, start_server
from tests.local.ndjson import stream_events
from tests.local.other_user import as_user
from tests.local.sandbox_checks import eventually, sh
from tests.local.sprite_procs import sandboxed

LOG_CAP = 64 * 1024


@pytest.fixture(params=["as-tests-user", "as-other-user"])
def starts(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[str]]:
    """Where a test's server keeps its home and the command prefix that starts it: as
    the tests' user (root in CI), or as an ordinary user (``tests/local/conftest.py``)."""
    if request.param == "as-tests-user":
        return tmp_path / "home", []
    user, home = request.getfixturevalue("user"), request.getfixturevalue("home")
    return home / f"limits-{uuid.uuid4().hex[:8]}", as_user(user, home)


def _server(starts: tuple[Path, list[str]], *args: str
            ) -> Iterator[tuple[LocalServer, httpx.Client]]:
    state_home, prefix = starts
    running = start_server(state_home, args=args, prefix=prefix)
    try:
        with running.http() as http:
            if not sandboxed(http):
                pytest.skip("limits apply to sandboxed sprites; this host gives no sandbox")
            for name in ("busy", "calm"):
                assert http.post("/v1/sprites", json={"name": name}).status_code == 201
            yield running, http
    finally:
        running.stop()


@pytest.fixture
def few_processes(starts: tuple[Path, list[str]]) -> Iterator[tuple[LocalServer, httpx.Client]]:
    yield from _server(starts, "--max-processes", "48")


@pytest.fixture
def little_memory(starts: tuple[Path, list[str]]) -> Iterator[tuple[LocalServer, httpx.Client]]:
    yield from _server(starts, "--max-memory", "256M")


@pytest.fixture
def small_logs(starts: tuple[Path, list[str]]) -> Iterator[tuple[LocalServer, httpx.Client]]:
    yield from _server(starts, "--service-log-max", str(LOG_CAP))


def _limit_error(server: LocalServer) -> str | None:
    code, out, err = sh(server, "busy", "true")
    return out + err if code != 0 else None


# A child (its own session, output to /dev/null) takes every process slot, and each
# one freed; the parent, forking nothing more, reports the first refusal.
_FILL = """
import os, subprocess, time
if os.fork() == 0:
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    with open("/tmp/fill", "w") as report:
        while True:
            try:
                subprocess.Popen(["sleep", "300"])
            except OSError as exc:
                report.write(exc.strerror + "\\n")
                report.flush()
                time.sleep(0.005)
while True:
    try:
        with open("/tmp/fill") as report:
            line = report.readline()
    except FileNotFoundError:
        line = ""
    if line:
        print(line, end="")
        break
    time.sleep(0.05)
"""


def test_a_sprite_at_its_process_limit_gets_a_clear_error(
        few_processes: tuple[LocalServer, httpx.Client]) -> None:
    server, http = few_processes
    _, out, err = sh(server, "busy", f"exec python3 -c '{_FILL}'")
    assert out == "Resource temporarily unavailable\n", (out, err)
    message = eventually(lambda: _limit_error(server), "an exec refused at the limit")
    assert "busy is at its limit of 48 processes" in message, message
    assert sh(server, "calm", "echo fine") == (0, "fine\n", "")
    assert http.get("/v1/sprites").status_code == 200


def test_memory_beyond_the_limit_fails_inside_only(
        little_memory: tuple[LocalServer, httpx.Client]) -> None:
    server, http = little_memory
    _, out, err = sh(server, "busy", "python3 -c 'bytearray(64 << 20); print(\"small ok\")'; "
                                     "python3 -c 'bytearray(512 << 20)'")
    assert "small ok" in out and "MemoryError" in err, (out, err)
    assert sh(server, "calm", "echo fine") == (0, "fine\n", "")
    assert http.get("/v1/sprites").status_code == 200


def _log_sizes(server: LocalServer) -> tuple[int, int]:
    logs = server.home / "sprites/busy/platform/logs/services"
    sizes = []
    for part in (logs / "chatty.log", logs / "chatty.log.1"):
        try:
            sizes.append(part.stat().st_size)
        except FileNotFoundError:  # between a rotation's rename and the new file
            sizes.append(0)
    return sizes[0], sizes[1]


def test_a_chatty_service_log_stays_under_its_cap_and_follow_survives_rotation(
        small_logs: tuple[LocalServer, httpx.Client]) -> None:
    server, http = small_logs
    status, _ = stream_events(http, "PUT", "/v1/sprites/busy/services/chatty",
                              params={"duration": "0"},
                              json={"cmd": "sh", "args": ["-c", "while :; do seq 1 2000; "
                                                                "sleep 0.05; done"]})
    assert status == 200
    seen_after_rotation = 0
    with http.stream("GET", "/v1/sprites/busy/services/chatty/logs",
                     params={"lines": "0", "duration": "60s"}) as response:
        assert response.status_code == 200
        rotations = 0
        last_older = 0
        for line in response.iter_lines():
            if not line:
                continue
            event = json.loads(line)
            current, older = _log_sizes(server)
            assert current <= 2 * LOG_CAP and older <= 2 * LOG_CAP, (current, older)
            if older and older != last_older:
                rotations += 1
                last_older = older
            if rotations >= 2 and event["type"] == "stdout":
                seen_after_rotation += event["data"].count("\n")
                if seen_after_rotation > 100:
                    break
    assert seen_after_rotation > 100
    assert http.post("/v1/sprites/busy/services/chatty/stop").status_code < 500
    backlog = http.get("/v1/sprites/busy/services/chatty/logs",
                       params={"lines": "50", "duration": "0"})
    assert backlog.status_code == 200
    eventually(lambda: sh(server, "calm", "echo fine") == (0, "fine\n", ""), "the other sprite")


@pytest.fixture
def small_tmpfs(starts: tuple[Path, list[str]]) -> Iterator[tuple[LocalServer, httpx.Client]]:
    yield from _server(starts, "--max-memory", "96M")


def test_in_memory_file_systems_fill_up_inside_only(
        small_tmpfs: tuple[LocalServer, httpx.Client]) -> None:
    server, http = small_tmpfs
    if http.get("/v1/sprites").status_code != 200:
        pytest.fail("the server does not answer")
    code, out, err = sh(server, "busy", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=128 "
                                        "2>&1; ls -ld /dev/shm; rm -f /dev/shm/fill")
    if find_bubblewrap().version < (0, 10):
        pytest.skip("the bubblewrap in use cannot size a tmpfs")
    assert "No space left on device" in out and out.endswith(" /dev/shm\n"), (code, out, err)
    assert out.splitlines()[-1].startswith("drwxrwxrwt"), out
    assert sh(server, "calm", "echo fine") == (0, "fine\n", "")
