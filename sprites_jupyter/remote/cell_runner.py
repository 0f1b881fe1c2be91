"""Runs a notebook cell on the sprite so that it outlives the kernel that started it.

``run DIR LIMIT KIND FIRST_LINE -- ARGV…`` runs ARGV, passing its stdout and stderr
through and appending them, in order, to ``DIR/output`` (records ``o``/``e``, a hex
length, a newline, the bytes); the exit status goes to ``DIR/exit``. Past LIMIT bytes
the file becomes ``output.old`` (the one before is dropped and counted in ``dropped``).
``replay DIR`` writes the whole record back to its own stdout/stderr, follows it
until the cell ends, and exits with the cell's status. ``list ROOT`` prints every
cell's ``meta.json`` plus whether it still runs, one JSON object a line.
Standard library only: it is uploaded through the public file API.
"""

import json
import os
import selectors
import signal
import subprocess
import sys
import time

_HEADER = 10  # stream letter, 8 hex digits of length, newline


def _record(stream: bytes, data: bytes) -> bytes:
    return stream + b"%08x\n" % len(data) + data


def run(folder: str, limit: int, kind: str, first_line: str, argv: list) -> int:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "meta.json"), "w") as meta:
        json.dump({"id": os.path.basename(folder), "kind": kind, "first_line": first_line,
                   "started": time.time(), "pid": os.getpid()}, meta)
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda signum, _: child.send_signal(signum))
    path = os.path.join(folder, "output")
    written = os.path.getsize(path) if os.path.exists(path) else 0
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
            with open(path, "ab") as log:
                log.write(_record(letter, data))
            written += _HEADER + len(data)
            try:
                out.write(data)
                out.flush()
            except OSError:
                pass  # nobody reads the session any more: the file still does
            if written > limit:
                _rotate(folder, path)
                written = 0
    code = child.wait()
    code = 128 - code if code < 0 else code
    with open(os.path.join(folder, "exit.partial"), "w") as done:
        done.write(str(code))
    os.replace(os.path.join(folder, "exit.partial"), os.path.join(folder, "exit"))
    return code


def _rotate(folder: str, path: str) -> None:
    old = path + ".old"
    if os.path.exists(old):
        dropped = (_read_int(os.path.join(folder, "dropped")) or 0) + os.path.getsize(old)
        with open(os.path.join(folder, "dropped"), "w") as count:
            count.write(str(dropped))
    os.replace(path, old)


def _read_int(path: str):
    """The number in ``path``, or ``None`` while it is not there."""
    try:
        with open(path) as file:
            return int(file.read().strip())
    except (OSError, ValueError):
        return None


def _drain(file, outputs: dict) -> None:
    """Write every whole record from ``file``'s position on; stop at a partial one."""
    while True:
        start = file.tell()
        header = file.read(_HEADER)
        if len(header) < _HEADER:
            file.seek(start)
            return
        size = int(header[1:9], 16)
        data = file.read(size)
        if len(data) < size:
            file.seek(start)
            return
        out = outputs[header[:1]]
        out.write(data)
        out.flush()


def replay(folder: str) -> int:
    outputs = {b"o": sys.stdout.buffer, b"e": sys.stderr.buffer}
    dropped = _read_int(os.path.join(folder, "dropped"))
    if dropped:
        sys.stderr.write(f"[{dropped} bytes of this cell's oldest output were dropped: "
                         "SpriteMagics.cell_output_kept keeps more]\n")
        sys.stderr.flush()
    path = os.path.join(folder, "output")
    try:
        with open(path + ".old", "rb") as old:
            _drain(old, outputs)
    except FileNotFoundError:
        pass
    current = None
    while True:
        code = _read_int(os.path.join(folder, "exit"))
        if current is None and os.path.exists(path):
            current = open(path, "rb")  # noqa: SIM115 - kept open across polls, closed below
        if current is not None:
            _drain(current, outputs)
            if os.path.exists(path) and os.stat(path).st_ino != os.fstat(current.fileno()).st_ino:
                current.close()
                current = None
                continue
        if code is not None:
            if current is not None:
                _drain(current, outputs)
            return code
        if not _alive(folder):
            sys.stderr.write("[the cell's runner is gone without an exit status: the "
                             "sprite restarted or the cell was killed]\n")
            return 137
        time.sleep(0.1)


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
        info["exit_code"] = _read_int(os.path.join(folder, "exit"))
        info["running"] = info["exit_code"] is None and _alive(folder)
        print(json.dumps(info))
    return 0


def main(args: list) -> int:
    if args[:1] == ["run"] and "--" in args:
        cut = args.index("--")
        folder, limit, kind, first_line = args[1:cut]
        return run(folder, int(limit), kind, first_line, args[cut + 1:])
    if args[:1] == ["replay"] and len(args) == 2:
        return replay(args[1])
    if args[:1] == ["list"] and len(args) == 2:
        return list_cells(args[1])
    sys.stderr.write("usage: cell_runner.py run DIR LIMIT KIND FIRST_LINE -- ARGV… | "
                     "replay DIR | list ROOT\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
