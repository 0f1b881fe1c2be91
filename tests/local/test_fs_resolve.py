"""Resolving sprite paths inside a root fd: ``openat2(RESOLVE_IN_ROOT)`` and the
component-by-component fallback used where the kernel lacks it must agree, on a real
tree full of symlinks that try to climb out toward a host file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sprites_jupyter.local.storage.sprite_fs.resolve import have_openat2, open_in_root

PATHS = ["/", "/a", "/a/b/f", "/abs", "/abs/f", "/rel/b/f", "/chain", "/climb", "/climb/x",
         "/host", "/dangling", "/loop", "/a/b/f/x", "/fifo", "/a/../a/b", "/dotdot-link/b",
         "/deep/up/a/b/f", "/nope/x"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x").write_text("host file")
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("inside")
    (root / "deep" / "er").mkdir(parents=True)
    links = {
        "abs": "/a/b",                       # absolute: means the sprite's /a/b
        "rel": "../../../../a",              # .. stops at the root
        "chain": "abs/f",
        "climb": "../" * 20 + str(outside).lstrip("/"),
        "host": str(outside / "x"),          # a host path: not inside this root
        "dangling": "/nope",
        "loop": "loop2",
        "loop2": "loop",
        "dotdot-link": "..",                 # .. from / is / again
        "deep/up": "../..",
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    os.mkfifo(root / "fifo")
    return root


def _outcome(rootfd: int, path: str, *, follow: bool, use_openat2: bool) -> object:
    try:
        fd = open_in_root(rootfd, path, follow=follow, use_openat2=use_openat2)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    try:
        info = os.fstat(fd)
        return info.st_dev, info.st_ino
    finally:
        os.close(fd)


@pytest.mark.skipif(not have_openat2(), reason="this kernel has no openat2 to compare with")
@pytest.mark.parametrize("follow", [True, False])
def test_the_fallback_walk_agrees_with_openat2(root: Path, follow: bool) -> None:
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for path in PATHS:
            expected = _outcome(rootfd, path, follow=follow, use_openat2=True)
            assert _outcome(rootfd, path, follow=follow, use_openat2=False) == expected, path
    finally:
        os.close(rootfd)


@pytest.mark.parametrize("use_openat2", [True, False])
def test_symlinks_resolve_inside_the_root(root: Path, use_openat2: bool) -> None:
    if use_openat2 and not have_openat2():
        pytest.skip("this kernel has no openat2")
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    inside = os.stat(root / "a" / "b" / "f")
    try:
        def lands(path: str) -> object:
            return _outcome(rootfd, path, follow=True, use_openat2=use_openat2)

        for path in ("/abs/f", "/rel/b/f", "/chain", "/deep/up/a/b/f", "/a/../a/b/f"):
            assert lands(path) == (inside.st_dev, inside.st_ino), path
        for path in ("/climb/x", "/host", "/dangling", "/nope/x"):
            assert lands(path) == "ENOENT", path  # never the host's file
        assert lands("/loop") == "ELOOP"
        assert lands("/a/b/f/x") == "ENOTDIR"
        fifo = os.stat(root / "fifo")
        assert lands("/fifo") == (fifo.st_dev, fifo.st_ino)  # O_PATH: no blocking open
        top = os.stat(root)
        assert lands("/") == (top.st_dev, top.st_ino)
    finally:
        os.close(rootfd)
