"""Benchmark our Sprites client beside the official ``sprites-py`` SDK, on one local server.

    pip install sprites-py        # bench-only; not a dependency of sprites-jupyter
    python bench/bench_client.py [--megabytes 200] [--checkpoints 1000] [--repeat 3]
                                 [--only throughput service listing short]

Prints ratios (ours / theirs) of medians measured in the same run:
  1. exec throughput streaming N MB of stdout          (target >= 1.0x sprites-py)
  2. request -> first event of a 5 s service create     (target <= 0.1x sprites-py)
  3. listing 1,000 checkpoints                          (target <= 1.0x sprites-py)
  4. exec throughput as a fraction of a local subprocess pipe of the same bytes (the limit;
     min and median of >= 5 interleaved samples, target >= 0.5)
  5. a short command, ``Sprite.run("true")`` (over our pooled control connection) /
     sprites-py's ``command("true").run()`` (a new exec socket each), interleaved
     (target <= 1.0x)
Without sprites-py the comparisons are skipped with a message; the rest still runs.
``--only`` runs some of the parts: ``throughput`` (1 and 4), ``service`` (2), ``listing``
(3), ``short`` (5).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench_common import compare, interleaved, timed

from sprites_jupyter.client import Sprite, SpritesClient
from sprites_jupyter.local.launcher import LocalServerInfo, ensure_server

try:
    import sprites as sprites_py
except ImportError:
    sprites_py = None

SERVICE = "import time\nprint('up', flush=True)\ntime.sleep(3600)"


class ByteCounter:
    """A stdout sink for sprites-py that only counts."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def median_time(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ours_stream(sprite: Sprite, size: int) -> None:
    received = 0
    with sprite.command("head", "-c", str(size), "/dev/zero", stdin=False) as cmd:
        for chunk in cmd:
            received += len(chunk.data)
    assert received == size and cmd.exit_code == 0, (received, cmd.exit_code)


def theirs_stream(sprite: object, size: int) -> None:
    sink = ByteCounter()
    sprite.command("head", "-c", str(size), "/dev/zero", stdout=sink).run()
    assert sink.count == size, sink.count


def pipe_stream(size: int) -> None:
    received = 0
    with subprocess.Popen(["head", "-c", str(size), "/dev/zero"],
                          stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        while chunk := process.stdout.read1(65536):
            received += len(chunk)
    assert received == size


def ours_first_event(sprite: Sprite, name: str) -> float:
    started = time.perf_counter()
    stream = sprite.create_service(name, "python3", ["-c", SERVICE], duration=5)
    next(stream)
    elapsed = time.perf_counter() - started
    stream.close()
    list(sprite.stop_service(name, timeout=5))
    return elapsed


def theirs_first_event(sprite: object, ours: Sprite, name: str) -> float:
    started = time.perf_counter()
    stream = sprite.create_service(name, "python3", ["-c", SERVICE], duration=5)
    next(iter(stream))
    elapsed = time.perf_counter() - started
    list(ours.stop_service(name, timeout=5))
    return elapsed


def report(label: str, ours: float, theirs: float | None, unit: str, target: str) -> None:
    if theirs is None:
        print(f"{label}: ours {ours:.3f} {unit}; sprites-py not installed "
              "(pip install sprites-py) - comparison skipped")
        return
    print(f"{label}: ours {ours:.3f} {unit}, sprites-py {theirs:.3f} {unit}, "
          f"ratio {ours / theirs:.3f}x (target {target})")


PARTS = ["throughput", "service", "listing", "short"]


def run(server: LocalServerInfo, megabytes: int, checkpoints: int, repeat: int,
        parts: list[str]) -> None:
    client = SpritesClient(server.token, server.url, timeout=120)
    theirs_client = sprites_py.SpritesClient(server.token, server.url, timeout=120) \
        if sprites_py else None
    name = f"bench-{uuid.uuid4().hex[:8]}"
    client.create_sprite(name)
    ours = client.sprite(name)
    theirs = theirs_client.sprite(name) if theirs_client else None
    try:
        if "throughput" in parts:
            bench_throughput(ours, theirs, megabytes, repeat)
        if "service" in parts:
            bench_service(ours, theirs, repeat)
        if "short" in parts and theirs is not None:
            compare("5. Sprite.run('true') / sprites-py command('true').run()", *interleaved(
                lambda: timed(lambda: ours.run("true")),
                lambda: timed(lambda: theirs.command("true").run()), repeat * 4),
                most=1.0, names=("ours", "sprites-py"))
        if "listing" in parts:
            bench_listing(ours, theirs, checkpoints, repeat)
    finally:
        client.delete_sprite(name)
        client.close()
        if theirs_client:
            theirs_client.close()


def bench_throughput(ours: Sprite, theirs: object | None, megabytes: int, repeat: int) -> None:
    size = megabytes * 1024 * 1024
    ours_stream(ours, 1024 * 1024)
    pairs = [(median_time(lambda: ours_stream(ours, size), 1),
              median_time(lambda: pipe_stream(size), 1)) for _ in range(max(repeat, 5))]
    fractions = [pipe / exec_ for exec_, pipe in pairs]
    ours_s = statistics.median(exec_ for exec_, _ in pairs)
    pipe_s = statistics.median(pipe for _, pipe in pairs)
    theirs_s = median_time(lambda: theirs_stream(theirs, size), repeat) if theirs else None
    ours_rate = megabytes / ours_s
    theirs_rate = megabytes / theirs_s if theirs_s else None
    report(f"1. exec throughput, {megabytes} MB stdout", ours_rate, theirs_rate, "MB/s",
           ">= 1.0x")
    print(f"4. exec throughput vs a local subprocess pipe: ours {ours_rate:.1f} MB/s, "
          f"pipe {megabytes / pipe_s:.1f} MB/s, fraction of interleaved samples min "
          f"{min(fractions):.3f} median {statistics.median(fractions):.3f} (target >= 0.5: "
          f"{'ok' if statistics.median(fractions) >= 0.5 else 'MISSED'})")


def bench_service(ours: Sprite, theirs: object | None, repeat: int) -> None:
    firsts = [ours_first_event(ours, f"svc{i}") for i in range(repeat)]
    theirs_firsts = ([theirs_first_event(theirs, ours, f"svc{i}") for i in range(repeat)]
                     if theirs else None)
    report("2. request -> first event, service create (5 s)", statistics.median(firsts),
           statistics.median(theirs_firsts) if theirs_firsts else None, "s", "<= 0.1x")


def bench_listing(ours: Sprite, theirs: object | None, checkpoints: int, repeat: int) -> None:
    for index in range(checkpoints):
        ours.create_checkpoint(f"bench {index}").wait()
    assert len(ours.list_checkpoints()) == checkpoints + 1
    list_s = median_time(ours.list_checkpoints, repeat)
    theirs_list = median_time(theirs.list_checkpoints, repeat) if theirs else None
    report(f"3. list {checkpoints} checkpoints", list_s, theirs_list, "s", "<= 1.0x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--checkpoints", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS,
                        help="run only these parts (default: all)")
    args = parser.parse_args()
    if sprites_py is None:
        print("sprites-py is not installed: pip install sprites-py to compare against it")
    with tempfile.TemporaryDirectory(prefix="sprites-bench-") as home:
        server = ensure_server(Path(home))
        try:
            run(server, args.megabytes, args.checkpoints, args.repeat, args.only)
        finally:
            os.kill(server.pid, signal.SIGTERM)
            for _ in range(200):
                try:
                    os.kill(server.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)


if __name__ == "__main__":
    main()
