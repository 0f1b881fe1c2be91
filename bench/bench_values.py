"""Values at pipe speed: ``%sprite push`` / ``%sprite pull`` through a real IPython shell
and local server, each against a local baseline measured in the same run (interleaved
samples, min and median of ``--repeat``, at least 5). The targets:

* push + pull of a 500 MB numpy array vs ``np.save`` + ``np.load`` of a local file
  (target <= 3x);
* push + pull of 200 MB of ``bytes`` vs writing them to a local file with ``fsync`` and
  reading it back (target <= 2x);
* pull of a 1e6 x 5 DataFrame vs ``pandas.read_parquet`` of a local file (target <= 2.5x;
  needs pandas and pyarrow here and on the sprite, else skipped with a notice): one of
  floats made from a 2-D array (it moves as that array, ``npy-frame``), and one of mixed
  dtypes made column by column (it moves as an Arrow stream).

Each local sample writes a new file, removed after it untimed: rewriting one file would
truncate the previous sample's pages, and ext4 then starts writing the new ones back at
close (``auto_da_alloc``), a disk write landing in the next sample that no transfer
pays. One untimed run of each side goes first. What still swings (np.load 0.08-2 s in
one run) is fresh memory: on this VM the first touch of pages the guest gave back costs
up to ~10x (``perf``: ``clear_page_erms`` under ``folio_zero_user``, 42% of all
cycles), hitting whichever side allocates then; the mins are the stable figures.

The server runs unsandboxed, so the session has this machine's numpy and pandas. After
each figure the peak resident memory of the kernel, the server and the agent during it
(a push must never hold two copies of the value in any of them).

    python bench/bench_values.py [--array-mb 500] [--bytes-mb 200] [--rows 1000000]
        [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import os
import re
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench_common import cell as _cell
from bench_common import compare, interleaved, loaded_shell, start_server, timed
from IPython.core.interactiveshell import InteractiveShell

from sprites_jupyter.magic_commands.python.lifecycle import sessions_of

SPRITE = "bench-values"


def _process_tree() -> tuple[dict[int, list[int]], dict[int, int]]:
    """The children of every process, and the CPU ticks each has used."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    return children, ticks


def _below(pid: int, children: dict[int, list[int]]) -> list[int]:
    """Every live process under ``pid``."""
    found, pending = [], list(children.get(pid, []))
    while pending:
        found.append(pending.pop())
        pending.extend(children.get(found[-1], []))
    return found


def _cpu_seconds() -> float:
    """CPU time used so far by this process and every process below it that is still
    running (the server, the sprite's agent): what a transfer costs whatever the load."""
    children, ticks = _process_tree()
    pids = [os.getpid(), *_below(os.getpid(), children)]
    return sum(ticks.get(pid, 0) for pid in pids) / os.sysconf("SC_CLK_TCK")


class PeakMemory:
    """Peak resident memory of the kernel (this process), the server and the processes
    under it (the agent), since the last :meth:`reset` (``/proc/PID/clear_refs``, on
    processes of this bench only)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def _groups(self) -> dict[str, list[int]]:
        children, _ = _process_tree()
        return {"kernel": [os.getpid()], "server": [self.server_pid],
                "agent": _below(self.server_pid, children)}

    def reset(self) -> None:
        for pids in self._groups().values():
            for pid in pids:
                with contextlib.suppress(OSError):
                    Path(f"/proc/{pid}/clear_refs").write_text("5")

    def report(self, value_mb: int) -> None:
        peaks = {name: max((_peak_mb(pid) for pid in pids), default=0)
                 for name, pids in self._groups().items()}
        print(f"  peak RSS during it ({value_mb} MB value): "
              + ", ".join(f"{name} {mb:,} MB" for name, mb in peaks.items()), flush=True)


def _peak_mb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), "")
    return int(line.split()[1]) // 1024 if line else 0


def _costed(action: Callable[[], object], cpu: list[float],
            tidy: Callable[[], object] | None = None) -> Callable[[], float]:
    """``action`` timed, its CPU seconds (all processes involved) appended to ``cpu``;
    then ``tidy``, untimed."""
    def run() -> float:
        before = _cpu_seconds()
        wall = timed(action)
        cpu.append(_cpu_seconds() - before)
        if tidy is not None:
            tidy()
        return wall
    return run


def _compare(label: str, ours: Callable[[], object], base: Callable[[], object],
             repeat: int, most: float, tidy: Callable[[], object] | None = None) -> None:
    """The wall ratio against its target, then the CPU cost of both sides: under load the
    wall ratio swings, the CPU a transfer costs does not. ``tidy`` runs after each
    baseline sample, untimed."""
    for warm_up in (ours, base, tidy):  # the first run pays for memory the next reuse
        if warm_up is not None:
            warm_up()
    ours_cpu: list[float] = []
    base_cpu: list[float] = []
    compare(label, *interleaved(_costed(ours, ours_cpu), _costed(base, base_cpu, tidy),
                                repeat), most=most, unit="s")
    mine, theirs = statistics.median(ours_cpu), statistics.median(base_cpu)
    print(f"  CPU time of kernel + server + agent, medians: {mine:.2f} s vs {theirs:.2f} s "
          f"({mine / max(theirs, 1e-3):.2f}x); load {os.getloadavg()[0]:.1f}", flush=True)


class ScratchFiles:
    """A new path in ``folder`` for every baseline sample, removed after it, untimed (see
    the module's note on the baseline)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        self.numbers = itertools.count()
        self.made: list[Path] = []

    def new(self) -> Path:
        self.made.append(self.folder / f"{next(self.numbers)}-{self.name}")
        return self.made[-1]

    def tidy(self) -> None:
        while self.made:
            self.made.pop().unlink(missing_ok=True)


def _push_pull(shell: InteractiveShell) -> None:
    _cell(shell, "%sprite push payload")
    _cell(shell, "%sprite pull payload --as payload_back")
    shell.user_ns.pop("payload_back", None)


def bench_array(shell: InteractiveShell, folder: Path, megabytes: int, repeat: int,
                peak: PeakMemory) -> None:
    import numpy as np

    value = np.random.default_rng(0).random(megabytes * 1024 * 1024 // 8)
    shell.user_ns["payload"] = value
    files = ScratchFiles(folder, "array.npy")

    def local() -> None:
        path = files.new()
        np.save(path, value)
        np.load(path)

    peak.reset()
    _compare(f"push + pull of a {megabytes} MB numpy array vs np.save + np.load",
             lambda: _push_pull(shell), local, repeat, 3.0, files.tidy)
    peak.report(megabytes)


def bench_bytes(shell: InteractiveShell, folder: Path, megabytes: int, repeat: int,
                peak: PeakMemory) -> None:
    shell.user_ns.pop("payload", None)
    value = os.urandom(megabytes * 1024 * 1024)
    shell.user_ns["payload"] = value
    files = ScratchFiles(folder, "bytes.bin")

    def local() -> None:
        path = files.new()
        with open(path, "wb") as target:
            target.write(value)
            target.flush()
            os.fsync(target.fileno())
        path.read_bytes()

    _cell(shell, "%%sprite_python\ndel payload\n")
    peak.reset()
    _compare(f"push + pull of {megabytes} MB of bytes vs local write (fsync) + read",
             lambda: _push_pull(shell), local, repeat, 2.0, files.tidy)
    peak.report(megabytes)


FRAMES = {  # what each frame is, and the code that makes it on the sprite
    "DataFrame": "pd.DataFrame(rng.random(({rows}, 5)), columns=list('abcde'))",
    "DataFrame of mixed dtypes": "pd.DataFrame({{'a': rng.random({rows}), 'b': "
                                 "rng.random({rows}), 'c': rng.random({rows}), "
                                 "'d': rng.integers(0, 1 << 40, {rows}), "
                                 "'e': rng.random({rows}) < 0.5}})",
}


def bench_frame(shell: InteractiveShell, folder: Path, rows: int, repeat: int) -> None:
    has = sessions_of(shell.configurables[-1].context)[SPRITE].info.get("has", {})
    if not (has.get("pandas") and has.get("pyarrow") and importlib.util.find_spec("pyarrow")):
        print("DataFrame pull skipped: needs pandas and pyarrow here and on the sprite")
        return
    import pandas as pd

    for what, code in FRAMES.items():
        _cell(shell, "%%sprite_python\nimport numpy as np, pandas as pd\n"
                     f"rng = np.random.default_rng(0)\nframe = {code.format(rows=rows)}\n")
        printed = _cell(shell, "%sprite pull frame --as frame")
        path = folder / "frame.parquet"
        shell.user_ns["frame"].to_parquet(path)
        moved_as = re.search(r" as ([\w-]+)\)", printed)
        _compare(f"pull of a {rows:,} x 5 {what} ({moved_as[1] if moved_as else '?'}) vs "
                 "pandas.read_parquet", lambda: _cell(shell, "%sprite pull frame --as frame"),
                 lambda path=path: pd.read_parquet(path), repeat, 2.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--array-mb", type=int, default=500)
    parser.add_argument("--bytes-mb", type=int, default=200)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.home()) as scratch:
        # Unsandboxed, the session runs on this machine's python3, which has numpy and pandas.
        process, url = start_server(Path(scratch) / "home", "--isolation", "none")
        try:
            print(f"load: {os.getloadavg()[0]:.2f}")
            with loaded_shell(url) as shell:
                _cell(shell, f"%sprite use {SPRITE} --create")
                _cell(shell, "%%sprite_python\n1 + 1\n")
                folder = Path(scratch)
                peak = PeakMemory(process.pid)
                bench_array(shell, folder, args.array_mb, args.repeat, peak)
                bench_bytes(shell, folder, args.bytes_mb, args.repeat, peak)
                bench_frame(shell, folder, args.rows, args.repeat)
                _cell(shell, "%sprite python stop")
        finally:
            process.terminate()
            process.wait(timeout=120)


if __name__ == "__main__":
    main()
