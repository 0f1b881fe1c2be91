"""What a sprite's layer on disk is made of, as snapshots, restores and views read it.

A sprite directory holds ``root`` (the tree: the sandbox's writable layer) and, beside
it, ``platform`` (what the sprite sees as ``/.sprite``). Manifest paths are the sprite's:
``.sprite/...`` lives in the platform directory, everything else in the tree
(:func:`locate`). Besides directories (``d``), files (``f``) and symlinks (``l``), a tree
holds what overlayfs writes into an upper layer: whiteouts (``w``, a 0/0 character
device: a base file the sprite deleted) and opaque directories (``o``: one that hides the
base directory beneath it, marked by an extended attribute).
"""

from __future__ import annotations

import contextlib
import os
import stat

PLATFORM = "platform"  # beside the tree; the sprite sees it as /.sprite
PLATFORM_PATH = ".sprite"
# What of the platform directory a checkpoint holds (as /.sprite/...); not checkpoints/
# (views of other checkpoints) nor run/ (the server's sockets).
CAPTURED_PLATFORM = ("services", "policy", "logs")
DIR_KINDS = ("d", "o")
OPAQUE_XATTRS = ("user.overlay.opaque", "trusted.overlay.opaque")


def locate(top: str, path: str) -> str:
    """The host path of manifest path ``path`` for the tree ``top``."""
    if path == PLATFORM_PATH or path.startswith(PLATFORM_PATH + "/"):
        return os.path.join(os.path.dirname(top), PLATFORM) + path[len(PLATFORM_PATH):]
    return top if path == "." else f"{top}/{path}"


def is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def is_opaque(path: str) -> bool:
    """Whether overlayfs marked the directory opaque (it hides the base beneath)."""
    for name in OPAQUE_XATTRS:
        with contextlib.suppress(OSError):
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
    return False
