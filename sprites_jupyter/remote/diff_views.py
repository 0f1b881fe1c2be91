"""The trees a checkpoint request reads, as the in-sprite diff program sees them.

Checkpoints are the read-only trees under ``/.sprite/checkpoints/<id>`` and "now" is
``/``. A view whose files are shared objects (the local server's hard links) records
their modes and mtimes beside them (``.sprite/stat.json``); :class:`View` reads an entry
through that record. A request that cannot be answered raises :class:`Refusal`.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
import time

CHECKPOINTS = "/.sprite/checkpoints"
# Where a view records what its shared files cannot carry (see record_of): the platform's.
RECORD = ".sprite/stat.json"
BUILDING = ".building-"  # beside a view the server announced and still builds
VIEW_WAIT = 600.0
# Never follow a symlink or wait on a fifo that replaced a file after it was looked at.
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class Refusal(Exception):
    """A request that cannot be answered; ``code`` is the exit status."""

    def __init__(self, answer: dict, code: int = 2) -> None:
        super().__init__(answer)
        self.answer = answer
        self.code = code


def checkpoint_root(checkpoints: str, checkpoint_id: str) -> str:
    """The tree of a mounted checkpoint, or a Refusal naming the mounted ones. A view
    being built (``.building-<id>``: a large file is assembled) is waited for."""
    root = os.path.join(checkpoints, checkpoint_id)
    deadline = time.monotonic() + VIEW_WAIT
    while (not os.path.isdir(root) and time.monotonic() < deadline and "/" not in checkpoint_id
           and os.path.isdir(os.path.join(checkpoints, BUILDING + checkpoint_id))):
        time.sleep(0.1)
    if "/" in checkpoint_id or checkpoint_id in ("", ".", "..") or not os.path.isdir(root):
        try:
            names = os.listdir(checkpoints)
        except OSError:
            names = []
        # a view still being built can be compared too (a request for it waits)
        mounted = sorted({n[len(BUILDING):] if n.startswith(BUILDING) else n
                          for n in names if not n.startswith(".") or n.startswith(BUILDING)})
        raise Refusal({"error": "not-mounted", "id": checkpoint_id, "mounted": mounted}, 3)
    return root


def relative(path: str) -> str:
    """A sprite path as a path relative to a root ('' for the root itself)."""
    return posixpath.normpath("/" + path).lstrip("/")


def lstat(root: str, rel: str) -> os.stat_result | None:
    try:
        return os.lstat(os.path.join(root, rel) if rel else root)
    except OSError:
        return None


def kind(info: os.stat_result) -> str:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def children(directory: str) -> dict:
    """The names in a directory, each with its lstat (entries that vanish are left out)."""
    found = {}
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    found[entry.name] = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
    except OSError:
        pass
    return found


class Recorded:
    """An entry's lstat, with the mode and mtime its view records for it."""

    __slots__ = ("st_ctime_ns", "st_dev", "st_ino", "st_mode", "st_mtime_ns", "st_rdev",
                 "st_size")

    def __init__(self, info: os.stat_result, mode: int, mtime_ns: int) -> None:
        self.st_mode = stat.S_IFMT(info.st_mode) | mode
        self.st_mtime_ns = mtime_ns
        self.st_size, self.st_ino, self.st_dev = info.st_size, info.st_ino, info.st_dev
        self.st_rdev, self.st_ctime_ns = info.st_rdev, info.st_ctime_ns

    @property
    def st_mtime(self) -> float:
        return self.st_mtime_ns / 1e9


def record_of(root: str) -> dict:
    """What a view records in ``.sprite/stat.json`` (``{"entries": {path: [mode,
    mtime_ns]}}``) when its files are shared objects that cannot carry their own
    modes and mtimes (the local server's are hard links); {} for a view without one."""
    try:
        with open(os.path.join(root, RECORD), encoding="utf-8") as file:
            entries = json.load(file)["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return entries if isinstance(entries, dict) else {}


class View:
    """A tree to compare: a root, and what its record says about its entries."""

    def __init__(self, root: str, record: dict) -> None:
        self.root = root.rstrip("/") + "/"
        self.record = record

    def recorded(self, rel: str, info: os.stat_result):
        kept = self.record.get(rel) if self.record else None
        return info if kept is None else Recorded(info, kept[0], kept[1])

    def lstat(self, rel: str) -> os.stat_result | None:
        info = lstat(self.root, rel)
        return None if info is None else self.recorded(rel, info)

    def children(self, rel: str) -> dict:
        found = children(self.root + rel)
        if self.record:
            prefix = rel + "/" if rel else ""
            found = {name: self.recorded(prefix + name, info) for name, info in found.items()}
        return found
