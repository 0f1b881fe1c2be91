"""The large-file and many-file checkpoint figures (run from ``bench_checkpoint.py``): a
large file edited in place, and 50,000 small files; each against a same-run baseline,
interleaved samples.

Like the rest of ``bench_checkpoint.py`` they drive the snapshotter and the store in
process, as the checkpoint and restore endpoints do.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import stat
import statistics
import tempfile
import time
from pathlib import Path

from bench_common import compare, timed

from sprites_jupyter.local.storage import checkpoint_views
from sprites_jupyter.local.storage.snapshots import Snapshotter
from sprites_jupyter.local.storage.store import Store

SETTLE = 0.2  # let fresh writes age past the stat cache's racy window, as in real use
EDIT = 1_000_000
_BLOCK = 64 << 20
_READ = 1 << 20


def _allocated(*paths: Path) -> int:
    """Bytes of disk allocated under ``paths`` (what ``du`` counts)."""
    total = 0
    for path in paths:
        for directory, _, files in os.walk(path):
            for name in files:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total


def _read_and_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(_READ):
            digest.update(block)
    return digest.hexdigest()


def _walk(top: str) -> int:
    """The baseline of the small-file figures: ``os.scandir`` + ``lstat`` of every entry."""
    pending, count = [top], 0
    while pending:
        with os.scandir(pending.pop()) as scan:
            for entry in scan:
                count += 1
                if stat.S_ISDIR(entry.stat(follow_symlinks=False).st_mode):
                    pending.append(entry.path)
    return count


class _Sprite:
    """A snapshotter, a store and one sprite's tree under ``scratch``."""

    def __init__(self, scratch: Path) -> None:
        self.home = scratch / "home"
        self.root = self.home / "sprites" / "bench" / "root"
        (self.root / "home" / "sprite").mkdir(parents=True)
        self.store = Store(self.home / "metadata.sqlite3")
        self.snapshots = Snapshotter(self.home)
        self.created = False

    def checkpoint(self) -> str:
        manifest = self.snapshots.snapshot("bench", self.root)
        if not self.created:
            self.created = True
            self.store.create_sprite("bench", url_settings={}, labels=[], base_manifest=manifest)
            return "v0"
        return self.store.add_checkpoint("bench", manifest=manifest, comment="",
                                         is_auto=False).id

    def restore(self, checkpoint_id: str) -> None:
        row = self.store.get_checkpoint("bench", checkpoint_id)
        assert row is not None
        self.snapshots.restore("bench", self.root, row.manifest, checkpoint_id=row.id,
                               store=self.store)


def bench_large_file(parent: Path, megabytes: int, repeat: int) -> None:
    """One large file, 1 MB rewritten in place before each checkpoint."""
    with tempfile.TemporaryDirectory(dir=parent) as scratch_name:
        scratch = Path(scratch_name)
        free = shutil.disk_usage(scratch).free
        room = free // (8 << 20)  # the file, its store, five assembled views, and slack
        if room < megabytes:
            print(f"NOTICE: {free / 1e9:.1f} GB free in {scratch}: the large file is scaled "
                  f"down from {megabytes} MB to {room} MB")
            megabytes = room
        sprite = _Sprite(scratch)
        big = sprite.root / "home" / "sprite" / "big.bin"
        with open(big, "wb") as file:
            for _ in range(megabytes * (1 << 20) // _BLOCK):
                file.write(os.urandom(_BLOCK))
        size = big.stat().st_size
        time.sleep(SETTLE)
        first = timed(sprite.checkpoint)
        print(f"\nlarge file: {size / 1e6:,.0f} MB in {scratch}; first checkpoint "
              f"{first:.2f} s (stores every byte once)")
        views = scratch / "views"
        rng = random.Random(14)
        reads, checkpoints, growth, view_times, view_growth = [], [], [], [], []
        store_dirs = (sprite.home / "objects", sprite.home / "manifests",
                      sprite.home / "statcache")
        for _ in range(repeat):
            with open(big, "r+b") as file:
                file.seek(rng.randrange(size // 4, 3 * size // 4))
                file.write(os.urandom(EDIT))
            time.sleep(SETTLE)
            reads.append(timed(lambda: _read_and_hash(big)))
            before = _allocated(*store_dirs)
            checkpoints.append(timed(sprite.checkpoint))
            growth.append(_allocated(*store_dirs) - before)
            before = _allocated(sprite.snapshots.store.assembly)
            view_times.append(timed(checkpoint_views.CheckpointViews(
                sprite.snapshots, sprite.store, "bench", views).settle))
            view_growth.append(_allocated(sprite.snapshots.store.assembly) - before)
        names = ("ours", "a full read + SHA-256 of the file, 1 MiB reads")
        compare("checkpoint after a 1 MB edit", checkpoints, reads, most=1.0, unit="s",
                names=names)
        compare("its view (assembling the file), no target", view_times, reads, unit="s",
                names=names)
        worst = max(growth) / 1e6
        print(f"disk growth of the store per checkpoint: min {min(growth) / 1e6:.2f} MB, "
              f"median {statistics.median(growth) / 1e6:.2f} MB, worst {worst:.2f} MB "
              f"(target <= 2 MB) {'ok' if worst <= 2 else 'MISSED'}")
        print(f"disk growth of the views per checkpoint (an assembled copy): median "
              f"{statistics.median(view_growth) / 1e6:,.0f} MB, no target")
        sprite.store.close()


def bench_small_files(parent: Path, files: int, repeat: int) -> None:
    """Many small files: unchanged checkpoint, 1% changed, restore; against a walk."""
    with tempfile.TemporaryDirectory(dir=parent) as scratch_name:
        sprite = _Sprite(Path(scratch_name))
        data = sprite.root / "home" / "sprite" / "data"
        paths = []
        for i in range(files):
            directory = data / f"d{i % 500:03d}"
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"f{i:06d}.txt"
            path.write_bytes(os.urandom(512 + i % 3000))
            paths.append(path)
        time.sleep(SETTLE)
        first = timed(sprite.checkpoint)
        top = os.fspath(sprite.root)
        print(f"\nsmall files: {files:,} in 500 directories ({_walk(top):,} entries); first "
              f"checkpoint {first:.2f} s")
        walks: dict[str, list[float]] = {"unchanged": [], "changed": [], "restore": []}
        times: dict[str, list[float]] = {"unchanged": [], "changed": [], "restore": []}
        for round_number in range(repeat):
            walks["unchanged"].append(timed(lambda: _walk(top)))
            made: list[str] = []
            times["unchanged"].append(timed(lambda made=made: made.append(sprite.checkpoint())))
            for path in paths[round_number::100]:
                path.write_bytes(os.urandom(700))
            time.sleep(SETTLE)
            walks["changed"].append(timed(lambda: _walk(top)))
            times["changed"].append(timed(sprite.checkpoint))
            walks["restore"].append(timed(lambda: _walk(top)))
            times["restore"].append(timed(lambda target=made[0]: sprite.restore(target)))
        names = ("ours", "a Python os.scandir + lstat walk of the tree")
        for what, step, target in (("unchanged checkpoint", "unchanged", 1.5),
                                   ("checkpoint after 1% of the files rewritten", "changed",
                                    2.5),
                                   ("restore to before that change", "restore", 3.0)):
            compare(what, times[step], walks[step], most=target, unit="s", names=names)
        sprite.store.close()
