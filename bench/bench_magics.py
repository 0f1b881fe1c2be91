"""Cost of the notebook face, measured through a real IPython shell and local server.

1. ``%sprite checkpoints`` on a sprite with 1,000 checkpoints, as a ratio to a
   bare ``httpx.get`` + ``.json()`` of the same endpoint in the same run
   (target <= 1.5x).
2. ``%%sprite_exec`` printing 100,000 lines (one write each) into the widget log panel: redraws
   per second of run time (target <= ~10/s) and the peak Python memory the run
   allocates (tracemalloc), next to a run printing a tenth as many lines, so
   growth can be seen to follow the panel's buffer, not the line count.

    python bench/bench_magics.py [--checkpoints 1000] [--lines 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import httpx
from IPython.core.interactiveshell import InteractiveShell

from sprites_jupyter.widgets.logs import LogPanel

READY = "Sprites local server listening on "
TOKEN = "bench-token"


def _start_server(home: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "sprites_jupyter.local", "serve", "--port", "0",
         "--home", str(home), "--token", TOKEN],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(READY):
        process.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return process, line[len(READY):].strip()


def _median_seconds(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    baseline = _median_seconds(lambda: http.get(url).json(), repeat)
    client = _median_seconds(handle.list_checkpoints, repeat)
    magic = _median_seconds(lambda: shell.run_line_magic("sprite", "checkpoints"), repeat)
    print(f"%sprite checkpoints, {count} checkpoints: {magic * 1000:.1f} ms; "
          f"httpx.get + json: {baseline * 1000:.1f} ms; ratio {magic / baseline:.2f}x "
          f"(target <= 1.5x); of which the client's list_checkpoints() alone: "
          f"{client * 1000:.1f} ms ({client / baseline:.2f}x)")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        process, url = _start_server(Path(home))
        try:
            os.environ.update(SPRITES_API_URL=url, SPRITES_TOKEN=TOKEN)
            shell = InteractiveShell.instance()
            shell.run_line_magic("load_ext", "sprites_jupyter")
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=60) as http:
                bench_checkpoints(shell, http, args.checkpoints, args.repeat)
                bench_exec(shell, http, args.lines)
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
