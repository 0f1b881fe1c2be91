"""Sprite paths (``/home/sprite/x``): normalising them, and mapping them onto a tree.

Every path a request names goes through :func:`sprite_path`, which refuses ``..``
climbing above ``/``. The filesystem API then resolves it inside the sprite's view
(:mod:`.sprite_fs`); :func:`resolve` maps a path onto a host path for the callers
that still start processes in a tree directory, refusing symlinks (followed as the
host would follow them) that leave it.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from ..errors import Forbidden, Invalid

SPRITE_HOME = "/home/sprite"
PATH_MAX = 4096  # Linux, counting the final NUL


def sprite_path(path: str, working_dir: str | None = "/") -> str:
    """Join ``path`` to ``working_dir`` and normalise it as an absolute sprite path.

    Raises Invalid when ``..`` would climb above the sprite's ``/``.
    """
    if not isinstance(path, str) or path == "":
        raise Invalid("missing path: give an absolute path or one relative to workingDir")
    if "\x00" in path:
        raise Invalid("path contains a NUL byte")
    if working_dir is not None and not isinstance(working_dir, str):
        raise Invalid(f"workingDir must be a string (an absolute sprite path such as "
                      f"/home/sprite), not {working_dir!r}")
    if working_dir and "\x00" in working_dir:
        raise Invalid("workingDir contains a NUL byte")
    base = working_dir or "/"
    if not base.startswith("/"):
        base = "/" + base
    joined = path if path.startswith("/") else posixpath.join(base, path)
    depth = 0
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            depth -= 1
            if depth < 0:
                raise Forbidden(
                    f"path {path!r} escapes the sprite root", fs_code="EACCES", path=path
                )
        else:
            depth += 1
    normal = posixpath.normpath(joined).replace("//", "/")
    if len(os.fsencode(normal)) >= PATH_MAX:
        raise Invalid(f"path too long: {len(os.fsencode(normal))} bytes, the limit is "
                      f"{PATH_MAX - 1}", fs_code="EINVAL", path=normal[:200])
    return normal


def host_path(root: Path, spath: str, *, follow_last: bool = True) -> Path:
    """The host path for the absolute sprite path ``spath`` under ``root``.

    Symlinks are followed as the host follows them (that is what processes in the
    sprite see); a result outside ``root`` is refused (Forbidden). With
    ``follow_last=False`` the last component is not followed, so a symlink itself
    can be deleted, renamed or listed.
    """
    root_real = os.path.realpath(root)
    candidate = os.path.join(root_real, spath.lstrip("/"))
    if follow_last:
        real = os.path.realpath(candidate)
    else:
        parent, name = os.path.split(candidate)
        real = os.path.join(os.path.realpath(parent), name) if name else os.path.realpath(parent)
    if real != root_real and not real.startswith(root_real + os.sep):
        raise Forbidden(
            f"path {spath!r} resolves outside the sprite root", fs_code="EACCES", path=spath
        )
    return Path(real)


def resolve(root: Path, path: str, working_dir: str | None = "/", *, follow_last: bool = True
            ) -> tuple[str, Path]:
    """Both the normalised sprite path and its host path."""
    spath = sprite_path(path, working_dir)
    return spath, host_path(root, spath, follow_last=follow_last)
