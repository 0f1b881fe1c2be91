"""Benchmark the local server's filesystem API against copying the same bytes on disk.

    python bench/bench_fs.py [--megabytes 256] [--repeat 5]

Each sample, interleaved: write N MB through ``PUT /fs/write`` (streamed from memory),
read them back through ``GET /fs/read``, and copy a file of N MB with ``shutil`` on the
same disk (the baseline: what the bytes cost without HTTP). Prints min and median of
each and the ratios to the baseline, plus the server's peak resident memory growth
(streaming means it stays far below N MB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from sprites_jupyter.local.launcher import ensure_server

CHUNK = 1 << 20


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    size = args.megabytes * CHUNK
    block = os.urandom(CHUNK)

    def body() -> Iterator[bytes]:
        for _ in range(args.megabytes):
            yield block

    with tempfile.TemporaryDirectory() as tmp:
        server = ensure_server(Path(tmp) / "home")
        source = Path(tmp) / "source.bin"
        with open(source, "wb") as handle:
            for chunk in body():
                handle.write(chunk)
        try:
            headers = {"Authorization": f"Bearer {server.token}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=300) as http:
                name = f"bench-{uuid.uuid4().hex[:8]}"
                http.post("/v1/sprites", json={"name": name}).raise_for_status()
                fs = f"/v1/sprites/{name}/fs"
                rss_before = _peak_rss_kb(server.pid)
                times: dict[str, list[float]] = {"write": [], "read": [], "disk copy": []}
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    http.put(f"{fs}/write", params={"path": "/home/sprite/big"},
                             content=body()).raise_for_status()
                    times["write"].append(time.perf_counter() - started)

                    started = time.perf_counter()
                    received = 0
                    with http.stream("GET", f"{fs}/read",
                                     params={"path": "/home/sprite/big"}) as response:
                        for chunk in response.iter_raw(CHUNK):
                            received += len(chunk)
                    assert received == size, received
                    times["read"].append(time.perf_counter() - started)

                    started = time.perf_counter()
                    shutil.copyfile(source, Path(tmp) / "copy.bin")
                    times["disk copy"].append(time.perf_counter() - started)
                rss_growth_mb = (_peak_rss_kb(server.pid) - rss_before) / 1024
        finally:
            os.kill(server.pid, signal.SIGTERM)

    base = statistics.median(times["disk copy"])
    print(f"{args.megabytes} MB, {args.repeat} interleaved samples")
    for label, samples in times.items():
        median = statistics.median(samples)
        print(f"  {label:10s} min {min(samples):6.3f} s  median {median:6.3f} s  "
              f"{args.megabytes / median:7.1f} MB/s  {median / base:5.2f}x disk copy")
    print(f"  server peak RSS growth: {rss_growth_mb:.1f} MB for {args.megabytes} MB moved "
          f"({rss_growth_mb / args.megabytes:.3f}x)")


if __name__ == "__main__":
    main()
