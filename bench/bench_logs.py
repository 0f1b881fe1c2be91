"""Benchmark following a service's log on the local server.

    python bench/bench_logs.py [--samples 5] [--rate 100000] [--lines 300000]

Prints, as min and median of interleaved samples, each against its same-run baseline:
  1. ``logs --follow`` of a producer at RATE lines/s, lines/s received
     / the same producer read through a local pipe                  (target >= 0.8x)
  2. an unrelated GET while an unthrottled producer (``yes``) is followed (by a
     process of its own, so its parsing does not hold this one's GIL)
     / the same GET with the server idle                            (target <= 2.0x)
  3. the server's memory growth while flooded (MB; bounded, not a ratio) and the
     lines the follower was told it missed (drop notices)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from bench_common import TOKEN, start_server, summary

PRODUCER = """
import sys, time
rate, total = int(sys.argv[1]), int(sys.argv[2])
batch = max(rate // 100, 1)
line = "a log line of some ordinary length, number %d\\n"
start = time.monotonic()
for sent in range(0, total, batch):
    sys.stdout.write("".join(line % i for i in range(sent, min(sent + batch, total))))
    sys.stdout.flush()
    ahead = start + (sent + batch) / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
time.sleep(3600)
"""
FLOOD_LINE = "0123456789" * 6
# The flood's follower runs in a process of its own: a thread of this one parsing as fast
# as it can would hold the GIL the measured GET needs (up to the 5 ms switch interval).
FOLLOWER = """
import json, os, sys, threading
import httpx
url, token, svc = sys.argv[1:4]
counts = {"seen": 0, "dropped": 0}

def stop_on_eof():
    sys.stdin.read()
    print(json.dumps(counts), flush=True)
    os._exit(0)

threading.Thread(target=stop_on_eof, daemon=True).start()
with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                  timeout=60) as http, http.stream(
        "GET", f"/v1/sprites/bench/services/{svc}/logs",
        params={"lines": "0", "duration": "600s"}) as response:
    print("following", flush=True)
    for line in response.iter_lines():
        if line:
            event = json.loads(line)
            if event["type"] == "stdout":
                counts["seen"] += event["data"].count("\\n")
            elif event["type"] == "error" and event.get("dropped"):
                counts["dropped"] += event["dropped"]
"""


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pipe_rate(rate: int, total: int) -> float:
    """Lines/s of the producer read line by line through a local pipe."""
    proc = subprocess.Popen(["python3", "-c", PRODUCER, str(rate), str(total)],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    first = 0.0
    for seen, _ in enumerate(proc.stdout, 1):
        if seen == 1:
            first = time.perf_counter()
        if seen == total:
            break
    elapsed = time.perf_counter() - first
    proc.kill()
    proc.wait()
    return (total - 1) / elapsed


def _follow(http: httpx.Client, svc: str, total: int | None, stop: threading.Event,
            result: dict[str, float]) -> None:
    """Read the followed log as fast as possible; counts lines, drops and the time taken."""
    seen = dropped = before_first = 0
    first = 0.0
    with http.stream("GET", f"/v1/sprites/bench/services/{svc}/logs",
                     params={"lines": "0", "duration": "600s"}) as response:
        for line in response.iter_lines():
            if not line:
                continue
            event = json.loads(line)
            if event["type"] == "stdout":  # one event per read: a chunk of lines
                if seen == 0:
                    first = time.perf_counter()
                    before_first = event["data"].count("\n")
                seen += event["data"].count("\n")
            elif event["type"] == "error" and event.get("dropped"):
                dropped += event["dropped"]
            if stop.is_set() or (total is not None and seen + dropped >= total):
                break
    result.update(seen=seen, dropped=dropped, elapsed=time.perf_counter() - first,
                  timed=seen - before_first)


def follow_rate(http: httpx.Client, rate: int, total: int) -> tuple[float, int]:
    """Lines/s the follower receives from the same producer run as a service."""
    body = {"cmd": "python3", "args": ["-c", "import time; time.sleep(1)\n" + PRODUCER,
                                            str(rate), str(total)]}
    result: dict[str, float] = {}
    assert http.put("/v1/sprites/bench/services/paced", params={"duration": "0"},
                    json=body).status_code == 200
    _follow(http, "paced", total, threading.Event(), result)
    http.post("/v1/sprites/bench/services/paced/stop", params={"timeout": "1s"})
    return result["timed"] / result["elapsed"], int(result["dropped"])


def get_latency(http: httpx.Client, count: int = 20) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        http.get("/v1/sprites/bench")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def flooded(http: httpx.Client, pid: int, token: str) -> tuple[float, float, int]:
    """GET latency while ``yes`` is followed; the memory growth; the lines dropped."""
    before = _rss_mb(pid)
    assert http.put("/v1/sprites/bench/services/flood", params={"duration": "0"},
                    json={"cmd": "yes", "args": [FLOOD_LINE]}).status_code == 200
    follower = subprocess.Popen([sys.executable, "-c", FOLLOWER, str(http.base_url), token,
                                 "flood"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
    assert follower.stdout is not None and follower.stdin is not None
    assert follower.stdout.readline().strip() == "following"
    time.sleep(1.0)
    latency = get_latency(http)
    growth = _rss_mb(pid) - before
    follower.stdin.close()
    counts = json.loads(follower.stdout.readline())
    follower.wait(30)
    http.post("/v1/sprites/bench/services/flood/stop", params={"timeout": "1s"})
    return latency, growth, int(counts["dropped"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--rate", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=300_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        process, url = start_server(Path(home))
        token = TOKEN
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                              timeout=60) as http:
                assert http.post("/v1/sprites", json={"name": "bench"}).status_code == 201
                follow, latency, growth, drops = [], [], [], []
                for _ in range(args.samples):
                    pipe = pipe_rate(args.rate, args.lines)
                    got, lost = follow_rate(http, args.rate, args.lines)
                    follow.append(got / pipe)
                    print(f"  follow {got:,.0f} lines/s (dropped {lost}), pipe {pipe:,.0f}")
                    idle = get_latency(http)
                    busy, grew, missed = flooded(http, process.pid, token)
                    latency.append(busy / idle)
                    growth.append(grew)
                    drops.append(missed)
                    print(f"  GET idle {idle * 1e3:.2f} ms, flooded {busy * 1e3:.2f} ms; "
                          f"server +{grew:.0f} MB; follower told of {missed:,} dropped lines")
                summary(f"logs --follow at {args.rate:,} lines/s / local pipe", follow,
                        unit="x", least=0.8)
                summary("unrelated GET, unthrottled producer followed / idle", latency,
                        unit="x", most=2.0)
                print(f"server memory growth while flooded: max {max(growth):.0f} MB, "
                      f"median {statistics.median(growth):.0f} MB (bounded)")
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
