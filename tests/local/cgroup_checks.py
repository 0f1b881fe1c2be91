"""Helpers for the cgroup tests: where a server of a home makes its v1 cgroups, and its
reaper process (:mod:`sprites_jupyter.local.runtime.sandbox.cgroup_reaper`)."""

from __future__ import annotations

import os
import select
import signal
from pathlib import Path

from sprites_jupyter.local.runtime.sandbox.cgroups import group_name, own_cgroups
from tests.local.sandbox_checks import eventually

V1 = Path("/sys/fs/cgroup")


def v1_parents(home: Path) -> dict[str, Path]:
    """Where a server of ``home`` run from this process's cgroups makes its v1 cgroups."""
    own = own_cgroups(Path("/proc/self/cgroup").read_text())
    return {controller: V1 / controller / own[controller].lstrip("/") / group_name(home)
            for controller in ("memory", "pids")}


def reaper_pids(home: Path) -> list[int]:
    """The reapers watching the cgroups of a server of ``home`` (found by their command
    line, which names those cgroups)."""
    wanted = [b"cgroup_reaper.py", os.fsencode(group_name(home))]
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                words = cmdline.read()
        except OSError:
            continue
        if all(word in words for word in wanted):
            found.append(int(entry.name))
    return found


def started_reapers(home: Path) -> list[int]:
    """:func:`reaper_pids` once there is one: a reaper still in its ``exec`` (the moment
    after ``Popen`` returns) shows an empty command line."""
    return eventually(lambda: reaper_pids(home), "the server's cgroup reaper to start")


def ended(pidfd: int) -> bool:
    """Whether the process of ``pidfd`` has ended (its pidfd reads as ready)."""
    return bool(select.select([pidfd], [], [], 0)[0])


def kill_reaper(home: Path) -> None:
    """Stop the reaper of a server of ``home`` (and wait until it is gone), as if it had
    failed: what its server leaves is then for the next start of a server of that home."""
    pids = started_reapers(home)
    for pid in pids:
        pidfd = os.pidfd_open(pid)
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            assert select.select([pidfd], [], [], 10)[0], f"the reaper {pid} did not end"
        finally:
            os.close(pidfd)
