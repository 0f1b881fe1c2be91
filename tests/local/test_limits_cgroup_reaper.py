"""No cgroup outlives a killed server, even when its home is deleted right after (a
test's temporary home, a container's scratch home): the server's reaper, a helper
process in a session of its own, removes them once the server is gone.

Real root servers on this host's cgroup v1 (as in CI). Every cgroup a test's server
makes is named after the test's own home; whatever a failing test leaves of those is
removed in its ``finally``; the canary cgroups a test makes are removed there too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprites_jupyter.local.runtime.sandbox.cgroup_reaper import remove_taken, remove_tree, tree
from sprites_jupyter.local.runtime.sandbox.cgroups import SpriteCgroups, group_name
from sprites_jupyter.local.testing import LocalServer, start_server
from tests.local.cgroup_checks import V1, ended, reaper_pids, started_reapers, v1_parents
from tests.local.sandbox_checks import eventually, sh, start_service
from tests.local.sprite_procs import sandboxed


@pytest.fixture
def root_v1() -> None:
    if os.geteuid() != 0:
        pytest.skip("a server makes cgroups (and so a reaper) only as root on cgroup v1")
    if (V1 / "cgroup.controllers").exists() or not (V1 / "memory" / "cgroup.procs").exists():
        pytest.skip("this host has no cgroup v1 memory hierarchy")


@pytest.fixture
def server(tmp_path: Path, root_v1: None) -> Iterator[LocalServer]:
    """A root server with a memory total, in a process group of its own (so a test can
    kill the group), with one sprite, ``busy``."""
    home = tmp_path / "home"
    parents = v1_parents(home.resolve())
    running = start_server(home, args=("--max-memory", "256M"), preexec_fn=os.setpgrp)
    try:
        with running.http() as http:
            if not sandboxed(http):
                pytest.skip("cgroups apply to sandboxed sprites; this host gives no sandbox")
            assert http.post("/v1/sprites", json={"name": "busy"}).status_code == 201
        yield running
    finally:
        running.stop()
        for parent in parents.values():  # only if the reaper under test failed
            remove_tree(parent)


def _sprite_pidfds(parents: dict[str, Path]) -> list[int]:
    """pidfds of the processes in the sprite ``busy``'s memory cgroup."""
    pidfds = []
    for pid in (parents["memory"] / "busy" / "cgroup.procs").read_text().split():
        try:
            pidfds.append(os.pidfd_open(int(pid)))
        except ProcessLookupError:
            continue
    return pidfds


def _delete_home_and_see_everything_go(server: LocalServer, pidfds: list[int]) -> None:
    home = server.home.resolve()
    parents = v1_parents(home)
    shutil.rmtree(server.home)  # nothing left to tell a next start what to remove
    try:
        eventually(lambda: not any(parent.exists() for parent in parents.values()),
                   "the killed server's cgroups to be removed")
        eventually(lambda: all(ended(pidfd) for pidfd in pidfds),
                   "the killed server's sprite processes to end")
        eventually(lambda: not reaper_pids(home), "the reaper to end")
    finally:
        for pidfd in pidfds:
            os.close(pidfd)


def test_a_server_killed_with_a_sprite_running_leaves_no_cgroup_once_its_home_is_deleted(
        server: LocalServer) -> None:
    parents = v1_parents(server.home.resolve())
    with server.http() as http:
        start_service(http, "busy", "sleeper", "exec sleep 600")
    assert all((parent / "busy").is_dir() for parent in parents.values())
    pidfds = _sprite_pidfds(parents)
    assert len(pidfds) >= 2  # the sprite's init and its service at least
    assert len(started_reapers(server.home.resolve())) == 1
    server.stop(kill=True)
    _delete_home_and_see_everything_go(server, pidfds)


def test_a_server_whose_process_group_is_killed_mid_exec_leaves_no_cgroup(
        server: LocalServer) -> None:
    home = server.home.resolve()
    parents = v1_parents(home)
    outcome: list[object] = []

    def exec_a_long_sleep() -> None:
        try:
            outcome.append(sh(server, "busy", "echo started; exec sleep 600"))
        except Exception as exc:  # the server dies under it: any failure will do
            outcome.append(exc)

    running = threading.Thread(target=exec_a_long_sleep, daemon=True)
    running.start()
    procs = parents["memory"] / "busy" / "cgroup.procs"

    def sleeping() -> bool:
        for pid in procs.read_text().split() if procs.exists() else []:
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x00600\x00":
                    return True
            except OSError:
                continue
        return False

    eventually(sleeping, "the exec's sleep to run in the sprite's cgroup")
    pidfds = _sprite_pidfds(parents)
    (reaper,) = started_reapers(home)
    assert os.getsid(reaper) != os.getsid(server.process.pid)
    os.killpg(server.process.pid, signal.SIGKILL)  # the server's group: not its reaper
    server.process.wait()
    running.join(30)
    assert outcome and not isinstance(outcome[0], tuple), outcome  # the exec did not finish
    _delete_home_and_see_everything_go(server, pidfds)


def test_a_server_killed_while_its_sprites_start_leaves_no_cgroup(server: LocalServer) -> None:
    with server.http() as http:
        for name in ("one", "two", "three"):  # each starts its sandbox in the background
            assert http.post("/v1/sprites", json={"name": name}).status_code == 201
    server.stop(kill=True)  # while their cgroups are being made (or just after)
    _delete_home_and_see_everything_go(server, [])


def test_a_server_stopped_normally_leaves_no_cgroup_and_no_reaper(server: LocalServer) -> None:
    home = server.home.resolve()
    parents = v1_parents(home)
    assert sh(server, "busy", "echo on") == (0, "on\n", "")
    assert all((parent / "busy").is_dir() for parent in parents.values())
    server.stop()
    assert not any(parent.exists() for parent in parents.values())
    eventually(lambda: not reaper_pids(home), "the reaper to end with its server")


@pytest.fixture
def canaries(tmp_path: Path, root_v1: None) -> Iterator[dict[str, Path]]:
    """Cgroups another server (of another home) would make beside this test's server's,
    the memory one holding a process of the test; all removed afterwards."""
    own = v1_parents(tmp_path.resolve())
    name = group_name(tmp_path / "another-home")
    made = {controller: parent.parent / name for controller, parent in own.items()}
    holder = None
    try:
        for canary in made.values():
            canary.mkdir()
        holder = subprocess.Popen(["sh", "-c", 'echo $$ >"$1" && exec sleep 600', "sh",
                                   str(made["memory"] / "cgroup.procs")])
        eventually(lambda: str(holder.pid) in (made["memory"] / "cgroup.procs").read_text()
                   and Path(f"/proc/{holder.pid}/cmdline").read_bytes().startswith(b"sleep"),
                   "the canary's process to run in it")
        yield made
        assert holder.poll() is None, "the canary cgroup's process was killed"
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        for canary in made.values():
            remove_tree(canary)


def test_the_reaper_leaves_another_servers_cgroups_alone(
        server: LocalServer, canaries: dict[str, Path]) -> None:
    parents = v1_parents(server.home.resolve())
    assert sh(server, "busy", "sleep 600 & echo started") == (0, "started\n", "")
    pidfds = _sprite_pidfds(parents)
    server.stop(kill=True)
    _delete_home_and_see_everything_go(server, pidfds)
    assert all(canary.is_dir() for canary in canaries.values())
    assert (canaries["memory"] / "cgroup.procs").read_text().split() != []


def test_the_reaper_never_removes_a_cgroup_made_again_at_the_same_path(
        canaries: dict[str, Path]) -> None:
    canary = canaries["pids"] / "sprite"
    canary.mkdir()
    seen = tree(canary)
    canary.rmdir()
    canary.mkdir()  # as a new server of the same home would, meanwhile
    assert remove_taken(seen) == []
    assert canary.is_dir()
    assert remove_taken(tree(canaries["pids"] / "sprite")) == []
    assert not canary.exists()


def test_an_unprivileged_server_starts_no_reaper(local: LocalServer) -> None:
    with local.http() as http:
        assert http.post("/v1/sprites", json={"name": "plain"}).status_code == 201
    assert sh(local, "plain", "echo fine") == (0, "fine\n", "")
    assert reaper_pids(local.home.resolve()) == []


def test_on_a_fake_v2_tree_the_reaper_watches_the_sprites_cgroups_not_its_own_leaf(
        tmp_path: Path) -> None:
    """A FAKE cgroup v2 tree (plain files): this host mounts v1. It proves which
    directories the reaper is given on v2, not what a v2 kernel does."""
    home = tmp_path / "home"
    home.mkdir()
    own = tmp_path / "cgroup" / "app.scope"
    own.mkdir(parents=True)
    (tmp_path / "cgroup" / "cgroup.controllers").write_text("memory pids\n")
    (own / "cgroup.controllers").write_text("memory pids\n")
    (own / "cgroup.subtree_control").write_text("\n")
    (own / "cgroup.procs").write_text("")
    (tmp_path / "self-cgroup").write_text("0::/app.scope\n")
    cgroups = SpriteCgroups.set_up(home, 256 << 20, 40, mount=tmp_path / "cgroup",
                                   proc_self_cgroup=tmp_path / "self-cgroup", reap=True)
    try:
        assert cgroups.describe() == "cgroup v2"
        (reaper,) = started_reapers(home)
        argv = Path(f"/proc/{reaper}/cmdline").read_bytes().split(b"\0")
        assert argv[-2:] == [os.fsencode(own / group_name(home)), b""]  # not the leaf
        assert os.getsid(reaper) == reaper  # a session of its own
    finally:
        cgroups.close(home)
    assert reaper_pids(home) == []
