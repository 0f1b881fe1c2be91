"""Per-sprite totals by cgroup (``sprites-local serve --max-memory / --max-processes``).

A root server on cgroup v1 (as in CI) makes one cgroup per running sprite under the
cgroup it runs in; the processes of a sprite together stay under its memory and process
totals, and beyond the memory total the kernel ends a process of that sprite only. Each
test runs a server of its own; the cgroups it makes live under the test's own cgroup and
are removed when the server ends, and again by the fixture (the product's own clean-up
of what a home recorded) even when the test fails or the server was killed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sprites_jupyter.local.runtime.sandbox.cgroups import RECORD, clean_recorded
from sprites_jupyter.local.testing import LocalServer, start_server
from tests.local.cgroup_checks import V1, kill_reaper, v1_parents
from tests.local.sandbox_checks import eventually, sh, start_service
from tests.local.sprite_procs import sandboxed

MEMORY = "256M"
NOTE = "killed: over the sprite's memory limit (256 MiB)"


@pytest.fixture
def cgroup_v1_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("a server makes cgroups only as root (as in CI) on cgroup v1")
    if (V1 / "cgroup.controllers").exists() or not (V1 / "memory" / "cgroup.procs").exists():
        pytest.skip("this host has no cgroup v1 memory hierarchy (the v2 path is checked "
                    "against a fake tree in test_limits_cgroup_v2_fake.py)")


def _running(tmp_path: Path, *args: str) -> Iterator[tuple[LocalServer, httpx.Client]]:
    state_home = tmp_path / "home"
    running = start_server(state_home, args=args)
    try:
        with running.http() as http:
            if not sandboxed(http):
                pytest.skip("cgroups apply to sandboxed sprites; this host gives no sandbox")
            for name in ("busy", "calm"):
                assert http.post("/v1/sprites", json={"name": name}).status_code == 201
            yield running, http
    finally:
        running.stop()
        clean_recorded(state_home.resolve())


@pytest.fixture
def memory_total(tmp_path: Path, cgroup_v1_root: None
                 ) -> Iterator[tuple[LocalServer, httpx.Client]]:
    yield from _running(tmp_path, "--max-memory", MEMORY)


@pytest.fixture
def process_total(tmp_path: Path, cgroup_v1_root: None
                  ) -> Iterator[tuple[LocalServer, httpx.Client]]:
    yield from _running(tmp_path, "--max-processes", "40")


# Four children of 100 MiB each: every one under the per-process limit (256 MiB), 400
# MiB together. They hold it until the memory total ends one (not for a fixed time, which
# a slow allocation under load could outlast); then the parent ends the rest with TERM.
# Each prints its fate.
_FOUR_HOGS = """
import os, signal, time
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        hog = bytearray(b"x") * (100 << 20)
        time.sleep(120)
        os._exit(0)
    children.append(pid)
first, status = os.wait()
ended = {first: status}
for pid in children:
    if pid not in ended:
        os.kill(pid, signal.SIGTERM)
        ended[pid] = os.waitpid(pid, 0)[1]
for pid in children:
    status = ended[pid]
    print("killed" if os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9 else "lived")
"""


# 40 MiB held (for ten minutes), and a file saying so; the allocation comes first, and under
# load can take longer than any fixed sleep
_HOLD_40_MIB = ("python3 -c 'import time; a = bytearray(b\"x\") * (40 << 20); "
                "open(\"held\", \"w\").close(); time.sleep(600)'")
_UNTIL_HELD = "until [ -e held ]; do sleep 0.05; done"


def test_processes_of_a_sprite_over_its_memory_total_are_killed_in_that_sprite_only(
        memory_total: tuple[LocalServer, httpx.Client]) -> None:
    server, http = memory_total
    assert "per sprite in total (cgroup v1 memory" in http.head("/v1/sprites").headers[
        "sprite-local-limits"]
    code, out, err = sh(server, "busy", f"exec python3 -c '{_FOUR_HOGS}'")
    fates = out.split()
    assert code == 0 and len(fates) == 4 and "killed" in fates and "lived" in fates, (
        code, out, err)
    assert sh(server, "busy", "echo still here") == (0, "still here\n", "")
    assert sh(server, "calm", "python3 -c 'print(len(bytearray(b\"x\") * (200 << 20)))'") == (
        0, f"{200 << 20}\n", "")
    assert http.get("/v1/sprites").status_code == 200


def test_an_exec_killed_over_the_memory_total_says_so(
        memory_total: tuple[LocalServer, httpx.Client]) -> None:
    server, _ = memory_total
    code, out, err = sh(server, "busy", f"{_HOLD_40_MIB} & {_UNTIL_HELD}; exec python3 -c "
                                        "'a = bytearray(b\"x\") * (220 << 20); print(\"lived\")'")
    assert (code, out) == (137, ""), (code, out, err)
    assert err == f"{NOTE}\n", err
    code, _, err = sh(server, "busy", "sleep 0.2; kill -9 $$")
    assert code == 137 and NOTE not in err, err


def test_a_service_killed_over_the_memory_total_says_so(
        memory_total: tuple[LocalServer, httpx.Client]) -> None:
    _, http = memory_total
    start_service(http, "busy", "holder", f"exec {_HOLD_40_MIB}")
    start_service(http, "busy", "hog", f"{_UNTIL_HELD}; exec python3 -c 'import time; "
                                       "a = bytearray(b\"x\") * (220 << 20); time.sleep(60)'")

    def logged() -> str | None:
        logs = http.get("/v1/sprites/busy/services/hog/logs",
                        params={"lines": "20", "duration": "0"})
        return logs.text if NOTE in logs.text else None

    eventually(logged, "the service's log to say why it ended")
    state = http.get("/v1/sprites/busy/services/hog").json()["state"]
    assert state["restart_count"] >= 1 or state.get("error") == NOTE, state
    held = http.get("/v1/sprites/busy/services/holder").json()["state"]
    assert (held["status"], held["restart_count"]) == ("running", 0), held
    http.post("/v1/sprites/busy/services/hog/stop")
    http.post("/v1/sprites/busy/services/holder/stop")


# Fork until refused, then say how many processes the sprite has and why the fork failed.
_FORK_ALL = """
import os, signal, time
children = []
try:
    while len(children) < 100:
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
    error = "never refused"
except OSError as exc:
    error = exc.strerror
print(len([name for name in os.listdir("/proc") if name.isdigit()]), error)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
"""


def test_the_process_total_counts_every_process_of_the_sprite(
        process_total: tuple[LocalServer, httpx.Client]) -> None:
    server, _ = process_total
    pids = v1_parents(server.home.resolve())["pids"] / "busy"
    sh(server, "busy", "true")
    assert (pids / "pids.max").read_text().strip() == "40"
    code, out, err = sh(server, "busy", f"exec python3 -c '{_FORK_ALL}'")
    assert int((pids / "pids.current").read_text()) <= 40
    count, error = out.split(" ", 1)
    assert 30 < int(count) < 40 and error == "Resource temporarily unavailable\n", (
        code, out, err)
    refused = dict(line.split() for line in (pids / "pids.events").read_text().splitlines())
    assert int(refused["max"]) > 0, refused
    eventually(lambda: sh(server, "busy", "true")[0] == 0, "the sprite to fork again")
    assert sh(server, "calm", "echo fine") == (0, "fine\n", "")


def test_cgroups_go_with_the_sprite_the_server_and_a_killed_server(
        memory_total: tuple[LocalServer, httpx.Client], tmp_path: Path) -> None:
    server, http = memory_total
    state_home = server.home.resolve()
    parents = v1_parents(state_home)
    sh(server, "busy", "true")
    sh(server, "calm", "true")
    for parent in parents.values():
        assert {p.name for p in parent.iterdir() if p.is_dir()} == {"busy", "calm"}
    assert http.delete("/v1/sprites/busy").status_code == 204
    for parent in parents.values():
        assert {p.name for p in parent.iterdir() if p.is_dir()} == {"calm"}

    kill_reaper(state_home)  # as if it failed: the next start removes what is left
    server.stop(kill=True)
    assert (parents["memory"] / "calm").is_dir() and (state_home / RECORD).exists()
    again = start_server(state_home, args=("--max-memory", MEMORY))
    try:
        assert not any(parent.exists() for parent in parents.values())
        assert sh(again, "calm", "echo back") == (0, "back\n", "")
        assert (parents["memory"] / "calm").is_dir()
        with again.http() as http:
            assert http.delete("/v1/sprites/calm").status_code == 204
        assert not any(parent.exists() for parent in parents.values())  # with the last
    finally:
        again.stop()
    for parent in parents.values():
        assert not parent.exists()
    assert not (state_home / RECORD).exists()


def test_a_server_killed_with_no_sprite_running_leaves_no_cgroup(
        memory_total: tuple[LocalServer, httpx.Client]) -> None:
    server, http = memory_total
    parents = v1_parents(server.home.resolve())
    sh(server, "busy", "true")
    assert all((parent / "busy").is_dir() for parent in parents.values())
    for name in ("busy", "calm"):
        assert http.delete(f"/v1/sprites/{name}").status_code == 204
    assert not any(parent.exists() for parent in parents.values())
    server.stop(kill=True)
    assert not any(parent.exists() for parent in parents.values())


def test_a_killed_servers_cgroups_go_at_a_start_without_sandbox(
        memory_total: tuple[LocalServer, httpx.Client]) -> None:
    server, _ = memory_total
    state_home = server.home.resolve()
    parents = v1_parents(state_home)
    sh(server, "busy", "true")
    kill_reaper(state_home)  # as if it failed: the next start removes what is left
    server.stop(kill=True)
    assert (parents["memory"] / "busy").is_dir()
    again = start_server(state_home, args=("--isolation", "none"))
    try:
        assert not any(parent.exists() for parent in parents.values())
        assert not (state_home / RECORD).exists()
    finally:
        again.stop()


def test_an_unprivileged_server_says_memory_is_per_process_only(local: LocalServer) -> None:
    with local.http() as http:
        limits = http.head("/v1/sprites").headers["sprite-local-limits"]
    assert "per process (RLIMIT_DATA), NOT a per-sprite total" in limits, limits
    assert "processes 4096 per sprite (RLIMIT_NPROC)" in limits, limits
    assert not (local.home / RECORD).exists()
