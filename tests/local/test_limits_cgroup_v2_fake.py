"""The cgroup v2 path of :mod:`sprites_jupyter.local.runtime.sandbox.cgroups`, checked
against a FAKE cgroup directory tree (plain files in the test's directory): this host
(and CI) mounts cgroup v1, where the real kernel path is tested
(``test_limits_cgroups``). These prove which files the server reads and writes on v2,
not what a v2 kernel does with them."""

from __future__ import annotations

import os
from pathlib import Path

from sprites_jupyter.local.runtime.sandbox.cgroups import RECORD, SpriteCgroups, group_name
from sprites_jupyter.local.runtime.sandbox.limits import SpriteLimits

OWN = "user.slice/user-1000.slice/app.scope"


def _fake_v2(tmp_path: Path, controllers: str, subtree: str) -> tuple[Path, Path, Path]:
    """A fake v2 mount with the server's cgroup ``OWN``; returns mount, own, the fake
    /proc/self/cgroup."""
    mount = tmp_path / "cgroup"
    own = mount / OWN
    own.mkdir(parents=True)
    (mount / "cgroup.controllers").write_text("cpu memory pids\n")
    (own / "cgroup.controllers").write_text(controllers + "\n")
    (own / "cgroup.subtree_control").write_text(subtree + "\n")
    (own / "cgroup.procs").write_text("")
    proc_self = tmp_path / "proc-self-cgroup"
    proc_self.write_text(f"0::/{OWN}\n")
    return mount, own, proc_self


def test_fake_v2_delegated_tree_gets_memory_max_pids_max_and_no_swap(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    mount, own, proc_self = _fake_v2(tmp_path, "cpu memory pids", "memory pids")
    cgroups = SpriteCgroups.set_up(home, 256 << 20, 40, mount=mount,
                                   proc_self_cgroup=proc_self)
    assert cgroups.reason == "" and cgroups.describe() == "cgroup v2"
    assert cgroups.memory_total and cgroups.process_total
    parent = own / group_name(home)
    assert not parent.exists() and not (home / RECORD).exists()  # made with a sprite

    sprite = cgroups.make("busy")
    assert sprite is not None and sprite.directories == (parent / "busy",)
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (home / RECORD).read_text() == f"{parent}\n"
    assert (parent / "busy" / "memory.max").read_text() == str(256 << 20)
    assert (parent / "busy" / "pids.max").read_text() == "40"
    assert (parent / "busy" / "memory.swap.max").read_text() == "0"
    command = sprite.join_command(["bwrap", "--x"])
    assert command[-3:] == ["--", "bwrap", "--x"]
    assert str(parent / "busy" / "cgroup.procs") in command

    assert sprite.oom_kills() == 0
    (parent / "busy" / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\n")
    assert sprite.oom_kills() == 2
    notice = SpriteLimits(40, 256 << 20).notice(True, cgroups)
    assert "memory 256 MiB per sprite in total (cgroup v2 memory" in notice
    assert "processes 40 per sprite (cgroup v2 pids, and RLIMIT_NPROC)" in notice


def test_fake_v2_server_moves_into_a_leaf_before_enabling_controllers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    mount, own, proc_self = _fake_v2(tmp_path, "cpu memory pids", "")
    cgroups = SpriteCgroups.set_up(home, 256 << 20, 40, mount=mount,
                                   proc_self_cgroup=proc_self)
    leaf = own / f"{group_name(home)}.server"
    assert cgroups.reason == ""
    assert (leaf / "cgroup.procs").read_text() == str(os.getpid())
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (home / RECORD).read_text().splitlines() == [str(leaf)]
    assert cgroups.make("busy") is not None
    assert (home / RECORD).read_text().splitlines() == [str(leaf), str(own / group_name(home))]


def test_fake_v2_tree_without_delegated_memory_falls_back_and_says_why(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    mount, own, proc_self = _fake_v2(tmp_path, "cpu pids", "")
    cgroups = SpriteCgroups.set_up(home, 256 << 20, 40, mount=mount,
                                   proc_self_cgroup=proc_self)
    assert cgroups.describe() == "" and cgroups.make("busy") is None
    assert "is not delegated to it (memory)" in cgroups.reason
    assert "Delegate=yes" in cgroups.reason
    assert sorted(path.name for path in own.iterdir()) == [
        "cgroup.controllers", "cgroup.procs", "cgroup.subtree_control"]
    notice = SpriteLimits(40, 256 << 20).notice(True, cgroups)
    assert "memory 256 MiB per process (RLIMIT_DATA), NOT a per-sprite total" in notice
    assert "processes 40 per sprite (RLIMIT_NPROC)" in notice
