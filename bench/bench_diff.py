"""``%sprite diff`` between two checkpoints against ``diff -rq`` of the same two trees.

The figure: two checkpoints of a 20,000-file / 500 MB sprite that differ in
1% of the files (half of those rewritten at the same size), ``%sprite diff v1 v2``
against ``diff -rq`` of the same two trees on the host, in one run (target <= 1.5x).

The trees are made twice from one seed: on the host (``A`` and ``B``, for ``diff -rq``)
and inside a sprite of a local server (checkpoint ``v1``, the 1% rewrite, ``v2``),
which mounts its recent checkpoints at ``/.sprite/checkpoints/<id>/``. The diff runs
inside the sprite (the helper on stdin, one exec round trip), restricted to the data
directory so it compares what ``diff -rq`` compares. Also printed: the helper run
straight on the host trees (the program's own cost, no exec, no sandbox). Samples
are interleaved, 5 of each by default, after one warm-up; ratios use min and median.

    python bench/bench_diff.py [--files 20000] [--mb 500] [--repeat 5] [--host-only]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_common import TOKEN, start_server

from sprites_jupyter.client import SpritesClient
from sprites_jupyter.magic_commands.diff import checkpoint_changes, helper_source

DATA = "/home/sprite/data"

# Runs on the host and in the sprite alike: ``python3 -c BUILD ROOT FILES MB STAGE``;
# stage "base" writes every file, stage "change" rewrites 1% of them.
BUILD = """
import os, random, sys
root, files, mb, stage = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = random.Random(11)
mean = mb * 1024 * 1024 // files
sizes = [rng.randint(mean // 20, 2 * mean - mean // 20) for _ in range(files)]
for i, size in enumerate(sizes):
    path = os.path.join(root, "dir%02d" % (i % 100), "f%05d.bin" % i)
    if stage == "base":
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(random.Random(i).randbytes(size))
    elif i % 100 == 0:
        with open(path, "wb") as f:
            f.write(random.Random("changed %d" % i).randbytes(size + (i % 200 == 0)))
"""


def _build_host(scratch: Path, files: int, mb: int) -> tuple[Path, Path]:
    """Tree A, and B = a copy of A (``cp -a`` keeps the mtimes) with 1% rewritten."""
    a, b = scratch / "checkpoints" / "A", scratch / "checkpoints" / "B"
    subprocess.run([sys.executable, "-c", BUILD, str(a), str(files), str(mb), "base"],
                   check=True)
    subprocess.run(["cp", "-a", str(a), str(b)], check=True)
    subprocess.run([sys.executable, "-c", BUILD, str(b), str(files), str(mb), "change"],
                   check=True)
    return a, b


def _diff_rq(a: Path, b: Path) -> int:
    done = subprocess.run(["diff", "-rq", str(a), str(b)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 1, done.stderr
    return len(done.stdout.splitlines())


def _helper_on_host(a: Path, b: Path) -> int:
    request = {"op": "diff", "a": a.name, "b": b.name, "checkpoints": str(a.parent)}
    done = subprocess.run(["python3", "-", json.dumps(request)], input=helper_source(),
                          capture_output=True, text=True, check=True)
    return len(done.stdout.splitlines())


def _sprite(scratch: Path, files: int, mb: int) -> tuple[subprocess.Popen[str], Callable[[], int]]:
    process, url = start_server(scratch / "home")
    client = SpritesClient(TOKEN, url, timeout=600)
    client.create_sprite("bench-diff")
    handle = client.sprite("bench-diff")

    def run(*argv: str) -> None:
        result = handle.run(*argv, timeout=1800)
        if result.exit_code != 0:
            raise SystemExit(f"{argv[:2]} failed in the sprite: {result.stderr.strip()}")

    def checkpoint(comment: str) -> None:
        for _ in handle.create_checkpoint(comment):
            pass

    run("python3", "-c", BUILD, DATA, str(files), str(mb), "base")
    checkpoint("base")
    run("python3", "-c", BUILD, DATA, str(files), str(mb), "change")
    checkpoint("1% changed")
    probe = handle.run("test", "-d", "/.sprite/checkpoints/v2/home")
    if probe.exit_code != 0:
        process.terminate()
        raise SystemExit("this local server does not mount checkpoints inside sprites "
                         "(unsandboxed); run with --host-only")
    return process, lambda: len(checkpoint_changes(handle, "v1", "v2", [DATA]))


def _timed(action: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    found = action()
    return time.perf_counter() - start, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--host-only", action="store_true",
                        help="only the helper on host trees (no local server)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-diff-") as scratch_name:
        scratch = Path(scratch_name)
        a, b = _build_host(scratch, options.files, options.mb)
        contenders: dict[str, Callable[[], int]] = {
            "diff -rq A B (host)": lambda: _diff_rq(a, b),
            "helper on the host trees": lambda: _helper_on_host(a, b),
        }
        server = None
        if not options.host_only:
            server, sprite_diff = _sprite(scratch, options.files, options.mb)
            contenders["%sprite diff v1 v2 -- " + DATA] = sprite_diff
        try:
            samples: dict[str, list[float]] = {name: [] for name in contenders}
            found: dict[str, int] = {}
            subprocess.run(["sync"], check=True)
            for name, action in contenders.items():
                found[name] = _timed(action)[1]
            for _ in range(options.repeat):
                for name, action in random.sample(list(contenders.items()), len(contenders)):
                    samples[name].append(_timed(action)[0])
        finally:
            if server is not None:
                server.terminate()
                server.wait(60)
    baseline = samples["diff -rq A B (host)"]
    print(f"{options.files} files, {options.mb} MB, 1% changed; {options.repeat} samples each "
          f"(seconds: min / median)")
    for name, times in samples.items():
        ratio = (f"  {min(times) / min(baseline):.2f}x / "
                 f"{statistics.median(times) / statistics.median(baseline):.2f}x")
        print(f"  {name:<44} {min(times):7.3f} / {statistics.median(times):7.3f}"
              f"  {found[name]} differences{ratio}")
    print("target: %sprite diff <= 1.5x of diff -rq")


if __name__ == "__main__":
    main()
