"""Cost of the Python session's variables riding the checkpoint, through a real IPython
shell and local server.

A ``%%sprite_python`` session holds ``--megabytes`` (default 1024) in 10 variables.

1. ``%sprite checkpoint`` after one 10 MB variable changed: the save as the session
   timed it (the line the checkpoint prints, 1 ms resolution), as a ratio to
   pickling that variable to a file in the sprite, timed inside it (target <= 1.3x);
   and end to end, minus ``%sprite checkpoint`` of a twin sprite with no session
   (that includes the filesystem checkpoint taking in the saved 10 MB).
2. ``%sprite restore`` of that checkpoint until the next cell answers (the session
   resumed), as a ratio to ``pickle.load`` of the same saved bytes from their files
   in the sprite, timed inside it (target <= 1.5x); the twin's restore and a first
   cell in a fresh session are shown for scale (the sprite's wake-up after a restore).
3. ``%sprite checkpoint`` with nothing changed minus the twin's (target <= 50 ms
   added).

Samples are interleaved; min and median of ``--repeat`` each.

    python bench/bench_session_state.py [--megabytes 1024] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import re
import time

from bench_common import cell, loaded_shell, local_server, summary, timed
from IPython.core.interactiveshell import InteractiveShell

SPRITE = "bench-state"
TWIN = "bench-plain"
CHANGED_MB = 10
SAVED_IN = re.compile(r"saved \d+ variables \(.*?\) in ([\d.]+) (ms|s)")


def _inside(shell: InteractiveShell, code: str) -> float:
    """Seconds a statement takes inside the sprite's session (the last printed line)."""
    printed = cell(shell, "%%sprite_python\nimport time as _t\n_s = _t.perf_counter()\n"
                          f"{code}\nprint(_t.perf_counter() - _s)\n")
    return float(printed.strip().splitlines()[-1])


def bench(shell: InteractiveShell, megabytes: int, repeat: int) -> None:
    each = megabytes * 1024 * 1024 // 10
    cell(shell, "%%sprite_python\nimport os, pickle\n"
                 f"for _i in range(9):\n    globals()[f'big{{_i}}'] = os.urandom({each})\n"
                 f"changed = os.urandom({CHANGED_MB * 1024 * 1024})\n")
    cell(shell, "%sprite checkpoint -m first")
    twin = cell(shell, f"twin = %sprite checkpoint -s {TWIN} -m first") and \
        shell.user_ns["twin"].id
    samples: dict[str, list[float]] = {k: [] for k in (
        "changed", "save", "twin", "pickle", "unchanged", "twin2", "restore", "twin_restore",
        "load")}
    for _ in range(repeat):
        cell(shell, f"%%sprite_python\nchanged = os.urandom({CHANGED_MB * 1024 * 1024})\n")
        started = time.perf_counter()
        printed = cell(shell, "%sprite checkpoint -m changed")
        samples["changed"].append(time.perf_counter() - started)
        amount, unit = SAVED_IN.search(printed).groups()
        samples["save"].append(float(amount) / (1000 if unit == "ms" else 1))
        samples["twin"].append(timed(lambda: cell(shell, f"%sprite checkpoint -s {TWIN}")))
        samples["pickle"].append(_inside(
            shell, "with open('bench-changed.pickle', 'wb') as _f:\n"
                   "    pickle.dump(changed, _f, protocol=pickle.HIGHEST_PROTOCOL)\n"
                   "os.remove('bench-changed.pickle')"))
        samples["unchanged"].append(timed(lambda: cell(
            shell, "same = %sprite checkpoint -m same")))
        target = shell.user_ns["same"].id
        samples["twin2"].append(timed(lambda: cell(shell, f"%sprite checkpoint -s {TWIN}")))
        samples["load"].append(_inside(
            shell, "import glob, json\n"
                   "_m = sorted(glob.glob(os.path.expanduser("
                   "'~/.sprites_jupyter/state/v1/*/manifest.json')), key=os.path.getmtime)[-1]\n"
                   "for _e in json.load(open(_m))['variables']:\n"
                   "    with open(os.path.join(os.path.dirname(_m), 'objects', "
                   "_e['object'] + '.pickle'), 'rb') as _f:\n"
                   "        pickle.load(_f)"))
        samples["restore"].append(timed(lambda checkpoint=target: (
            cell(shell, f"%sprite restore {checkpoint} --yes"),
            cell(shell, "%%sprite_python\n1\n"))))
        samples["twin_restore"].append(timed(lambda: (
            cell(shell, f"%sprite restore {twin} -s {TWIN} --yes"),
            cell(shell, f"%%sprite_python -s {TWIN} --new\n1\n"))))
    print(f"Session of {megabytes} MB in 10 variables ({repeat} interleaved samples)")
    changed = summary(f"%sprite checkpoint, {CHANGED_MB} MB changed", samples["changed"])
    plain = summary("%sprite checkpoint of the twin (no session)", samples["twin"])
    pickled = summary(f"pickle {CHANGED_MB} MB to a file in the sprite", samples["pickle"])
    added = [c - a for c, a in zip(samples["changed"], samples["twin"], strict=True)]
    saved = summary("the save itself, as the session timed it", samples["save"])
    print(f"1. the save takes {saved / pickled:.2f}x of pickling the changed variable "
          f"({min(samples['save']) / min(samples['pickle']):.2f}x of minimums; target "
          f"<= 1.3x); end to end the checkpoint takes {(changed - plain) * 1000:.0f} "
          f"ms more than the twin's (median; min {min(added) * 1000:.0f} ms), the snapshot "
          f"taking in the saved {CHANGED_MB} MB included")
    restore = summary("%sprite restore until the next cell answers", samples["restore"])
    summary("the twin's restore + a first cell (no session)", samples["twin_restore"])
    load = summary(f"pickle.load of the {megabytes} MB saved", samples["load"])
    print(f"2. restore / load: {restore / load:.2f}x of medians, "
          f"{min(samples['restore']) / min(samples['load']):.2f}x of minimums (target <= 1.5x)")
    unchanged = summary("%sprite checkpoint, nothing changed", samples["unchanged"])
    plain2 = summary("%sprite checkpoint of the twin (no session)", samples["twin2"])
    print(f"3. nothing changed adds {(unchanged - plain2) * 1000:.0f} ms (median; "
          f"{(min(samples['unchanged']) - min(samples['twin2'])) * 1000:.0f} ms of minimums; "
          "target <= 50 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with local_server() as server, loaded_shell(server.url) as shell:
        cell(shell, f"%sprite create {TWIN}")
        cell(shell, f"%sprite use {SPRITE} --create")
        bench(shell, args.megabytes, args.repeat)
        with contextlib.suppress(Exception):
            cell(shell, "%sprite python stop")


if __name__ == "__main__":
    main()
