"""Benchmark reaching a web app in a sprite: through a forwarded port and the local sprite URL.

    python bench/bench_reach.py [--megabytes 200] [--samples 5] [--requests 50]

A sprite serves a file with ``python3 -m http.server`` (its HTTP service); the same
server program serves a file of the same size straight from the host: the baseline.
Samples of the three paths are interleaved, and each prints min and median:
  1. download throughput via ``%sprite forward`` (PortForward) / direct   (target >= 0.5x)
  2. download throughput via http://NAME.localhost:PORT/ / direct         (target >= 0.5x)
  3. time per small request (a new connection each) and what each path adds to direct
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from sprites_jupyter.client import PortForward, Sprite, SpritesClient
from sprites_jupyter.local.launcher import ensure_server

CHUNK = 1 << 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def download(client: httpx.Client, url: str, size: int, **headers: str) -> None:
    received = 0
    with client.stream("GET", url, headers=headers) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(CHUNK):
            received += len(chunk)
    assert received == size, (url, received, size)


def wait_for(client: httpx.Client, url: str, **headers: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.get(url, headers=headers).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} never answered")
        time.sleep(0.2)


def download_seconds(http: httpx.Client, base: str, headers: dict[str, str],
                     size: int) -> float:
    started = time.perf_counter()
    download(http, base + "big.bin", size, **headers)
    return time.perf_counter() - started


def seconds_per_request(base: str, headers: dict[str, str], requests: int) -> float:
    """Small GETs, each on a new connection (http.server closes after every answer)."""
    with httpx.Client(timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as fresh:
        started = time.perf_counter()
        for _ in range(requests):
            fresh.get(base + "small.txt", headers=headers).raise_for_status()
        return (time.perf_counter() - started) / requests


def prepare_sprite(sprite: Sprite, size: int, port: int) -> None:
    sprite.run("sh", "-c", f"mkdir -p files && head -c {size} /dev/urandom > files/big.bin "
               "&& echo small > files/small.txt", check=True, timeout=300)
    for _ in sprite.create_service("web", "python3", ["-m", "http.server", str(port)],
                                   http_port=port, dir="/home/sprite/files", duration=0):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    size = args.megabytes * 1024 * 1024

    with tempfile.TemporaryDirectory(prefix="sprites-bench-") as home:
        server = ensure_server(Path(home))
        files = Path(home) / "direct"
        files.mkdir()
        with (files / "big.bin").open("wb") as out:
            for _ in range(args.megabytes):
                out.write(os.urandom(CHUNK))
        (files / "small.txt").write_text("small\n")
        direct_port = free_port()
        direct = subprocess.Popen([sys.executable, "-m", "http.server", str(direct_port),
                                   "--bind", "127.0.0.1", "--directory", str(files)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = SpritesClient(server.token, server.url)
        name = f"bench-reach-{uuid.uuid4().hex[:8]}"
        client.create_sprite(name)
        sprite = client.sprite(name)
        try:
            prepare_sprite(sprite, size, free_port())
            sprite_url = client.get_sprite(name).url
            url_port = httpx.URL(server.url).port
            forward = PortForward(sprite, sprite.list_services()[0].http_port or 0)
            auth = {"Authorization": f"Bearer {server.token}",
                    "Host": f"{name}.localhost:{url_port}"}
            bases = {
                "direct": (f"http://127.0.0.1:{direct_port}/", {}),
                "forward": (f"http://127.0.0.1:{forward.local_port}/", {}),
                "sprite URL": (f"{server.url}/", auth),
            }
            with httpx.Client(timeout=120) as http:
                for base, headers in bases.values():
                    wait_for(http, base + "small.txt", **headers)
                run(http, bases, size, args)
            print(f"(sprite URL {sprite_url}; {args.megabytes} MB; {args.samples} interleaved "
                  f"samples; {args.requests} requests per latency sample)")
            forward.stop()
        finally:
            client.delete_sprite(name)
            client.close()
            direct.terminate()
            direct.wait()
            stop_server(server.pid)


def stop_server(pid: int) -> None:
    """End the local server this run started (its home is about to be removed)."""
    os.kill(pid, signal.SIGTERM)
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def run(http: httpx.Client, bases: dict[str, tuple[str, dict[str, str]]], size: int,
        args: argparse.Namespace) -> None:
    seconds: dict[str, list[float]] = {path: [] for path in bases}
    latency: dict[str, list[float]] = {path: [] for path in bases}
    for _ in range(args.samples):
        for path, (base, headers) in bases.items():
            seconds[path].append(download_seconds(http, base, headers, size))
            latency[path].append(seconds_per_request(base, headers, args.requests))
    megabytes = size / 1e6
    print(f"{'path':<12} {'MB/s min':>10} {'MB/s median':>12} {'ms/request min':>15} "
          f"{'median':>8}")
    for path in bases:
        print(f"{path:<12} {megabytes / max(seconds[path]):>10.0f} "
              f"{megabytes / statistics.median(seconds[path]):>12.0f} "
              f"{min(latency[path]) * 1e3:>15.2f} {statistics.median(latency[path]) * 1e3:>8.2f}")
    direct_median = statistics.median(seconds["direct"])
    for path in ("forward", "sprite URL"):
        ratio = direct_median / statistics.median(seconds[path])
        best = min(seconds["direct"]) / min(seconds[path])
        added = (statistics.median(latency[path]) - statistics.median(latency["direct"])) * 1e3
        print(f"{path}: throughput {ratio:.2f}x direct (median; best {best:.2f}x; target "
              f">= 0.5x), adds {added:.2f} ms per request (median)")


if __name__ == "__main__":
    main()
