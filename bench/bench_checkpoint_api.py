"""Checkpoints as users take them: through the running server's HTTP API, views included.

A sprite of the local server (sandboxed where bubblewrap works) is given ``--files`` small
files by a command inside it; then, interleaved ``--repeat`` times, ``POST
/checkpoint`` of the unchanged sprite (the whole NDJSON stream, to ``complete``) against
the baseline, a ``find -printf`` walk of the sprite's layer on the host (every entry's
name, size and mtime: what any snapshot must at least look at). A checkpoint's cost must
follow what changed, not the file count, so the target is <= 1.5x; the
``/.sprite/checkpoints`` views a checkpoint brings are built off the request path, and
the bench reports when the newest view is ready (a ``stat`` from inside the sprite).
The same again with one file appended to before each checkpoint: the cost of a change.

Last, the disk figures: a ``--large-mb`` file edited 1 MB at a time, checkpointed
after each of 5 edits, and the server home's growth (target <= 2x the changed bytes plus
metadata); then the sprite is deleted and the home's size followed for a few seconds
(target: back to where it was before the sprite, within seconds, no restart).

    python bench/bench_checkpoint_api.py [--files 100000] [--repeat 5] [--large-mb 2048]
        [--part all|small|large] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from bench_common import TOKEN, start_server, timed

from sprites_jupyter.client import SpritesClient

FILL = """
import os, sys
count = int(sys.argv[1])
for d in range(100):
    os.makedirs(f"/home/sprite/many/d{d:02d}", exist_ok=True)
for i in range(count):
    with open(f"/home/sprite/many/d{i % 100:02d}/f{i:06d}", "w") as f:
        f.write(str(i))
"""
EDIT = """
import os, sys
with open("/home/sprite/big.bin", "r+b") as f:
    f.seek(int(sys.argv[1]))
    f.write(os.urandom(1_000_000))
"""


def _allocated(path: Path) -> int:
    """Bytes of disk allocated under ``path`` (what ``du`` counts; hard links once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            info = os.lstat(os.path.join(directory, name))
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def _checkpoint(http: httpx.Client, name: str) -> str:
    """POST a checkpoint and read its stream to the end; the last line."""
    with http.stream("POST", f"/v1/sprites/{name}/checkpoint", json={}) as response:
        response.raise_for_status()
        lines = [line for line in response.iter_lines() if line]
    if '"complete"' not in lines[-1]:
        raise SystemExit(f"checkpoint failed: {lines[-1]}")
    return lines[-1]


def _walk(layer: Path) -> None:
    subprocess.run(["find", str(layer), "-printf", "%p %s %T@\n"], check=True,
                   stdout=subprocess.DEVNULL)


def _ratios(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    ours = [a for a, _ in pairs]
    base = [b for _, b in pairs]
    return min(ours) / min(base), statistics.median(ours) / statistics.median(base)


def bench_small(client: SpritesClient, http: httpx.Client, home: Path, files: int,
                repeat: int) -> None:
    name = "bench-many"
    client.create_sprite(name)
    sprite = client.sprite(name)
    sprite.run("python3", "-c", FILL, str(files), check=True, timeout=600)
    layer = home / "sprites" / name / "root"
    def view_ready(last: str) -> None:
        view = last.split("Checkpoint ")[-1].split(" ")[0]
        sprite.run("sh", "-c", f"until [ -d /.sprite/checkpoints/{view} ]; do sleep 0.02; done",
                   timeout=600, check=True)

    view_ready(_checkpoint(http, name))  # the first stores every file once
    time.sleep(0.3)
    pairs = []
    for _ in range(max(repeat, 5)):
        walk = timed(lambda: _walk(layer))
        started = time.perf_counter()
        last = _checkpoint(http, name)
        took = time.perf_counter() - started
        view_ready(last)  # the next sample does not share the machine with this build
        ready = time.perf_counter() - started
        pairs.append((took, walk))
        print(f"  checkpoint {took:.3f} s (its view ready after {ready:.3f} s), "
              f"find walk {walk:.3f} s")
    low, typical = _ratios(pairs)
    verdict = "ok" if low <= 1.5 else "MISSED"
    print(f"unchanged {files:,}-file sprite, checkpoint vs find walk: min {low:.2f}x, "
          f"median {typical:.2f}x (target <= 1.5x) {verdict}")
    pairs = []
    for number in range(max(repeat, 5)):  # a cell's worth of change: one file appended to
        sprite.run("sh", "-c", f"echo {number} >> /home/sprite/many/d00/f000000", check=True)
        walk = timed(lambda: _walk(layer))
        started = time.perf_counter()
        last = _checkpoint(http, name)
        pairs.append((time.perf_counter() - started, walk))
        view_ready(last)
    low, typical = _ratios(pairs)
    verdict = "ok" if low <= 1.5 else "MISSED"
    print(f"one file changed in the {files:,}, checkpoint vs find walk: min {low:.2f}x, "
          f"median {typical:.2f}x (target <= 1.5x) {verdict}")
    client.delete_sprite(name)


def bench_large(client: SpritesClient, http: httpx.Client, home: Path, megabytes: int) -> None:
    name = "bench-large"
    before_sprite = _allocated(home)
    client.create_sprite(name)
    sprite = client.sprite(name)
    sprite.run("sh", "-c", f"head -c {megabytes}M /dev/urandom > /home/sprite/big.bin",
               check=True, timeout=600)
    _checkpoint(http, name)
    time.sleep(5)  # the first view settles (it may assemble the file)
    start = _allocated(home)
    edits = 5
    for number in range(edits):
        offset = (number * 997 * 1_048_576) % (megabytes * 1_048_576 - 1_000_000)
        sprite.run("python3", "-c", EDIT, str(offset), check=True)
        took = timed(lambda: _checkpoint(http, name))
        print(f"  edit {number + 1}: checkpoint {took:.3f} s")
    time.sleep(5)  # background view work settles
    growth = _allocated(home) - start
    changed = edits * 1_000_000
    verdict = "ok" if growth <= 2 * changed + 2_000_000 else "MISSED"
    print(f"1 MB edits of a {megabytes} MB file x {edits} checkpoints: home grew "
          f"{growth / 1e6:,.1f} MB for {changed / 1e6:.0f} MB changed (target <= 2x + "
          f"metadata) {verdict}")
    deleted = time.perf_counter()
    client.delete_sprite(name)
    freed_after = None
    while time.perf_counter() - deleted < 30:
        if _allocated(home) <= before_sprite + 2_000_000:
            freed_after = time.perf_counter() - deleted
            break
        time.sleep(0.5)
    left = _allocated(home) - before_sprite
    print("disk after deleting the sprite: " + (
        f"back to its size before it within {freed_after:.1f} s ok" if freed_after is not None
        else f"{left / 1e6:,.0f} MB still held after 30 s MISSED"))


def run(scratch_parent: Path, files: int, repeat: int, large_mb: int, part: str) -> None:
    """The figures above on a server of their own, its home under ``scratch_parent``."""
    with tempfile.TemporaryDirectory(dir=scratch_parent) as scratch:
        home = Path(scratch) / "home"
        process, url = start_server(home)
        client = SpritesClient(TOKEN, url, timeout=600)
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=600)
        try:
            print(f"load: {os.getloadavg()[0]:.2f}, server isolation: "
                  f"{client.local_isolation()}")
            if part in ("all", "small"):
                bench_small(client, http, home, files, repeat)
            if part in ("all", "large"):
                bench_large(client, http, home, large_mb)
        finally:
            http.close()
            client.close()
            process.terminate()
            process.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--large-mb", type=int, default=2048)
    parser.add_argument("--part", choices=("all", "small", "large"), default="all")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the server home goes (default: a temp dir under $HOME)")
    args = parser.parse_args()
    run(args.dir or Path.home(), args.files, args.repeat, args.large_mb, args.part)


if __name__ == "__main__":
    main()
