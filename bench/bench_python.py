"""Cost of ``%%sprite_python``, through a real IPython shell and local server.

1. A ``1 + 1`` cell round trip in the persistent session, as a ratio to
   ``%%sprite_exec --shell python3`` running the same code (a new interpreter per
   cell; target <= 0.3x), next to a local ``exec`` of the code.
2. ``%sprite push`` + ``%sprite pull`` of a large DataFrame, as throughput relative
   to writing and reading it as Parquet on local disk (target >= 0.3x). Without
   pyarrow here the baseline is a pickle file written and read on local disk (the
   transfer then uses pickle too); without pandas on the sprite the value is a
   numpy array, and without numpy there a bytes value — the script says which.

Samples are interleaved; min and median of ``--repeat`` (>= 5) each.

    python bench/bench_python.py [--megabytes 500] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import pickle
import tempfile
from typing import Any

from bench_common import cell as _cell
from bench_common import loaded_shell, local_server, summary, timed
from IPython.core.interactiveshell import InteractiveShell

from sprites_jupyter.magic_commands.python.lifecycle import sessions_of


def bench_round_trip(shell: InteractiveShell, repeat: int) -> None:
    code = "1 + 1"
    compiled = compile(code, "<bench>", "eval")
    _cell(shell, f"%%sprite_python\n{code}\n")
    samples: dict[str, list[float]] = {"session": [], "exec": [], "local": []}
    for _ in range(repeat):
        samples["session"].append(timed(lambda: _cell(shell, f"%%sprite_python\n{code}\n")))
        samples["exec"].append(timed(lambda: _cell(
            shell, f"%%sprite_exec --shell python3\nprint({code})\n")))
        samples["local"].append(timed(lambda: eval(compiled, {})))
    print(f"1. {code!r} round trip ({repeat} interleaved samples)")
    session = summary("%%sprite_python", samples["session"])
    fresh = summary("%%sprite_exec --shell python3", samples["exec"])
    summary("local exec", samples["local"])
    best = min(samples["session"]) / min(samples["exec"])
    print(f"  ratio session / sprite_exec: {session / fresh:.3f}x of medians, {best:.3f}x of "
          "minimums (target <= 0.3x)")


def _large_value(shell: InteractiveShell, sprite: str, megabytes: int) -> tuple[Any, str]:
    has = sessions_of(shell.configurables[-1].context)[sprite].info.get("has", {})
    import numpy as np

    rows = megabytes * 1024 * 1024 // (4 * 8)
    if has.get("pandas"):
        import pandas as pd

        generator = np.random.default_rng(0)
        # Integer column labels: with pyarrow here and not on the sprite, pandas 3 would
        # pickle string labels as Arrow strings the sprite cannot load.
        return pd.DataFrame({i: generator.random(rows) for i in range(4)}), "DataFrame"
    if has.get("numpy"):
        return np.random.default_rng(0).random((rows, 4)), "numpy array (no pandas on sprite)"
    return os.urandom(megabytes * 1024 * 1024), "bytes (no numpy on sprite)"


def _local_disk(value: Any, folder: str) -> None:
    """The baseline: write the value to local disk and read it back."""
    if importlib.util.find_spec("pyarrow") and type(value).__name__ == "DataFrame":
        import pandas as pd

        path = os.path.join(folder, "baseline.parquet")
        value.to_parquet(path)
        pd.read_parquet(path)
    else:
        path = os.path.join(folder, "baseline.pickle")
        with open(path, "wb") as target:
            pickle.dump(value, target, protocol=pickle.HIGHEST_PROTOCOL)
        with open(path, "rb") as source:
            pickle.load(source)
    os.unlink(path)


def bench_transfer(shell: InteractiveShell, sprite: str, megabytes: int, repeat: int) -> None:
    value, kind = _large_value(shell, sprite, megabytes)
    shell.user_ns["payload"] = value
    baseline_name = ("Parquet" if importlib.util.find_spec("pyarrow")
                     and kind == "DataFrame" else "pickle")
    samples: dict[str, list[float]] = {"transfer": [], "disk": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(repeat):
            samples["transfer"].append(timed(lambda: (
                _cell(shell, "%sprite push payload"),
                _cell(shell, "%sprite pull payload --as payload_back"))))
            shell.user_ns.pop("payload_back", None)
            samples["disk"].append(timed(lambda: _local_disk(value, folder)))
    print(f"2. push + pull of a {megabytes} MB {kind} ({repeat} interleaved samples)")
    transfer = summary("push + pull", samples["transfer"], "s")
    disk = summary(f"local {baseline_name} write + read", samples["disk"], "s")
    best = min(samples["disk"]) / min(samples["transfer"])
    print(f"  throughput {2 * megabytes / transfer:.0f} MB/s moved; relative to local disk: "
          f"{disk / transfer:.2f}x of medians, {best:.2f}x of minimums (target >= 0.3x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with local_server() as server, loaded_shell(server.url) as shell:
        _cell(shell, "%sprite use bench-python --create")
        bench_round_trip(shell, args.repeat)
        bench_transfer(shell, "bench-python", args.megabytes, args.repeat)
        with contextlib.suppress(Exception):
            _cell(shell, "%sprite python stop")


if __name__ == "__main__":
    main()
