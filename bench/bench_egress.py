"""Benchmark a sprite's egress proxy against going direct, on the host's loopback.

    python bench/bench_egress.py [--megabytes 200] [--repeat 5] [--connections 200]

The proxy runs as in the server (an asyncio loop, the sockets the bridge would hand
over); a loopback HTTP server is reached by a name the proxy's test hosts map to it.
Prints, from interleaved samples measured in the same run:
  1. download throughput of N MB through the proxy / direct, for an HTTP request
     (absolute URI) and for a CONNECT tunnel (curl)              (target >= 0.5x)
     and the proxy's own CPU time per download (user + system; splice keeps the bytes in
     the kernel, so on a busy machine the ratio mostly measures scheduling)
  2. added latency per new connection: connect + one small request + response,
     through a CONNECT tunnel minus direct (Python sockets), min and median
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from bench_common import compare, summary

from sprites_jupyter.local.runtime.egress.proxy import EgressProxy

NAME = "bench.test"
BLOCK = memoryview(b"x" * (1 << 20))


def serve_bytes() -> None:
    """A threaded loopback server (``--origin``: its own process, so it never competes with
    the proxy for the GIL): ``GET /N`` answers N bytes. Prints its port, serves forever."""
    server = socket.create_server(("127.0.0.1", 0), backlog=256)

    def answer(client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            size = int(head.split(b" ", 2)[1].rsplit(b"/", 1)[1] or 0)
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                           % size)
            while size > 0:
                client.sendall(BLOCK[:size])
                size -= len(BLOCK)

    print(server.getsockname()[1], flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=answer, args=(client,), daemon=True).start()


def start_origin() -> tuple[subprocess.Popen[str], int]:
    origin = subprocess.Popen([sys.executable, __file__, "--origin"], stdout=subprocess.PIPE,
                              text=True)
    assert origin.stdout is not None
    return origin, int(origin.stdout.readline())


def start_proxy() -> int:
    """The proxy on its own loop thread, allowing only NAME. Returns its port."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    proxy = EgressProxy("bench", [{"domain": NAME, "action": "allow"}],
                        test_hosts={NAME: "127.0.0.1"})
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    listener.setblocking(False)
    asyncio.run_coroutine_threadsafe(proxy.serve(listener), loop).result()
    return listener.getsockname()[1]


def curl_seconds(args: list[str], size: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", *args],
                          capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    assert int(done.stdout) == size, done.stdout
    return elapsed


def request_seconds(port: int, target: str, *, tunnel: bool) -> float:
    """Connect, (CONNECT,) send one small request and read its whole answer."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as link:
        link.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tunnel:
            link.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
            assert link.recv(4096).startswith(b"HTTP/1.1 200")
        link.sendall(b"GET /10 HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := link.recv(65536):
            answer += chunk
    assert answer.endswith(b"x" * 10), answer
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--origin", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.origin:
        serve_bytes()
    if shutil.which("curl") is None:
        raise SystemExit("bench_egress needs curl")
    server, origin = start_origin()
    try:
        measure(args, origin, start_proxy())
    finally:
        server.kill()
        server.wait()


def measure(args: argparse.Namespace, origin: int, proxy: int) -> None:
    size = args.megabytes * 1_000_000
    proxy_url = f"http://127.0.0.1:{proxy}"
    runs: dict[str, Callable[[], float]] = {
        "direct": lambda: curl_seconds([f"http://127.0.0.1:{origin}/{size}"], size),
        "http": lambda: curl_seconds(["-x", proxy_url, f"http://{NAME}:{origin}/{size}"], size),
        "connect": lambda: curl_seconds(["-p", "-x", proxy_url, f"http://{NAME}:{origin}/{size}"],
                                        size),
    }
    seconds: dict[str, list[float]] = {key: [] for key in runs}
    cpu: list[float] = []
    for _ in range(args.repeat):
        for key, run in runs.items():
            started = time.process_time()
            seconds[key].append(run())
            if key != "direct":
                cpu.append(time.process_time() - started)
    print(f"1. {args.megabytes} MB download, {args.repeat} interleaved samples; throughput "
          f"through the proxy / direct is direct's time / the proxy's")
    for key in runs:
        summary(f"{key} ({size / statistics.median(seconds[key]) / 1e6:,.0f} MB/s median)",
                seconds[key], unit="s")
    for key in ("http", "connect"):
        compare(f"  {key} throughput / direct", seconds["direct"], seconds[key], least=0.5,
                unit="s", names=("direct", key))
    summary("proxy CPU per download", cpu, unit="s")

    direct, tunnelled = [], []
    for _ in range(args.connections):
        direct.append(request_seconds(origin, "", tunnel=False))
        tunnelled.append(request_seconds(proxy, f"{NAME}:{origin}", tunnel=True))
    added = [t - d for t, d in zip(tunnelled, direct, strict=True)]
    print(f"2. new connection + small request, {args.connections} interleaved samples")
    compare("  tunnel / direct", tunnelled, direct, names=("tunnel", "direct"))
    print(f"  added per connection: median {statistics.median(added) * 1e3:.3f} ms "
          f"(min-to-min {(min(tunnelled) - min(direct)) * 1e3:.3f} ms)")


if __name__ == "__main__":
    main()
