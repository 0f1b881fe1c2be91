"""Keeps a notebook cell's output on the sprite, so that it outlives the kernel.

A kept cell's folder holds ``meta.json``, its output as numbered segments
``output.000001``, ``output.000002``, … of records (a letter: ``o`` stdout, ``e``
stderr, ``d`` a display's JSON, ``x`` the cell's final JSON, always the last; 8 hex
digits of length; a newline; the bytes), ``dropped`` (bytes of the oldest segments
deleted to stay within the limit) and ``exit`` (written after the last record). A
segment never changes once a newer one exists, so a reader takes the older ones whole
through the file API and only follows the newest.

``run DIR LIMIT KIND FIRST_LINE -- ARGV…`` runs ARGV (a ``%%sprite_exec`` cell),
passing its output through and keeping it. ``follow DIR SEGMENT OFFSET`` writes the
records from that segment and byte on to stdout as they come, and exits with the
cell's status. ``list ROOT`` prints every cell's ``meta.json`` plus whether it still
runs and whether a kernel saw its end, one JSON object a line. The Python session's
agent imports :class:`KeptOutput` to keep its cells the same way.
Standard library only, Python 3.8+: it is uploaded through the public file API.
"""

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time

SEGMENTS = 4
HEADER = 10  # the letter, 8 hex digits of length, a newline
KEPT_CELLS = 50  # ended cells kept per sprite beside the running ones; older ones go
FOLLOW_POLL = 0.05
READ_SIZE = 1 << 20


def segment_name(number: int) -> str:
    return f"output.{number:06d}"


def record(letter: bytes, data: bytes) -> bytes:
    return letter + b"%08x\n" % len(data) + data


def _write_atomically(path: str, text: str) -> None:
    partial = path + ".partial"
    with open(partial, "w") as target:
        target.write(text)
    os.replace(partial, path)


class KeptOutput:
    """A cell's output appended as records, in at most ``SEGMENTS`` segments of a
    quarter of ``limit`` each: the oldest is deleted (and counted) when a new one starts."""

    def __init__(self, folder: str, limit: int, meta: dict) -> None:
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self.segment_size = max(limit // SEGMENTS, 1024)
        self.lock = threading.Lock()
        self.number = 0
        self.size = 0
        self.dropped = 0
        self.fd = -1
        _write_atomically(os.path.join(folder, "meta.json"), json.dumps(
            dict(meta, id=os.path.basename(folder), started=time.time(), pid=os.getpid())))
        self._next_segment()
        prune(os.path.dirname(folder))

    def append(self, letter: bytes, data: bytes) -> None:
        """One record; text larger than a segment is split, so the limit holds for it
        (a display or the final record is kept whole)."""
        room = self.segment_size - HEADER
        pieces = ([data[i:i + room] for i in range(0, len(data), room)]
                  if letter in (b"o", b"e") and data else [data])
        with self.lock:
            for piece in pieces:
                self._write(record(letter, piece))

    def _write(self, entry: bytes) -> None:
        if self.fd < 0:
            return
        if self.size and self.size + len(entry) > self.segment_size:
            self._next_segment()
        view = memoryview(entry)
        while view:
            view = view[os.write(self.fd, view):]
        self.size += len(entry)

    def finish(self, code: int, final: dict) -> None:
        """The final record, then ``exit``: a reader that sees ``exit`` has everything."""
        self.append(b"x", json.dumps(dict(final, exit_code=code)).encode())
        with self.lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
        _write_atomically(os.path.join(self.folder, "exit"), str(code))

    def _next_segment(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.number += 1
        self.size = 0
        self.fd = os.open(os.path.join(self.folder, segment_name(self.number)),
                          os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        oldest = self.number - SEGMENTS
        if oldest >= 1:
            path = os.path.join(self.folder, segment_name(oldest))
            self.dropped += os.path.getsize(path)
            _write_atomically(os.path.join(self.folder, "dropped"), str(self.dropped))
            os.remove(path)


def prune(root: str) -> None:
    """Delete the oldest ended cells past ``KEPT_CELLS`` (ids begin with their start time
    in milliseconds); a running cell is never touched."""
    ended = [name for name in os.listdir(root)
             if os.path.exists(os.path.join(root, name, "exit"))]
    ended.sort(key=lambda name: (len(name.partition("-")[0]), name))
    for name in ended[:-KEPT_CELLS]:
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def run(folder: str, limit: int, kind: str, first_line: str, argv: list) -> int:
    kept = KeptOutput(folder, limit, {"kind": kind, "first_line": first_line})
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda signum, _: child.send_signal(signum))
    selector = selectors.DefaultSelector()
    assert child.stdout is not None and child.stderr is not None
    streams = {child.stdout.fileno(): (b"o", sys.stdout.buffer),
               child.stderr.fileno(): (b"e", sys.stderr.buffer)}
    for fd in streams:
        selector.register(fd, selectors.EVENT_READ)
    while selector.get_map():
        for key, _ in selector.select():
            data = os.read(key.fd, 65536)
            if not data:
                selector.unregister(key.fd)
                continue
            letter, out = streams[key.fd]
            kept.append(letter, data)
            try:
                out.write(data)
                out.flush()
            except OSError:
                pass  # nobody reads the session any more: the folder still keeps it
    code = child.wait()
    code = 128 - code if code < 0 else code
    kept.finish(code, {})
    return code


def read_int(path: str):
    """The number in ``path``, or ``None`` while it is not there."""
    try:
        with open(path) as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return None


def _segments(folder: str) -> list:
    numbers = []
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        head, _, digits = name.partition(".")
        if head == "output" and digits.isdigit():
            numbers.append(int(digits))
    return sorted(numbers)


def _copy(source, out) -> None:
    while True:
        data = source.read(READ_SIZE)
        if not data:
            return
        out.write(data)
        out.flush()


def follow(folder: str, number: int, offset: int) -> int:
    """Copy the records from segment ``number``, byte ``offset``, as they are written."""
    out = sys.stdout.buffer
    current = None
    while True:
        code = read_int(os.path.join(folder, "exit"))
        numbers = _segments(folder)
        if current is None:
            if number not in numbers:
                later = [n for n in numbers if n > number]
                if not later:
                    if code is not None:
                        return code
                    if _ended_without_exit(folder):
                        return _gone()
                    time.sleep(FOLLOW_POLL)
                    continue
                sys.stderr.write("[output dropped while following: SpriteMagics."
                                 "cell_output_kept keeps more]\n")
                number, offset = later[0], 0
            try:
                current = open(os.path.join(folder, segment_name(number)), "rb")  # noqa: SIM115
            except FileNotFoundError:
                continue  # dropped since the listing: the next one says so
            current.seek(offset)
        _copy(current, out)  # whole when a newer segment or the exit was there before
        if any(n > number for n in numbers):
            current.close()
            current = None
            number += 1
            offset = 0
            continue
        if code is not None:
            return code
        if _ended_without_exit(folder):
            return _gone()
        time.sleep(FOLLOW_POLL)


def _ended_without_exit(folder: str) -> bool:
    """The writer is gone and left no ``exit`` (read after the liveness check, as a writer
    that ends normally writes ``exit`` before it goes)."""
    return not _alive(folder) and read_int(os.path.join(folder, "exit")) is None


def _gone() -> int:
    sys.stderr.write("[the cell's process is gone without an exit status: the sprite "
                     "restarted or it was killed]\n")
    return 137


def _alive(folder: str) -> bool:
    try:
        with open(os.path.join(folder, "meta.json")) as meta:
            pid = json.load(meta)["pid"]
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError):
        return False
    return True


def list_cells(root: str) -> int:
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else ():
        folder = os.path.join(root, name)
        try:
            with open(os.path.join(folder, "meta.json")) as meta:
                info = json.load(meta)
        except (OSError, ValueError):
            continue
        info["exit_code"] = read_int(os.path.join(folder, "exit"))
        info["running"] = info["exit_code"] is None and _alive(folder)
        info["seen"] = os.path.exists(os.path.join(folder, "seen"))
        print(json.dumps(info))
    return 0


def main(args: list) -> int:
    if args[:1] == ["run"] and "--" in args:
        cut = args.index("--")
        folder, limit, kind, first_line = args[1:cut]
        return run(folder, int(limit), kind, first_line, args[cut + 1:])
    if args[:1] == ["follow"] and len(args) == 4:
        return follow(args[1], int(args[2]), int(args[3]))
    if args[:1] == ["list"] and len(args) == 2:
        return list_cells(args[1])
    sys.stderr.write("usage: cell_runner.py run DIR LIMIT KIND FIRST_LINE -- ARGV… | "
                     "follow DIR SEGMENT OFFSET | list ROOT\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
