"""What the cgroup reaper (a helper process started with every server that makes cgroups)
costs a server's start and stop, against the code before it, and how soon a killed
server's cgroups are gone.

A root server on cgroup v1 or a delegated v2 only (elsewhere no cgroup, no reaper).
The baseline is a server of another commit (``--baseline``, default ``main``: pass the
commit before the reaper once it has landed) checked out in a temporary git worktree;
both run with ``--max-memory 256M`` (so both make cgroups); samples are interleaved.

1. Start: spawning ``sprites-local serve`` until it prints its URL (target: the reaper
   adds <= 5 %).
2. Stop: SIGTERM until the process has exited (a clean exit now also waits for its
   reaper to end).
3. Killed: ``kill -9`` of a server with a sprite running, until its cgroup directories
   are gone (no baseline: before the reaper they stayed until the home's next start).
4. The reaper's resident memory.
5. What it takes of a server's start itself: spawning it (``Reaper.watch``, the only
   part on the server's path), and the CPU its own start takes beside the server's.

    python bench/bench_cgroup_reaper.py [--repeat 10] [--baseline REF]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from bench_common import TOKEN, compare, start_server, summary, timed
from compare_revisions import worktree

from sprites_jupyter.local.runtime.sandbox.cgroups import Reaper, group_name, own_cgroups

REPO = Path(__file__).resolve().parents[1]
LIMIT = ("--max-memory", "256M")


def _v1_parents(home: Path) -> list[Path]:
    own = own_cgroups(Path("/proc/self/cgroup").read_text())
    return [Path("/sys/fs/cgroup", controller, own[controller].lstrip("/"), group_name(home))
            for controller in ("memory", "pids") if controller in own]


def _reaper_rss_kib(home: Path) -> int | None:
    name = os.fsencode(group_name(home))
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and b"cgroup_reaper.py" in (
                    command := Path(entry.path, "cmdline").read_bytes()) and name in command:
                status = Path(entry.path, "status").read_text()
                return int(status.split("VmRSS:")[1].split()[0])
        except (OSError, IndexError):
            continue
    return None


def start_and_stop(home: Path, code: Path, starts: list[float], stops: list[float]) -> None:
    """One sample of each: the start until the URL line, the SIGTERM stop until exit."""
    began = time.perf_counter()
    process, _ = start_server(home, *LIMIT, env={"PYTHONPATH": str(code)},
                              stderr=subprocess.DEVNULL)
    starts.append(time.perf_counter() - began)
    process.terminate()
    stops.append(timed(lambda: process.wait(timeout=30)))


def killed(scratch: Path, repeat: int) -> None:
    """Rows 3 and 4: kill -9 with a sprite running, until its cgroups are gone."""
    samples, rss = [], None
    for number in range(max(repeat, 5)):
        home = (scratch / f"killed-{number}").resolve()
        process, url = start_server(home, *LIMIT, env={"PYTHONPATH": str(REPO)},
                                    stderr=subprocess.DEVNULL)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=60) as http:
            http.post("/v1/sprites", json={"name": "busy"}).raise_for_status()
            http.post("/v1/sprites/busy/exec", params={"cmd": ["true"]}).raise_for_status()
        rss = rss or _reaper_rss_kib(home)
        parents = _v1_parents(home)
        if not any(parent.exists() for parent in parents):
            raise SystemExit("the server made no cgroup here (not root on v1?): nothing to "
                             "measure")
        began = time.perf_counter()
        process.kill()
        while any(parent.exists() for parent in parents):
            if time.perf_counter() - began > 30:
                raise SystemExit(f"{parents} still there 30 s after the kill")
            time.sleep(0.005)
        samples.append(time.perf_counter() - began)
        process.wait()
    summary("killed: until its cgroups are gone", samples)
    print(f"  the reaper's resident memory: {rss} KiB" if rss else "  no reaper found")


def spawn_cost(repeat: int) -> None:
    """Row 5: the spawn in this process (it has imported what a server imports), and
    the reaper's CPU from its start to its end (once told its server ended)."""
    import sprites_jupyter.local.__main__  # noqa: F401  (a server's heap, for the fork)

    spawns, closes = [], []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(max(repeat, 5)):
        reaper = Reaper()
        spawns.append(timed(lambda reaper=reaper: reaper.watch(
            [Path("/nonexistent", group_name(Path("/bench")))])))
        closes.append(timed(reaper.close))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary("spawning the reaper (in the server)", spawns)
    summary("its start to its end, once told", closes)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / len(spawns)
    print(f"  the reaper's CPU, start to end: {cpu * 1e3:.1f} ms each (beside the server's)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--baseline", default="main",
                        help="the git commit to compare with (default main)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, worktree(args.baseline) as old_code:
        new_starts: list[float] = []
        new_stops: list[float] = []
        old_starts: list[float] = []
        old_stops: list[float] = []
        for _ in range(max(args.repeat, 5)):  # in turns, so load hits both alike
            start_and_stop(Path(scratch, "new"), REPO, new_starts, new_stops)
            start_and_stop(Path(scratch, "old"), old_code, old_starts, old_stops)
        compare("start (until the URL line)", new_starts, old_starts, most=1.05,
                names=("reaper", args.baseline))
        compare("stop (SIGTERM until exit)", new_stops, old_stops,
                names=("reaper", args.baseline))
        killed(Path(scratch), args.repeat)
        spawn_cost(args.repeat)


if __name__ == "__main__":
    main()
