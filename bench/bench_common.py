"""What the benchmarks share: a local server of their own, a shell with the extension
loaded on it, timing one call, and one way to print a figure (min and median of the
samples, and of ours against a baseline measured in the same run)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sprites_jupyter.config import NO_WIDGETS_ENV
from sprites_jupyter.local.testing import LocalServer, ServerDidNotStart
from sprites_jupyter.local.testing import start_server as start_local_server

if TYPE_CHECKING:  # the benches that use no shell do not pay for importing IPython
    from IPython.core.interactiveshell import InteractiveShell

TOKEN = "bench-token"
_UNITS = {"s": (1.0, 3), "ms": (1e3, 2), "x": (1.0, 2)}
"""How each unit scales a value in seconds (or a ratio) and how many decimals it shows."""


def start_server(home: Path, *args: str, env: dict[str, str] | None = None,
                 stderr: int | IO[Any] | None = None,
                 max_disk: str | None = "0") -> tuple[Any, str]:
    """Start ``sprites-local serve`` on a free port for ``home``; the process and its URL.
    ``max_disk``: its ``--max-disk`` (None: none given, as a server of an older commit
    needs)."""
    server = _started(home, args, env, stderr, max_disk)
    return server.process, server.url


@contextmanager
def local_server(*args: str) -> Iterator[LocalServer]:
    """A server of the bench's own on a temporary home, stopped when the block ends."""
    with tempfile.TemporaryDirectory(prefix="sprites-bench-") as home:
        server = _started(Path(home), args, None, None)
        try:
            yield server
        finally:
            server.stop()


def _started(home: Path, args: Sequence[str], env: dict[str, str] | None,
             stderr: int | IO[Any] | None, max_disk: str | None = "0") -> LocalServer:
    try:
        return start_local_server(home, TOKEN, args=args, env=env, stderr=stderr,
                                  max_disk=max_disk)
    except ServerDidNotStart as exc:
        raise SystemExit(str(exc)) from None


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` took."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def summary(name: str, samples: Sequence[float], unit: str = "ms", *,
            most: float | None = None, least: float | None = None,
            out: IO[str] | None = None) -> float:
    """Print ``name``'s min and median in ``unit`` (s, ms, or x for ratios), against a
    target median in that unit (``most``: at most, ``least``: at least); the median, in
    seconds (or as a ratio)."""
    scale, precision = _UNITS[unit]
    typical = statistics.median(samples)
    print(f"  {name:<44} min {min(samples) * scale:9.{precision}f} {unit}   median "
          f"{typical * scale:9.{precision}f} {unit}"
          f"{_verdict(typical * scale, most, least, unit)}",
          file=out, flush=True)
    return typical


def compare(name: str, ours: Sequence[float], base: Sequence[float], *,
            most: float | None = None, least: float | None = None, unit: str = "ms",
            names: tuple[str, str] = ("ours", "baseline"), out: IO[str] | None = None
            ) -> float:
    """Print ours and the baseline's min and median, and ours / baseline of each against a
    target ratio (``most``: at most, ``least``: at least); the median ratio."""
    scale, precision = _UNITS[unit]
    low = min(ours) / min(base)
    typical = statistics.median(ours) / statistics.median(base)
    sides = "; ".join(f"{label} min {min(values) * scale:.{precision}f} {unit} median "
                      f"{statistics.median(values) * scale:.{precision}f} {unit}"
                      for label, values in zip(names, (ours, base), strict=True))
    print(f"{name}: {sides}; ratio min {low:.2f}x median {typical:.2f}x"
          f"{_verdict(typical, most, least, 'x')}", file=out, flush=True)
    return typical


def _verdict(value: float, most: float | None, least: float | None, unit: str) -> str:
    unit = unit if unit == "x" else f" {unit}"
    if most is not None:
        return f" (target <= {most:g}{unit}: {'ok' if value <= most else 'MISSED'})"
    if least is not None:
        return f" (target >= {least:g}{unit}: {'ok' if value >= least else 'MISSED'})"
    return ""


def interleaved(ours: Callable[[], float], base: Callable[[], float], repeat: int
                ) -> tuple[list[float], list[float]]:
    """``repeat`` (at least 5) samples of each, taken in turns so load hits both alike."""
    pairs = [(ours(), base()) for _ in range(max(repeat, 5))]
    return [a for a, _ in pairs], [b for _, b in pairs]


def cell(shell: InteractiveShell, source: str) -> str:
    """Run a cell that must succeed; what it printed."""
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        result = shell.run_cell(source)
    if not result.success:
        raise SystemExit(f"{source.splitlines()[0]!r} failed: {result.error_in_exec!r}")
    return captured.stdout


@contextmanager
def loaded_shell(url: str, *, widgets: bool = False) -> Iterator[InteractiveShell]:
    """IPython's shell with the extension loaded on the server at ``url`` (as a notebook
    user would: through the environment), unloaded when the block ends. Without
    ``widgets`` every display is the text fallback."""
    from IPython.core.interactiveshell import InteractiveShell

    os.environ.update(SPRITES_API_URL=url, SPRITES_TOKEN=TOKEN)
    if not widgets:
        os.environ[NO_WIDGETS_ENV] = "1"
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "sprites_jupyter")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "sprites_jupyter")
