"""Checkpoint and restore speed of the local server, against ``cp -a`` and a ``find`` walk.

``--part api`` (part of ``all``) measures checkpoints as users take them, through the
running server's HTTP API with their ``/.sprite/checkpoints`` views and the disk they
hold (:mod:`bench_checkpoint_api`: an unchanged 100,000-file sprite against a ``find``
walk of its layer, 1 MB edits of a large file, the disk freed after deleting a sprite).
The other parts isolate the snapshotter, as below.

Builds a tree (default 5,000 files / 500 MB in 100 directories) and times ``cp -a`` of
it in the same run as the baseline: five copies, each after ``sync`` so none pays for
the build's own writeback. ``cp -a`` goes through the page cache, so its time swings
with the host's I/O (0.3 s to 3 s for the same tree on the same VM); every sample is
printed, and each operation is given as a ratio to the fastest copy (the strict
verdict) and to the median one. The operations and their targets:

* first checkpoint (no target: it stores every byte once);
* checkpoint of the unchanged tree (target <= 0.05x);
* checkpoint after rewriting 1% of the files (<= 0.1x);
* restore to the previous checkpoint after that 1% change (<= 0.2x);
* checkpoint right after that restore (no target: shows the stat cache survives it);
* disk growth of the unchanged checkpoint, all of the server home counted (<= 1 MB).

The verdicts use the fastest copy. Each timed operation after the first is the median
of three rounds (a different 1% of the files each round).

The ``tree`` part drives :class:`~sprites_jupyter.local.storage.snapshots.Snapshotter` and
the :class:`~sprites_jupyter.local.storage.store.Store` in-process (``snapshot`` then
``add_checkpoint``): the snapshot alone, without the views and locks a request adds;
``--part api`` is what users see.

The large-file and many-file figures follow (each a ratio to a baseline measured in the
same run, per pair of interleaved samples, min and median of ``--repeat`` pairs, 5 by
default):

* one large file (2 GB; scaled down, with a notice, when the disk lacks room), 1 MB of it
  rewritten in place between checkpoints: checkpoint time against a full read + SHA-256
  of the file (target <= 1.0x), and the disk growth of the store per checkpoint (target
  <= 2 MB); also shown, without a target, the cost of its checkpoint view (the
  chunked file assembled whole for ``/.sprite/checkpoints``: time and disk);
* 50,000 small files: unchanged checkpoint (target <= 1.5x), checkpoint after 1% of the
  files rewritten (<= 2.5x) and restore to the checkpoint before that change (<= 3x),
  each against a Python ``os.scandir`` + ``lstat`` walk of the tree.

    python bench/bench_checkpoint.py [--files 5000] [--mb 500] [--dir DIR] [--quick]
        [--part all|api|tree|large|small] [--large-mb 2048] [--small-files 50000]
        [--api-files 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import bench_checkpoint_api
from bench_checkpoint_parts import bench_large_file, bench_small_files
from bench_common import timed

from sprites_jupyter.local.storage.snapshots import Snapshotter
from sprites_jupyter.local.storage.store import Store

ROUNDS = 3
SETTLE = 0.2  # let fresh writes age past the stat cache's racy window, as in real use


def _allocated(path: Path) -> int:
    """Bytes of disk allocated under ``path`` (what ``du`` counts)."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total


def _build(root: Path, files: int, size: int) -> list[Path]:
    paths = []
    for i in range(files):
        directory = root / "home" / "sprite" / f"dir{i % 100:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"file{i:05d}.bin"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


def _baseline(root: Path, scratch: Path) -> list[float]:
    subprocess.run(["sync"], check=True)
    copy = scratch / "copy"
    command = ["cp", "-a", str(root), str(copy)]
    times = []
    for _ in range(5):
        times.append(timed(lambda: subprocess.run(command, check=True)))
        shutil.rmtree(copy)
        subprocess.run(["sync"], check=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to build the tree (default: a temp dir under $HOME)")
    parser.add_argument("--quick", action="store_true", help="500 files / 50 MB smoke run")
    parser.add_argument("--part", choices=("all", "api", "tree", "large", "small"),
                        default="all")
    parser.add_argument("--api-files", type=int, default=100_000)
    parser.add_argument("--large-mb", type=int, default=2048)
    parser.add_argument("--small-files", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    scratch_parent = args.dir or Path.home()
    if args.part in ("all", "api"):
        bench_checkpoint_api.run(scratch_parent, args.api_files, args.repeat, args.large_mb,
                                 "all")
    if args.part in ("all", "tree"):
        bench_tree(args, scratch_parent)
    if args.part in ("all", "large"):
        bench_large_file(scratch_parent, args.large_mb, args.repeat)
    if args.part in ("all", "small"):
        bench_small_files(scratch_parent, args.small_files, args.repeat)


def bench_tree(args: argparse.Namespace, scratch_parent: Path) -> None:
    """The checkpoint and restore figures against ``cp -a``."""
    files, megabytes = (500, 50) if args.quick else (args.files, args.mb)
    size = megabytes * 1024 * 1024 // files

    with tempfile.TemporaryDirectory(dir=scratch_parent) as scratch_name:
        scratch = Path(scratch_name)
        home = scratch / "home"
        root = home / "sprites" / "bench" / "root"
        paths = _build(root, files, size)
        print(f"tree: {files} files, {megabytes} MB, in {scratch}")
        samples = _baseline(root, scratch)
        baseline, typical = min(samples), statistics.median(samples)
        print("baseline cp -a: " + ", ".join(f"{t:.3f}" for t in samples)
              + f" s; fastest {baseline:.3f} s, median {typical:.3f} s")

        store = Store(home / "metadata.sqlite3")
        snapshots = Snapshotter(home)

        def checkpoint() -> str:
            manifest = snapshots.snapshot("bench", root)
            return store.add_checkpoint("bench", manifest=manifest, comment="",
                                        is_auto=False).id

        time.sleep(SETTLE)
        first = timed(lambda: store.create_sprite(
            "bench", url_settings={}, labels=[], base_manifest=snapshots.snapshot("bench", root)))

        unchanged, changed, restored, after_restore, growth = [], [], [], [], []
        for round_number in range(ROUNDS):
            before = _allocated(home)
            unchanged.append(timed(checkpoint))
            growth.append(_allocated(home) - before)
            previous = store.get_sprite("bench").source_id
            for path in paths[round_number::100]:  # 1% of the files, a new 1% each round
                path.write_bytes(os.urandom(size))
            time.sleep(SETTLE)
            changed.append(timed(checkpoint))
            row = store.get_checkpoint("bench", previous)
            assert row is not None
            restored.append(timed(lambda row=row: snapshots.restore(
                "bench", root, row.manifest, checkpoint_id=row.id, store=store)))
            after_restore.append(timed(checkpoint))

        rows = [
            ("first checkpoint", first, None),
            ("unchanged checkpoint", statistics.median(unchanged), 0.05),
            ("checkpoint after 1% rewritten", statistics.median(changed), 0.1),
            ("restore to previous after 1% change", statistics.median(restored), 0.2),
            ("checkpoint right after that restore", statistics.median(after_restore), None),
        ]
        print(f"{'operation':40} {'seconds':>8} {'x fastest':>9} {'x median':>9} {'target':>9}")
        for label, seconds, target in rows:
            ratio = seconds / baseline
            shown = "" if target is None else f"<= {target}"
            verdict = "" if target is None else ("ok" if ratio <= target else "MISSED")
            print(f"{label:40} {seconds:8.3f} {ratio:9.3f} {seconds / typical:9.3f} {shown:>9} "
                  f"{verdict}")
        worst = max(growth)
        verdict = "ok" if worst <= 1024 * 1024 else "MISSED"
        print(f"{'disk growth, unchanged checkpoint':40} {worst / 1024:8.1f} KB "
              f"(worst of {ROUNDS}; target <= 1024 KB) {verdict}")
        store.close()


if __name__ == "__main__":
    main()
