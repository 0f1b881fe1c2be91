"""What the host-id mapping and the per-sprite limits cost, against the code before them.

The baseline is a server of another commit (``--baseline``, default ``main``: pass the
commit before this change once it has landed) checked out in a temporary git worktree,
run in the same way as this checkout's server; samples of the two are interleaved.

1. Warm exec round trip: ``POST /v1/sprites/NAME/exec?cmd=true`` on a running sprite
   (target: the mapping and limits add <= 5 %).
2. First exec on a new sprite: create it, then the first exec (sandbox start included).
3. Server responsiveness: an unrelated ``GET /v1/sprites`` while one sprite sits at
   each limit (processes, memory, a chatty service's log rotating, its disk full),
   against the same GET with every sprite idle (target: <= 2x).
4. The per-sprite disk (a root server's): warm exec on two sprites of one server
   (``--max-disk 1G``), one on a disk of its own and one made before the limit was
   set, so only the disk differs (target: <= 5 %); create + first exec on servers of
   this checkout with ``--max-disk 1G`` and ``--max-disk 0``.
5. Cgroup totals (a root server on cgroup v1 or a delegated v2): warm exec and first
   exec with a cgroup per sprite against the same checkout with no limit to enforce
   (``--max-memory 0 --max-processes 0``: no cgroup made; target <= 5 % warm), and an
   unrelated GET while a sprite sits at its memory total, its processes taking more
   than it and the OOM killer ending them (target <= 2x idle).

    python bench/bench_sprite_limits.py [--repeat 20] [--baseline REF]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from bench_common import TOKEN, compare, start_server, timed
from compare_revisions import worktree

REPO = Path(__file__).resolve().parents[1]
# Each takes what its limit allows (the next fork or allocation fails), then waits.
FILL_PROCESSES = ("import subprocess, time\ntry:\n    while True:\n"
                  "        subprocess.Popen(['sleep', '600'])\n"
                  "except OSError:\n    time.sleep(600)\n")
# Every half second another process takes 64 MiB and holds it: past the total, the
# kernel's OOM killer ends one, and the next comes.
OVER_MEMORY_TOTAL = ("while :; do python3 -c 'import time; held = bytearray(b\"x\") * "
                     "(64 << 20); time.sleep(600)' & sleep 0.5; done")
FILL_MEMORY = ("import time\nheld = []\ntry:\n    while True:\n"
               "        held.append(bytearray(16 << 20))\n"
               "except MemoryError:\n    time.sleep(600)\n")


def checkout(code: Path) -> dict[str, str]:
    """The environment that runs the server of the checkout at ``code``."""
    return {"PYTHONPATH": str(code)}


def _exec(http: httpx.Client, sprite: str, cmd: list[str]) -> None:
    http.post(f"/v1/sprites/{sprite}/exec", params={"cmd": cmd}).raise_for_status()


def against_baseline(urls: dict[str, str], repeat: int, baseline: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    clients = {who: httpx.Client(base_url=url, headers=headers, timeout=600)
               for who, url in urls.items()}
    for http in clients.values():
        http.post("/v1/sprites", json={"name": "warm"}).raise_for_status()
        _exec(http, "warm", ["true"])
    warm: dict[str, list[float]] = {who: [] for who in clients}
    for number in range(repeat):  # warm first, alone: a sprite's teardown skews samples
        for who in _order(clients, number):
            warm[who].append(timed(lambda http=clients[who]: _exec(http, "warm", ["true"])))
    first = _first_exec_times(clients, repeat, "new")
    names = ("this checkout", baseline)
    compare("warm exec round trip", warm["new"], warm["old"], most=1.05, names=names)
    compare("first exec on a new sprite (no target)", first["new"], first["old"], names=names)


def _first_exec_times(clients: dict[str, httpx.Client], repeat: int, prefix: str
                      ) -> dict[str, list[float]]:
    """Create a sprite and run its first command, in turns on each server; the sprite is
    deleted after each sample and its teardown let pass before the next."""
    first: dict[str, list[float]] = {who: [] for who in clients}
    for number in range(repeat):
        for who in _order(clients, number):
            http, name = clients[who], f"{prefix}-{number}"

            def create_and_exec(http: httpx.Client = http, name: str = name) -> None:
                http.post("/v1/sprites", json={"name": name}).raise_for_status()
                _exec(http, name, ["true"])

            first[who].append(timed(create_and_exec))
            http.delete(f"/v1/sprites/{name}")
            time.sleep(0.3)
    return first


def _order(sides: dict[str, Any], number: int) -> list[str]:
    """Both sides, the one measured first alternating from round to round."""
    names = list(sides)
    return names if number % 2 == 0 else names[::-1]


def _get_times(http: httpx.Client, repeat: int) -> list[float]:
    return [timed(lambda: http.get("/v1/sprites").raise_for_status()) for _ in range(repeat)]


def disk_on_off(scratch: Path, repeat: int) -> None:
    """Warm exec on two sprites of one server, one on a disk of its own and one made
    before the limit was set (so without one): the same server, so only the disk
    differs. Then create + first exec on a server with the limit and one without."""
    home, unlimited = scratch / "disk-on", scratch / "disk-off"
    earlier, url = start_server(home, env=checkout(REPO), stderr=subprocess.DEVNULL,
                                max_disk="0")
    with _client(url) as http:
        http.post("/v1/sprites", json={"name": "plain"}).raise_for_status()
    earlier.terminate()
    earlier.wait(timeout=30)
    on, on_url = start_server(home, env=checkout(REPO), stderr=subprocess.DEVNULL,
                              max_disk="1G")
    off, off_url = start_server(unlimited, env=checkout(REPO), stderr=subprocess.DEVNULL,
                                max_disk="0")
    clients = {"on": _client(on_url), "off": _client(off_url)}
    try:
        http = clients["on"]
        http.post("/v1/sprites", json={"name": "disk"}).raise_for_status()
        sprites = {"on": "disk", "off": "plain"}
        warm: dict[str, list[float]] = {who: [] for who in sprites}
        for who in sprites:
            _exec(http, sprites[who], ["true"])
        for number in range(5 * repeat):  # milliseconds each: more, to rise above noise
            for who in _order(sprites, number):
                warm[who].append(timed(lambda name=sprites[who]: _exec(http, name, ["true"])))
        first = _first_exec_times(clients, repeat, "disk")
    finally:
        for process in (on, off):
            process.terminate()
            process.wait(timeout=30)
    names = ("disk of its own", "no disk limit")
    compare("warm exec, disk limit on vs off (two sprites of one server)", warm["on"],
            warm["off"], most=1.05, names=names)
    compare("create + first exec, disk limit on vs off (no target)", first["on"],
            first["off"], names=names)


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=600)


def at_limits(url: str, repeat: int) -> None:
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=600)
    http.post("/v1/sprites", json={"name": "limited"}).raise_for_status()
    loads: dict[str, Callable[[], None]] = {
        "processes": lambda: _exec(http, "limited", ["sh", "-c", "python3 -c \"$0\" "
                                                     ">/dev/null 2>&1 &", FILL_PROCESSES]),
        "memory": lambda: _exec(http, "limited", ["sh", "-c", "python3 -c \"$0\" "
                                                  ">/dev/null 2>&1 &", FILL_MEMORY]),
        "service log": lambda: http.put(
            "/v1/sprites/limited/services/chatty", params={"duration": "0"},
            json={"cmd": "yes", "args": ["a chatty service line"]}).raise_for_status(),
        "disk": lambda: _exec(http, "limited", ["sh", "-c", "cat /dev/zero > fill; true"]),
    }
    for limit, load in loads.items():
        idle = _get_times(http, repeat)  # just before: the host's load drifts
        load()
        time.sleep(2)
        busy = _get_times(http, repeat)
        compare(f"GET /v1/sprites with a sprite at its {limit} limit", busy, idle, most=2,
                names=("at the limit", "idle"))
        http.delete("/v1/sprites/limited")
        http.post("/v1/sprites", json={"name": "limited"}).raise_for_status()


def cgroup_costs(scratch: Path, repeat: int) -> None:
    """Rows 4: this checkout with cgroup totals against itself without limits, then a
    GET while a sprite sits at its memory total."""
    on, on_url = start_server(scratch / "cgroups-on", "--max-memory", "256M",
                              env=checkout(REPO), stderr=subprocess.DEVNULL)
    off, off_url = start_server(scratch / "cgroups-off", "--max-memory", "0",
                                "--max-processes", "0", env=checkout(REPO),
                                stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=on_url, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=60) as http:
            notice = http.head("/v1/sprites").headers.get("sprite-local-limits", "")
        if "per sprite in total" not in notice:
            print(f"cgroup totals: not enforced on this host ({notice}); rows 4 skipped")
            return
        against_baseline({"new": on_url, "old": off_url}, repeat, "no limits (no cgroup)")
        at_memory_total(on_url, repeat)
    finally:
        for process in (on, off):
            process.terminate()
            process.wait(timeout=30)


def at_memory_total(url: str, repeat: int) -> None:
    """GET /v1/sprites while one sprite's processes keep going over its memory total."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=600) as http:
        http.post("/v1/sprites", json={"name": "hogs"}).raise_for_status()
        _exec(http, "hogs", ["true"])
        idle = _get_times(http, repeat)
        http.put("/v1/sprites/hogs/services/hogs", params={"duration": "0"},
                 json={"cmd": "sh", "args": ["-c", OVER_MEMORY_TOTAL]}).raise_for_status()
        time.sleep(5)
        busy = _get_times(http, repeat)
        http.delete("/v1/sprites/hogs")
    compare("GET /v1/sprites with a sprite over its memory total (OOM kills)", busy, idle,
            most=2, names=("over the total", "idle"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--baseline", default="main",
                        help="the git commit to compare with (default main)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, worktree(args.baseline) as old_code:
        servers = []
        try:
            limits = ("--max-processes", "64", "--max-memory", "256M",
                      "--service-log-max", "1M")
            new, new_url = start_server(Path(scratch, "new"), *limits, env=checkout(REPO),
                                        stderr=subprocess.DEVNULL, max_disk="256M")
            old, old_url = start_server(Path(scratch, "old"), env=checkout(old_code),
                                        stderr=subprocess.DEVNULL, max_disk=None)
            servers += [new, old]
            against_baseline({"new": new_url, "old": old_url}, args.repeat, args.baseline)
            at_limits(new_url, args.repeat)
            disk_on_off(Path(scratch), args.repeat)
            cgroup_costs(Path(scratch), args.repeat)
        finally:
            for process in servers:
                process.terminate()
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
