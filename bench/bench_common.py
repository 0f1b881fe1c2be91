"""What the benchmarks share: a local server of their own, and timing one call."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

READY = "Sprites local server listening on "
TOKEN = "bench-token"


def start_server(home: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``sprites-local serve`` on a free port for ``home``; the process and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sprites_jupyter.local", "serve", "--port", "0",
         "--home", str(home), "--token", TOKEN, *args],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(READY):
        process.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return process, line[len(READY):].strip()


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` took."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
