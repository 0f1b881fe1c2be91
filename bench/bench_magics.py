"""Cost of the notebook face, measured through a real IPython shell and local server.

1. ``%sprite checkpoints`` on a sprite with 1,000 checkpoints, as a ratio to a
   bare ``httpx.get`` + ``.json()`` of the same endpoint in the same run
   (target <= 1.5x).
2. ``%%sprite_exec`` printing 100,000 lines (one write each) into the widget log panel: redraws
   per second of run time (target <= ~10/s) and the peak Python memory the run
   allocates (tracemalloc), next to a run printing a tenth as many lines, so
   growth can be seen to follow the panel's buffer, not the line count.

3. ``%%sprite_exec echo hi`` round trip / ``%%bash echo hi`` (target <= 1.3x); for
   where the time goes, also the client's ``Sprite.run("bash", "-c", "echo hi")`` (the
   exec without the magic) against the same ``%%bash``.
4. ``%load_ext sprites_jupyter`` in a fresh interpreter / ``import pandas`` in one
   (target <= 0.35x), and the first magic with the server running (``%sprite use``,
   target <= 20 ms; ``%sprite list`` too, which imports pandas for its DataFrame).
   Both children load bytecode, as an installed package does.
Ratios are min and median of interleaved samples (``--repeat``, at least 5).

    python bench/bench_magics.py [--checkpoints 1000] [--lines 100000] [--repeat 5]
                                 [--only round-trip checkpoints exec startup]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

import httpx
from bench_common import compare, interleaved, loaded_shell, local_server, timed
from IPython.core.interactiveshell import InteractiveShell

from sprites_jupyter.widgets.logs import LogPanel

_LOAD_EXT = ("import sys, time\nfrom IPython.core.interactiveshell import InteractiveShell\n"
             "ip = InteractiveShell.instance()\nt = time.perf_counter()\n"
             "ip.run_line_magic('load_ext', 'sprites_jupyter')\nt1 = time.perf_counter()\n"
             "ip.run_line_magic('sprite', sys.argv[1])\n"
             "print(t1 - t, time.perf_counter() - t1, file=sys.stderr)\n")
_IMPORT_PANDAS = ("import sys, time\nt = time.perf_counter()\nimport pandas\n"
                  "print(time.perf_counter() - t, file=sys.stderr)\n")


def _child_seconds(code: str, *args: str) -> list[float]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, check=True, env=_child_env)
    return [float(x) for x in done.stderr.split("\n")[-2].split()]


_child_env: dict[str, str] = {}


def bench_startup(repeat: int, sprite: str) -> None:
    with tempfile.TemporaryDirectory() as cache:
        # Children load bytecode, as an installed package does: a PYTHONDONTWRITEBYTECODE
        # set here would have each one compile our modules from source, while pandas's
        # .pyc files are installed. The cache is the run's own.
        _child_env.clear()
        _child_env.update(os.environ, PYTHONPYCACHEPREFIX=cache)
        _child_env.pop("PYTHONDONTWRITEBYTECODE", None)
        for magic in (f"use {sprite}", "list"):  # warm up: write every .pyc once
            _child_seconds(_LOAD_EXT, magic)
        _child_seconds(_IMPORT_PANDAS)
        firsts: list[float] = []

        def load_ext() -> float:
            load, first = _child_seconds(_LOAD_EXT, f"use {sprite}")
            firsts.append(first)
            return load

        compare("%load_ext sprites_jupyter / import pandas", *interleaved(
            load_ext, lambda: _child_seconds(_IMPORT_PANDAS)[0], repeat), most=0.35)
        print(f"first magic (%sprite use, the README's first) with the server running: min "
              f"{min(firsts) * 1e3:.1f} ms, median {statistics.median(firsts) * 1e3:.1f} ms "
              "(target <= 20 ms)")
        lists = [_child_seconds(_LOAD_EXT, "list")[1] for _ in range(max(repeat, 5))]
        print(f"first magic %sprite list (a DataFrame: it imports pandas) with the server "
              f"running: min {min(lists) * 1e3:.1f} ms, median "
              f"{statistics.median(lists) * 1e3:.1f} ms")


def bench_round_trip(shell: InteractiveShell, http: httpx.Client, repeat: int) -> None:
    http.post("/v1/sprites", json={"name": "bench-rt"}).raise_for_status()
    shell.run_line_magic("sprite", "use bench-rt")
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as journals:
        # the operations journal kept as for the server the extension starts itself (a
        # server reached by URL, as here, keeps none by default)
        shell.run_line_magic("config", f"SpriteMagics.journal_location = {journals!r}")
        shell.run_cell("%%sprite_exec\necho hi\n")
        shell.run_cell("%%bash\necho hi\n")
        with contextlib.redirect_stdout(io.StringIO()):  # both print "hi" each time
            compare("%%sprite_exec echo hi / %%bash echo hi", *interleaved(
                lambda: timed(lambda: shell.run_cell("%%sprite_exec\necho hi\n")),
                lambda: timed(lambda: shell.run_cell("%%bash\necho hi\n")), repeat * 4),
                most=1.3, out=sys.__stdout__)
        shell.run_line_magic("config", "SpriteMagics.journal_location = ''")
        magics = next(c for c in shell.configurables if type(c).__name__ == "SpriteMagics")
        magics.journal.flush()  # its last save, before the directory goes
    handle = magics.context.sprite()
    with contextlib.redirect_stdout(io.StringIO()):
        compare("  for reference, Sprite.run(bash -c 'echo hi') / %%bash echo hi",
                *interleaved(lambda: timed(lambda: handle.run("bash", "-c", "echo hi")),
                             lambda: timed(lambda: shell.run_cell("%%bash\necho hi\n")),
                             repeat * 4), out=sys.__stdout__)


def bench_checkpoints(shell: InteractiveShell, http: httpx.Client, count: int,
                      repeat: int) -> None:
    http.post("/v1/sprites", json={"name": "bench-list"}).raise_for_status()
    for i in range(count - 1):
        with http.stream("POST", "/v1/sprites/bench-list/checkpoint",
                         json={"comment": f"c{i}"}) as response:
            response.read()
    shell.run_line_magic("sprite", "use bench-list")
    frame = shell.run_line_magic("sprite", "checkpoints")
    assert len(frame) == count, len(frame)
    url = "/v1/sprites/bench-list/checkpoints"
    magics = next(c for c in shell.configurables if type(c).__name__ == "SpriteMagics")
    handle = magics.context.sprite()
    compare(f"%sprite checkpoints, {count} checkpoints / httpx.get + json", *interleaved(
        lambda: timed(lambda: shell.run_line_magic("sprite", "checkpoints")),
        lambda: timed(lambda: http.get(url).json()), repeat), most=1.2)
    compare(f"client list_checkpoints(), {count} checkpoints / httpx.get + json", *interleaved(
        lambda: timed(handle.list_checkpoints),
        lambda: timed(lambda: http.get(url).json()), repeat), most=1.0)


def _exec_run(shell: InteractiveShell, lines: int) -> tuple[LogPanel, float, int]:
    magics = next(c for c in shell.configurables if type(c).__name__ == "SpriteMagics")
    shown: list[object] = []
    magics.context.show = lambda obj, **_: shown.append(obj)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    result = shell.run_cell(f"%%sprite_exec\nfor i in $(seq 1 {lines}); do echo $i; done\n")
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert result.success, result.error_in_exec
    panel = next(obj for obj in shown if isinstance(obj, LogPanel))
    assert panel.lines[-1] == ("stdout", str(lines)), panel.lines[-1]
    return panel, elapsed, peak


def bench_exec(shell: InteractiveShell, http: httpx.Client, lines: int) -> None:
    http.post("/v1/sprites", json={"name": "bench-exec"}).raise_for_status()
    shell.run_line_magic("sprite", "use bench-exec")
    shell.run_line_magic("config", "SpriteMagics.widgets = 'on'")
    for count in (lines // 10, lines):
        panel, elapsed, peak = _exec_run(shell, count)
        cap = int(elapsed / panel.min_interval) + 2
        print(f"%%sprite_exec printing {count:,} lines: {elapsed:.2f} s, {panel.redraws} "
              f"redraws (10/s plus the first and the last allows {cap}), peak Python "
              f"allocation {peak / 1e6:.2f} MB with a {panel.max_lines}-line buffer")


PARTS = ["round-trip", "checkpoints", "exec", "startup"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS,
                        help="run only these parts (default: all)")
    args = parser.parse_args()
    with local_server() as server, loaded_shell(server.url, widgets=True) as shell, \
            server.http(timeout=60) as http:
        bench_round_trip(shell, http, args.repeat)  # also makes the sprite startup uses
        if "checkpoints" in args.only:
            bench_checkpoints(shell, http, args.checkpoints, args.repeat)
        if "exec" in args.only:
            bench_exec(shell, http, args.lines)
        if "startup" in args.only:
            bench_startup(args.repeat, "bench-rt")


if __name__ == "__main__":
    main()
