"""Building and fingerprinting directory trees for snapshot tests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from sprites_jupyter.local.storage.snapshots import Snapshotter
from sprites_jupyter.local.storage.store import Store


def fill(directory: Path, files: int, size: int, seed: str) -> None:
    """Write ``files`` files of ``size`` bytes whose content depends on ``seed``."""
    for i in range(files):
        sub = directory / f"d{i % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        block = hashlib.sha256(f"{seed}:{i}".encode()).digest()
        (sub / f"f{i:05d}.bin").write_bytes(block * (size // len(block)))


def fingerprint(root: Path, *, mtimes: bool = False) -> str:
    """A digest of every path, type, mode, link target and file content under ``root``
    (and, with ``mtimes``, every modification time, the root's included)."""
    digest = hashlib.sha256()
    if mtimes:
        digest.update(f"{root.lstat().st_mtime_ns}".encode())
    for directory, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(directory) / name
            info = path.lstat()
            digest.update(f"{path.relative_to(root)}:{info.st_mode:o}".encode())
            if mtimes:
                digest.update(f":{info.st_mtime_ns}".encode())
            if path.is_symlink():
                digest.update(os.readlink(path).encode())
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


# What a server keeps per sprite: the tree, the platform directory (/.sprite), and the
# sandbox's scratch; anything else would be a restore's or checkpoint's leftover.
SPRITE_DIR_PARTS = {"root", "platform", "sandbox"}


def leftovers(sprite_dir: Path) -> set[str]:
    """Names in a server's sprite directory that are not its tree, platform or scratch."""
    names = {p.name for p in sprite_dir.iterdir()}
    assert "root" in names
    return names - SPRITE_DIR_PARTS


def demo_sprite(tmp_path: Path, prepare: Callable[[Path], None] | None = None,
                **sprite: object) -> tuple[Snapshotter, Store, Path]:
    """A home under ``tmp_path`` with one sprite ``demo``, its base snapshot taken after
    ``prepare(root)`` (default: an empty ``/home/sprite``): (snapshots, store, root)."""
    home = tmp_path / "home"
    home.mkdir()
    store = Store(home / "metadata.sqlite3")
    snapshots = Snapshotter(home)
    root = home / "sprites" / "demo" / "root"
    if prepare is None:
        (root / "home" / "sprite").mkdir(parents=True)
    else:
        prepare(root)
    base = snapshots.snapshot("demo", root)
    store.create_sprite("demo", url_settings=sprite.get("url_settings", {}), labels=[],
                        base_manifest=base)
    return snapshots, store, root
