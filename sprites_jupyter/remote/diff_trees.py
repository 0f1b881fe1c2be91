"""Two trees walked side by side, one JSON row per differing path.

Files are compared by type, size and mode first; contents are read only where
sizes match and either the mtimes differ or the file is small (a same-size
rewrite may keep its mtime), unless both sides are one file (the same inode and
ctime: two overlay views of one base file); reading stops at the first
differing block, in a few threads at once.
"""

from __future__ import annotations

import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor

from .diff_views import OPEN_FLAGS, View

SMALL_FILE = 64 * 1024
BLOCK = 1024 * 1024
READ = "read"
READERS = 4


def _read(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes (fewer only at the end of the file)."""
    data = os.read(fd, size)
    if len(data) == size or not data:
        return data
    chunks = [data]
    size -= len(data)
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def same_bytes(path_a: str, path_b: str, size: int) -> bool:
    """Whether two files that both had ``size`` bytes hold the same bytes (stops at the
    first differing block; an unreadable file counts as different)."""
    try:
        fd_a = os.open(path_a, OPEN_FLAGS)
    except OSError:
        return False
    try:
        fd_b = os.open(path_b, OPEN_FLAGS)
    except OSError:
        os.close(fd_a)
        return False
    try:
        while size > 0:
            block = min(size, BLOCK)
            data_a = _read(fd_a, block)
            if not data_a or data_a != _read(fd_b, block):
                return False
            size -= len(data_a)
        return True
    except OSError:
        return False
    finally:
        os.close(fd_a)
        os.close(fd_b)


def change(root_a: str, root_b: str, rel: str, a: os.stat_result,
           b: os.stat_result) -> str | None:
    """How ``rel`` changed between two existing entries, None if it did not, or READ
    when that depends on the contents of two regular files of the same size."""
    mode_a, mode_b = a.st_mode, b.st_mode
    if stat.S_IFMT(mode_a) != stat.S_IFMT(mode_b):
        return "type-changed"
    if stat.S_ISREG(mode_a):
        if a.st_size != b.st_size:
            return "modified"
        unread = (a.st_mtime_ns == b.st_mtime_ns
                  and (a.st_size > SMALL_FILE
                       or (a.st_ino == b.st_ino and a.st_ctime_ns == b.st_ctime_ns)))
        if not unread:
            return READ
    elif stat.S_ISLNK(mode_a):
        try:
            if os.readlink(root_a + rel) != os.readlink(root_b + rel):
                return "modified"
        except OSError:
            return "modified"
    elif not stat.S_ISDIR(mode_a) and a.st_rdev != b.st_rdev:
        return "modified"
    if mode_a != mode_b:
        return "mode-changed"
    return None


def row(rel: str, what: str, a: os.stat_result | None, b: os.stat_result | None) -> list:
    def size(info: os.stat_result | None) -> int | None:
        return None if info is None or stat.S_ISDIR(info.st_mode) else info.st_size

    return ["/" + rel, what, size(a), size(b),
            a.st_mtime_ns if a else None, b.st_mtime_ns if b else None]


class Comparison:
    """Walks two trees side by side and writes one row per differing path.

    Roots end with ``/``; paths inside them are relative ('' is the root).
    """

    def __init__(self, a: View, b: View, out, since_ns: int | None = None,
                 skipped: frozenset = frozenset()) -> None:
        self.a, self.b = a, b
        self.root_a, self.root_b = a.root, b.root
        self.out = out
        self.since_ns = since_ns
        self.skipped = skipped
        self.unread: list = []

    def ignored(self, rel: str) -> bool:
        """Whether ``rel`` is at or below a path that is never reported."""
        while rel:
            if rel in self.skipped:
                return True
            rel = rel.rpartition("/")[0]
        return False

    def added(self, rel: str, b: os.stat_result) -> bool:
        """Report ``rel``, found only in B; whether to look below it.

        With ``since_ns`` (A holds only what the sprite wrote, B is the whole
        filesystem now) an entry A lacks is new only if it changed after A was
        taken: older ones belong to the base image beneath, which a restore
        leaves alone. A directory counts when its entries changed too; every
        directory is looked into, since a base one may hold new files.
        """
        is_dir = stat.S_ISDIR(b.st_mode)
        since = self.since_ns
        if since is None or (b.st_ctime_ns >= since and (not is_dir or b.st_mtime_ns >= since)):
            self.emit(rel, "added", None, b)
        return is_dir

    def emit(self, rel: str, what: str, a: os.stat_result | None,
             b: os.stat_result | None) -> None:
        self.out.write(json.dumps(row(rel, what, a, b)) + "\n")

    def path(self, rel: str) -> None:
        """Compare one path (the root when ``rel`` is '') and everything under it."""
        if rel and self.ignored(rel):
            return
        a, b = self.a.lstat(rel), self.b.lstat(rel)
        if a is None and b is not None and rel:
            if self.added(rel, b):
                self.walk(rel, a, b)
            return
        if rel and a is not None:
            self.entry(rel, a, b)
        if self.is_dir(a) or self.is_dir(b):
            self.walk(rel, a, b)

    @staticmethod
    def is_dir(info: os.stat_result | None) -> bool:
        return info is not None and stat.S_ISDIR(info.st_mode)

    def entry(self, rel: str, a: os.stat_result, b: os.stat_result | None) -> None:
        if b is None:
            self.emit(rel, "removed", a, b)
        else:
            what = change(self.root_a, self.root_b, rel, a, b)
            if what == READ:
                self.unread.append((rel, a, b))
            elif what is not None:
                self.emit(rel, what, a, b)

    def read_contents(self) -> None:
        """Settle the files whose contents decide, reading in a few threads at once
        (reads release the GIL), each thread a slice of the list."""
        pending, self.unread = self.unread, []

        def settle(share: list) -> list:
            return [(rel, a, b, same_bytes(self.root_a + rel, self.root_b + rel, a.st_size))
                    for rel, a, b in share]

        shares = [pending[i::READERS] for i in range(READERS)]
        with ThreadPoolExecutor(READERS) as pool:
            for settled in pool.map(settle, shares):
                for rel, a, b, same in settled:
                    if not same:
                        self.emit(rel, "modified", a, b)
                    elif a.st_mode != b.st_mode:
                        self.emit(rel, "mode-changed", a, b)

    def walk(self, rel: str, a: os.stat_result | None, b: os.stat_result | None) -> None:
        """Everything below ``rel``, where at least one side is a directory."""
        stack = [(rel, self.is_dir(a), self.is_dir(b))]
        while stack:
            rel, dir_a, dir_b = stack.pop()
            under_a = self.a.children(rel) if dir_a else {}
            under_b = self.b.children(rel) if dir_b else {}
            prefix = rel + "/" if rel else ""
            for name in [n for n in under_a.keys() | under_b.keys()
                         if prefix + n in self.skipped]:
                under_a.pop(name, None)
                under_b.pop(name, None)
            for name, a in under_a.items():
                b = under_b.pop(name, None)
                if (b is not None and a.st_mode == b.st_mode and a.st_size == b.st_size
                        and a.st_mtime_ns == b.st_mtime_ns and a.st_size > SMALL_FILE
                        and stat.S_ISREG(a.st_mode)):
                    continue
                child = prefix + name
                self.entry(child, a, b)
                if stat.S_ISDIR(a.st_mode) or self.is_dir(b):
                    stack.append((child, stat.S_ISDIR(a.st_mode), self.is_dir(b)))
            for name, b in under_b.items():
                child = prefix + name
                if self.added(child, b):
                    stack.append((child, False, True))
