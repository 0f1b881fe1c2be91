"""Compare, list and read a sprite's checkpoints from inside the sprite.

Run inside the sprite as ``python3 - REQUEST`` with this file on stdin, where
REQUEST is one JSON object (standard library only, Python 3.8+), so nothing
but the answer crosses the network:

- ``{"op": "diff", "a": ID, "b": ID or null, "paths": [...], "since": S}``: one
  JSON array per differing path, ``[path, change, size_a, size_b, mtime_a_ns,
  mtime_b_ns]``. ``b`` null means the sprite as it is now; ``since`` (Unix
  seconds, when A was taken) matters when A's view holds only the sprite's own
  layer (no ``/usr/bin``), as the local server's do: see ``Comparison.added``.
- ``{"op": "file", "a": ID, "b": ID or null, "path": P}``: one object, the
  unified diff of a text file or the sizes of a binary one.
- ``{"op": "read", "a": ID, "path": P}``: one object with the base64 bytes.
- ``{"op": "list", "a": ID, "path": P}``: one object per entry, as the
  filesystem API lists them.

Checkpoints are the read-only trees under ``/.sprite/checkpoints`` and "now"
is ``/``; a request may name other roots (``"checkpoints"``, ``"now"``) and another
mount table (``"mountinfo"``). A checkpoint that is not there exits 3 with
``{"error": "not-mounted", "mounted": [...]}``; other refusals exit 2 with
``{"error": MESSAGE}``.

What the platform owns is never a change: a path the running sprite has mounted
read-only (generated ``/etc/hosts``, masked host files, ``/.sprite``) or from a
filesystem a checkpoint does not keep (``/proc``, ``/dev``, a tmpfs ``/run``), in
every view compared, and the paths a request names as its caller's own bookkeeping
(``"own"``).

Files are compared by type, size and mode first; contents are read only where
sizes match and either the mtimes differ or the file is small (a same-size
rewrite may keep its mtime), unless both sides are one file (the same inode and
ctime: two overlay views of one base file); reading stops at the first
differing block, in a few threads at once.
"""

from __future__ import annotations

import base64
import difflib
import json
import os
import posixpath
import stat
import sys
import time
from concurrent.futures import ThreadPoolExecutor

CHECKPOINTS = "/.sprite/checkpoints"
MOUNTINFO = "/proc/self/mountinfo"
# Where a view records what its shared files cannot carry (see record_of): the platform's.
RECORD = ".sprite/stat.json"
# Kernel and memory filesystems: what is mounted from them is not in a checkpoint.
UNKEPT_FILESYSTEMS = frozenset(("proc", "sysfs", "tmpfs", "devtmpfs", "devpts", "mqueue",
                                "cgroup", "cgroup2", "ramfs", "securityfs", "debugfs",
                                "tracefs", "bpf", "pstore", "hugetlbfs", "binfmt_misc"))
SMALL_FILE = 64 * 1024
BLOCK = 1024 * 1024
BINARY_PROBE = 8192
READ = "read"
READERS = 4
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
           and os.path.isdir(os.path.join(checkpoints, ".building-" + checkpoint_id))):
        time.sleep(0.1)
    if "/" in checkpoint_id or checkpoint_id in ("", ".", "..") or not os.path.isdir(root):
        try:
            mounted = sorted(n for n in os.listdir(checkpoints) if not n.startswith("."))
        except OSError:
            mounted = []
        raise Refusal({"error": "not-mounted", "id": checkpoint_id, "mounted": mounted}, 3)
    return root


def relative(path: str) -> str:
    """A sprite path as a path relative to a root ('' for the root itself)."""
    return posixpath.normpath("/" + path).lstrip("/")


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


def is_binary(data: bytes) -> bool:
    if b"\0" in data[:BINARY_PROBE]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def read_side(root: str, rel: str) -> bytes | None:
    info = lstat(root, rel)
    if info is None:
        return None
    if stat.S_ISDIR(info.st_mode):
        raise Refusal({"error": f"/{rel} is a directory: compare it with "
                                f"%sprite diff A [B] -- /{rel}"})
    if not stat.S_ISREG(info.st_mode):
        raise Refusal({"error": f"/{rel} is a {kind(info)}, not a regular file"})
    try:
        with os.fdopen(os.open(os.path.join(root, rel), OPEN_FLAGS), "rb") as file:
            return file.read()
    except OSError as error:
        raise Refusal({"error": f"cannot read /{rel}: {error.strerror}"}) from None


def file_diff(root_a: str, root_b: str, rel: str, label_a: str, label_b: str) -> dict:
    data_a = read_side(root_a, rel)
    data_b = read_side(root_b, rel)
    if data_a is None and data_b is None:
        raise Refusal({"error": f"/{rel} exists in neither {label_a} nor {label_b}"})
    answer = {"size_a": None if data_a is None else len(data_a),
              "size_b": None if data_b is None else len(data_b),
              "same": data_a == data_b, "binary": False, "diff": ""}
    if any(data is not None and is_binary(data) for data in (data_a, data_b)):
        answer["binary"] = True
        return answer
    lines_a = (data_a or b"").decode("utf-8").splitlines(keepends=True)
    lines_b = (data_b or b"").decode("utf-8").splitlines(keepends=True)
    answer["diff"] = "".join(difflib.unified_diff(
        lines_a, lines_b, f"{label_a}:/{rel}" if data_a is not None else "/dev/null",
        f"{label_b}:/{rel}" if data_b is not None else "/dev/null"))
    return answer


def read_file(view: View, rel: str) -> dict:
    root = view.root
    info = view.lstat(rel)
    if info is None:
        raise Refusal({"error": f"no such file or directory: /{rel}"})
    answer = {"type": kind(info), "size": info.st_size, "mode": f"{stat.S_IMODE(info.st_mode):04o}"}
    if stat.S_ISLNK(info.st_mode):
        answer["target"] = os.readlink(os.path.join(root, rel))
    elif stat.S_ISREG(info.st_mode):
        data = read_side(root, rel) or b""
        answer["data"] = base64.b64encode(data).decode("ascii")
    return answer


def entry(rel: str, info: os.stat_result) -> dict:
    what = kind(info)
    return {"name": rel.rsplit("/", 1)[-1], "path": "/" + rel,
            "type": what if what in ("directory", "symlink") else "file", "size": info.st_size,
            "mode": f"{stat.S_IMODE(info.st_mode):04o}", "modTime": info.st_mtime,
            "isDir": what == "directory"}


def list_dir(view: View, rel: str, out) -> None:
    info = view.lstat(rel)
    if info is None:
        raise Refusal({"error": f"no such file or directory: /{rel}"})
    if not stat.S_ISDIR(info.st_mode):
        out.write(json.dumps(entry(rel, info)) + "\n")
        return
    prefix = rel + "/" if rel else ""
    for name, child in sorted(view.children(rel).items()):
        out.write(json.dumps(entry(prefix + name, child)) + "\n")


def answer(request: dict, out) -> None:
    """Write the answer to one request on ``out`` (raises Refusal)."""
    op = request.get("op")
    checkpoints = request.get("checkpoints") or CHECKPOINTS
    now = request.get("now") or "/"
    root_a = checkpoint_root(checkpoints, str(request.get("a") or ""))
    b = request.get("b")
    root_b = now if b is None else checkpoint_root(checkpoints, str(b))
    view_a = View(root_a, record_of(root_a))
    view_b = View(now, {}) if b is None else View(root_b, record_of(root_b))
    if op == "diff":
        since = request.get("since")
        layer_only = (b is None and since is not None
                      and not os.path.lexists(os.path.join(root_a, "usr", "bin"))
                      and os.path.isdir(os.path.join(now, "usr", "bin")))
        skipped = platform_mounts(request.get("mountinfo") or MOUNTINFO)
        own = request.get("own") or ()
        skipped.update(relative(path) for path in [checkpoints, RECORD, *own])
        skipped.discard("")
        cutoff = int(since * 1e9) if layer_only and since is not None else None
        comparison = Comparison(view_a, view_b, out, cutoff, frozenset(skipped))
        for path in request.get("paths") or ["/"]:
            comparison.path(relative(path))
        comparison.read_contents()
    elif op == "file":
        label_b = "now" if b is None else str(b)
        out.write(json.dumps(file_diff(root_a, root_b, relative(request["path"]),
                                       str(request["a"]), label_b)) + "\n")
    elif op == "read":
        out.write(json.dumps(read_file(view_a, relative(request["path"]))) + "\n")
    elif op == "list":
        list_dir(view_a, relative(request["path"]), out)
    else:
        raise Refusal({"error": f"unknown op {op!r}"})


def main(argv: list) -> int:
    out = sys.stdout
    try:
        answer(json.loads(argv[1]), out)
    except Refusal as refusal:
        out.write(json.dumps(refusal.answer) + "\n")
        return refusal.code
    finally:
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
