"""What the platform owns in a running sprite, never a user's change: a path it has
mounted read-only (generated ``/etc/hosts``, masked host files, ``/.sprite``) or from a
filesystem a checkpoint does not keep (``/proc``, ``/dev``, a tmpfs ``/run``), read from
the sprite's mount table.
"""

from __future__ import annotations

from .diff_views import relative

MOUNTINFO = "/proc/self/mountinfo"
# Kernel and memory filesystems: what is mounted from them is not in a checkpoint.
UNKEPT_FILESYSTEMS = frozenset(("proc", "sysfs", "tmpfs", "devtmpfs", "devpts", "mqueue",
                                "cgroup", "cgroup2", "ramfs", "securityfs", "debugfs",
                                "tracefs", "bpf", "pstore", "hugetlbfs", "binfmt_misc"))


def unescape_mount_path(text: str) -> str:
    """A mountinfo path with its octal escapes (``\\040`` for a space) decoded."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def platform_mounts(mountinfo: str) -> set:
    """The mount points (relative paths) that belong to the platform: read-only ones and
    those of filesystems a checkpoint does not keep. The root itself never is."""
    found = set()  # type: set[str]
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as file:
            lines = file.read().splitlines()
    except OSError:
        return found
    for line in lines:
        head, _, tail = line.partition(" - ")
        fields, rest = head.split(" "), tail.split(" ")
        if len(fields) < 6 or not rest:
            continue
        rel = relative(unescape_mount_path(fields[4]))
        if rel and ("ro" in fields[5].split(",") or rest[0] in UNKEPT_FILESYSTEMS):
            found.add(rel)
    return found
