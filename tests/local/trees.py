"""Building and fingerprinting directory trees for snapshot tests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


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
