"""How long a sandbox takes to start, as users meet it: the first exec of a sprite.

Through the local server's API (``POST /v1/sprites/NAME/exec?cmd=true``), two figures:

1. the first exec on a new sprite (create, then time the exec);
2. the first exec after a restore (the restore stops the sandbox; time the next exec).

The baseline, sampled interleaved in the same run, is a bare
``bwrap --unshare-all --proc /proc --dev /dev true`` (goal: <= 4x its median). For
where the time goes, it also prints the next exec on a running sandbox (the exec's own
share), and the create and the restore each with its first exec (a start that only moved
into their responses would show there).
The server runs as this user (as root, sprites run as an unprivileged host uid through
nested user namespaces, which the figure includes).

    python bench/bench_sandbox_start.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from bench_common import TOKEN, compare, start_server, summary, timed

from sprites_jupyter.local.runtime.sandbox.bwrap import find_bubblewrap

GOAL = 4.0
SETTLE = 0.6
"""Seconds each sample waits first, so that the background work the last one caused (the
views of a restore's undo checkpoint, a deleted sprite's files, the spares) is done."""


def _ndjson(http: httpx.Client, url: str) -> None:
    with http.stream("POST", url, json={}) as response:
        response.raise_for_status()
        response.read()


def _exec_true(http: httpx.Client, name: str) -> None:
    response = http.post(f"/v1/sprites/{name}/exec", params={"cmd": "true"})
    response.raise_for_status()
    assert response.content.endswith(b"\x03\x00"), response.content


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    bwrap = find_bubblewrap().path
    bare = [bwrap, "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
            "true"]
    with tempfile.TemporaryDirectory() as scratch:
        server, url = start_server(Path(scratch, "home"), "--isolation", "sandbox")
        try:
            http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                                timeout=120)
            http.post("/v1/sprites", json={"name": "restored"}).raise_for_status()
            _exec_true(http, "restored")
            _ndjson(http, "/v1/sprites/restored/checkpoint")
            rows = http.get("/v1/sprites/restored/checkpoints").json()
            checkpoint = next(row["id"] for row in rows if row["id"] != "Current")
            fresh, restored, warm, baseline = [], [], [], []
            create_and_exec, restore_and_exec = [], []
            for index in range(args.repeat):
                baseline.append(timed(lambda: subprocess.run(bare, check=True)))
                name = f"new-{index}"
                time.sleep(SETTLE)
                started = time.perf_counter()
                http.post("/v1/sprites", json={"name": name}).raise_for_status()
                fresh.append(timed(lambda name=name: _exec_true(http, name)))
                create_and_exec.append(time.perf_counter() - started)
                http.delete(f"/v1/sprites/{name}").raise_for_status()
                baseline.append(timed(lambda: subprocess.run(bare, check=True)))
                time.sleep(SETTLE)
                started = time.perf_counter()
                _ndjson(http, f"/v1/sprites/restored/checkpoints/{checkpoint}/restore")
                restored.append(timed(lambda: _exec_true(http, "restored")))
                restore_and_exec.append(time.perf_counter() - started)
                warm.append(timed(lambda: _exec_true(http, "restored")))
            print(f"server as {'root' if os.geteuid() == 0 else 'an unprivileged user'}, "
                  f"{args.repeat} samples, load {os.getloadavg()[0]:.1f}")
            for what, samples in (("first exec on a new sprite", fresh),
                                  ("first exec after a restore", restored)):
                compare(what, samples, baseline, most=GOAL, names=("exec", "bwrap true"))
            compare("for reference, the next exec (sandbox running)", warm, baseline,
                    names=("exec", "bwrap true"))
            summary("for reference, create + its first exec", create_and_exec)
            summary("for reference, restore + its first exec", restore_and_exec)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
