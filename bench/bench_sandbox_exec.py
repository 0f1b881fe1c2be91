"""The warm exec path, and what speeding sandbox starts must not cost it.

Through the local server's API (``POST /v1/sprites/NAME/exec?cmd=true``, sandboxed), on
a sprite whose sandbox already runs:

1. one exec after another, against a bare ``bwrap --unshare-all ... true`` sampled
   interleaved (the floor a command in a fresh sandbox could reach);
2. 20 execs at once (threads), each exec's share of the burst's wall time against one
   exec alone (target <= 1x: concurrent execs wait for nothing but the CPU);
3. 1,000 execs in a row: the server's open fds, threads and memory before and after,
   and the sprite's processes (target: no fd, thread or process left behind).

    python bench/bench_sandbox_exec.py [--repeat 10] [--execs 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from bench_common import TOKEN, compare, start_server, timed

from sprites_jupyter.local.runtime.sandbox.bwrap import find_bubblewrap

BURST = 20


def _exec(http: httpx.Client, *argv: str) -> bytes:
    response = http.post("/v1/sprites/warm/exec", params=[("cmd", a) for a in argv])
    response.raise_for_status()
    assert response.content.endswith(b"\x03\x00"), response.content
    return response.content


def _server_usage(pid: int) -> tuple[int, int, float]:
    """The server's open fds, threads and resident memory (MB)."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    return (len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"]),
            int(fields["VmRSS"].split()[0]) / 1024)


def _sprite_processes(http: httpx.Client) -> int:
    """Processes in the sprite, the counting shell (which globs ``/proc`` itself) among
    them: the same before and after unless something was left behind."""
    out = _exec(http, "sh", "-c", "echo /proc/[0-9]*")
    assert out[:1] == b"\x01", out
    return len(out[1:-2].split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--execs", type=int, default=1000)
    args = parser.parse_args()
    bare = [find_bubblewrap().path, "--unshare-all", "--ro-bind", "/", "/", "--proc",
            "/proc", "--dev", "/dev", "true"]
    with tempfile.TemporaryDirectory() as scratch:
        server, url = start_server(Path(scratch, "home"), "--isolation", "sandbox")
        try:
            limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
            http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                                timeout=120, limits=limits)
            http.post("/v1/sprites", json={"name": "warm"}).raise_for_status()
            for _ in range(3):
                _exec(http, "true")
            warm, bwrap, alone, shares = [], [], [], []
            with ThreadPoolExecutor(BURST) as pool:
                for _ in range(max(args.repeat, 5)):
                    warm.append(timed(lambda: _exec(http, "true")))
                    bwrap.append(timed(lambda: subprocess.run(bare, check=True)))
                    alone.append(timed(lambda: _exec(http, "true")))
                    started = time.perf_counter()
                    list(pool.map(lambda _: _exec(http, "true"), range(BURST)))
                    shares.append((time.perf_counter() - started) / BURST)
            print(f"server as {'root' if os.geteuid() == 0 else 'an unprivileged user'}, "
                  f"load {os.getloadavg()[0]:.1f}")
            compare("warm exec / bwrap true", warm, bwrap, names=("exec", "bwrap true"))
            compare(f"each of {BURST} concurrent execs / one alone", shares, alone, most=1.0,
                    names=("share", "alone"))
            before, processes_before = _server_usage(server.pid), _sprite_processes(http)
            started = time.perf_counter()
            for _ in range(args.execs):
                _exec(http, "true")
            elapsed = time.perf_counter() - started
            after, processes_after = _server_usage(server.pid), _sprite_processes(http)
            leaked = (after[0] - before[0], processes_after - processes_before)
            print(f"{args.execs:,} execs in {elapsed:.1f} s ({elapsed / args.execs * 1e3:.2f} ms "
                  f"each): server fds {before[0]} -> "
                  f"{after[0]}, threads {before[1]} -> {after[1]}, memory {before[2]:.0f} -> "
                  f"{after[2]:.0f} MB; sprite processes {processes_before} -> "
                  f"{processes_after} (target: no fd or process left behind: "
                  f"{'ok' if max(leaked) <= 0 else 'MISSED'})")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
