"""Run benches under an older revision and under this tree, interleaved, and print their
figures side by side: did a change (a refactoring, say) make anything users feel slower?

    python bench/compare_revisions.py REV BENCH [BENCH ...] [--rounds 3]

Each BENCH is a bench module's name with its options, one shell word:
``"bench_fs --megabytes 32 --repeat 3"``. REV is checked out into a temporary
``git worktree`` outside the repository (removed afterwards). Each round runs every bench
twice, once with each tree's own bench script and ``PYTHONPATH`` pointing at that tree, so
each run starts its own server from its own code; the order alternates between rounds so
that load drifting over a run hits both alike. A bench the old tree does not have is
skipped with a line saying so.

The figures are read from what the benches print: every ``min N unit`` and ``median N
unit``, and a value printed alone after its label (``name: ours 1.2 s, theirs 1.5 s``,
taken as a median), named by the text before them on their line (``name: part min ...
median ...; part ...``), so a bench whose wording changed between the revisions still
lines up where its names did not. Over the rounds a figure's min is the least of its mins
and its median the median of its medians; ``change`` is this tree against REV, and
``noise`` is how far REV's own rounds spread (max - min over median), the yardstick for
a change. Times and ratios (ours over a baseline) get worse going up, throughputs
(``MB/s``) and ratios with a ``>=`` target going down; a figure worse by more than
``--tolerance`` percent in both its min and its median is marked ``WORSE``, or ``worse,
within noise`` when REV's own spread is wider than the change. ``--log FILE`` keeps
every run's output, to look into a figure.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STAT = re.compile(r"\b(min|median)\s+(-?\d[\d,]*(?:\.\d+)?)\s*(ms|us|µs|s|x|MB/s|MB|%)?")
VALUE = re.compile(r"([A-Za-z][\w .()+/-]*?)\s+(-?\d[\d,]*(?:\.\d+)?)\s*(ms|s|x|MB/s)\b")
"""A value printed alone, after its label: ``ours 1.234 s``."""
SEGMENTS = re.compile(r"[;,]\s+(?=[^\d])")
"""Where a figure line's parts split: ``; `` or ``, `` before a word (not ``100,000``)."""
TIME_UNITS = {"s", "ms", "us", "µs"}


@dataclass
class Figure:
    """One named value a bench prints, across the rounds of one tree."""

    unit: str
    higher_is_worse: bool | None
    mins: list[float] = field(default_factory=list)
    medians: list[float] = field(default_factory=list)

    def low(self) -> float | None:
        return min(self.mins) if self.mins else None

    def typical(self) -> float | None:
        return statistics.median(self.medians) if self.medians else None

    def spread(self) -> float | None:
        """How far the rounds' medians spread, as a fraction of their median."""
        if len(self.medians) < 2 or not statistics.median(self.medians):
            return None
        return (max(self.medians) - min(self.medians)) / statistics.median(self.medians)


def figures(output: str) -> dict[str, tuple[str, str, float, bool | None]]:
    """Every figure in a bench's output: ``{key: (stat, unit, value, higher_is_worse)}``,
    the key naming the line and the part of it the value belongs to. A value printed alone
    (``name: ours 1.2 s, theirs 1.5 s``) counts as a median."""
    found: dict[str, tuple[str, str, float, bool | None]] = {}
    for line in output.splitlines():
        first = STAT.search(line) or VALUE.search(line)
        if first is None:
            continue
        head = line[:first.start()]
        name, _, rest = line.partition(":") if ":" in head else ("", "", line)
        if not name and not STAT.search(line):
            continue  # a lone number on a line without a name is no figure
        direction = _direction(line)
        part = ""
        for segment in SEGMENTS.split(rest):
            matches = list(STAT.finditer(segment)) or [
                m for m in [VALUE.match(segment.strip())] if m and m.group(1)]
            if not matches:
                continue
            label = matches[0].group(1) if matches[0].re is VALUE \
                else segment[:matches[0].start()]
            part = label.strip(" /:") or part
            key = " / ".join(p for p in (" ".join(name.split()), " ".join(part.split())) if p)
            for match in matches:
                stat = match.group(1) if match.re is STAT else "median"
                number, unit = match.group(2), match.group(3) or ""
                worse = True if unit in TIME_UNITS else False if unit == "MB/s" else direction
                found[f"{key} [{stat}]"] = (stat, unit, float(number.replace(",", "")), worse)
    return found


def _direction(line: str) -> bool:
    """Whether going up is worse for a ratio: unless the line's target is a ``>=``, a
    ratio is ours over a baseline's time."""
    return not any(mark in line for mark in ("target >=", "(>=", "target: >="))


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """``revision`` checked out in a temporary directory outside the repository."""
    parent = Path(tempfile.mkdtemp(prefix="sprites-compare-"))
    tree = parent / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet",
                    str(tree), revision], check=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                       check=False)
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False)
        if parent.exists():
            parent.rmdir()


def run_bench(tree: Path, module: str, options: list[str], timeout: float) -> str:
    """What ``module``'s script of ``tree`` prints, run with that tree's code."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, str(tree / "bench" / f"{module}.py"), *options],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"{module} failed in {tree}: {tail[0]}")
    return done.stdout


def collect(into: dict[str, Figure], output: str) -> None:
    for key, (stat, unit, value, worse) in figures(output).items():
        figure = into.setdefault(key.rsplit(" [", 1)[0], Figure(unit, worse))
        (figure.mins if stat == "min" else figure.medians).append(value)


def change(new: float | None, old: float | None) -> float | None:
    return None if new is None or not old else (new - old) / old * 100


def report(module: str, old: dict[str, Figure], new: dict[str, Figure],
           tolerance: float) -> None:
    print(f"\n{module}: REV -> this tree (min over rounds; median of the rounds' medians; "
          "noise: REV's spread)")
    for key in [k for k in new if k in old]:
        before, after = old[key], new[key]
        low, typical = change(after.low(), before.low()), change(after.typical(),
                                                                  before.typical())
        spread = before.spread()
        print(f"  {key}\n      min {_value(before.low())} -> {_value(after.low())} "
              f"{_percent(low)}   median {_value(before.typical())} -> "
              f"{_value(after.typical())} {_percent(typical)} {after.unit:<4}  noise "
              f"{'n/a' if spread is None else f'{spread * 100:.0f}%'}"
              f"{_verdict(after.higher_is_worse, low, typical, spread, tolerance)}")
    for key in [k for k in new if k not in old]:
        print(f"  {key} (only in this tree)")
    for key in [k for k in old if k not in new]:
        print(f"  {key} (only in REV)")


def _value(value: float | None) -> str:
    return "     -" if value is None else f"{value:9.3f}"


def _percent(value: float | None) -> str:
    return "       " if value is None else f"{value:+6.1f}%"


def _verdict(higher_is_worse: bool | None, low: float | None, typical: float | None,
             spread: float | None, tolerance: float) -> str:
    """WORSE when both the min and the median moved the wrong way by more than the
    tolerance and the median by more than REV's own spread; within noise when only the
    spread covers it."""
    if higher_is_worse is None or typical is None:
        return ""
    sign = 1 if higher_is_worse else -1
    if sign * typical <= tolerance or (low is not None and sign * low <= tolerance):
        return ""
    if spread is not None and sign * typical <= spread * 100:
        return "  (worse, within noise)"
    return "  WORSE"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the older revision, e.g. a commit or branch")
    parser.add_argument("benches", nargs="+", metavar="BENCH",
                        help='a bench module and its options, e.g. "bench_fs --repeat 3"')
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tolerance", type=float, default=5.0, help="percent")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds one bench run may take")
    parser.add_argument("--log", type=argparse.FileType("a"), default=None,
                        help="append every run's own output to this file")
    args = parser.parse_args()
    benches = [shlex.split(spec) for spec in args.benches]
    print(f"{args.revision} against this tree ({REPO}), {args.rounds} rounds; load "
          f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    with worktree(args.revision) as old_tree:
        runnable = []
        for module, *options in benches:
            if not (old_tree / "bench" / f"{module}.py").exists():
                print(f"{module}: skipped, {args.revision} has no bench/{module}.py")
            elif not (REPO / "bench" / f"{module}.py").exists():
                print(f"{module}: skipped, this tree has no bench/{module}.py")
            else:
                runnable.append((module, options))
        results = {module: ({}, {}) for module, _ in runnable}
        for round_number in range(args.rounds):
            for module, options in runnable:
                trees = ((0, old_tree), (1, REPO))
                for side, tree in trees if round_number % 2 == 0 else reversed(trees):
                    output = run_bench(tree, module, options, args.timeout)
                    if args.log:
                        print(f"== {module} {'REV' if side == 0 else 'this tree'} round "
                              f"{round_number + 1}\n{output}", file=args.log, flush=True)
                    collect(results[module][side], output)
            print(f"round {round_number + 1} of {args.rounds} done; load average "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
    for module, (old, new) in results.items():
        report(module, old, new, args.tolerance)


if __name__ == "__main__":
    main()
