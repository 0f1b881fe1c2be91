"""Cost of per-cell checkpoints, undo and kept-cell replay, through a real IPython shell.

1. ``%%sprite_exec echo hi`` with ``checkpoint_cells`` on / off, on a sprite holding
   ``--files`` files (target <= 1.5x), in the steady state of a long notebook: the
   five newest checkpoints have their views, and each cell prunes the oldest cell
   checkpoint (``cell_checkpoints_kept`` set to 5 so that this starts soon).
2. ``%sprite undo`` until the next cell answers / ``%sprite restore ID --yes`` until the
   next cell answers (target <= 1.1x).
3. ``%sprite attach`` replaying a kept cell's ``--lines`` lines / ``%%sprite_exec cat``
   of the same lines from a file (target <= 2x).
Ratios are min and median of interleaved samples (``--repeat``, at least 5).

    python bench/bench_undo.py [--files 20000] [--lines 100000] [--repeat 5]
        [--part all|cells|undo|replay]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys

from bench_common import cell as _cell
from bench_common import compare, interleaved, loaded_shell, local_server, timed
from IPython.core.interactiveshell import InteractiveShell

_KEPT = 5


def bench_cell_checkpoints(shell: InteractiveShell, magics: object, files: int,
                           repeat: int) -> None:
    _cell(shell, "%sprite use bench-cells --create")
    _cell(shell, "%%sprite_exec\npython3 -c \"import os\nos.makedirs('many', exist_ok=True)\n"
                 f"for i in range({files}): open(f'many/{{i}}', 'w').write(str(i))\"")

    def cell(on: bool) -> float:
        magics.checkpoint_cells = on  # type: ignore[attr-defined]
        return timed(lambda: _cell(shell, "%%sprite_exec\necho hi"))

    magics.cell_checkpoints_kept = _KEPT  # type: ignore[attr-defined]
    for _ in range(_KEPT + 2):
        cell(True)
    compare(f"%%sprite_exec echo hi, per-cell checkpoints on / off ({files} files)",
            *interleaved(lambda: cell(True), lambda: cell(False), repeat), most=1.5,
            out=sys.__stdout__)
    magics.checkpoint_cells = False  # type: ignore[attr-defined]


def bench_undo(shell: InteractiveShell, magics: object, repeat: int) -> None:
    _cell(shell, "%sprite use bench-undo --create")
    magics.checkpoint_cells = True  # type: ignore[attr-defined]

    def undo() -> float:
        _cell(shell, "%%sprite_exec\ntouch undone")
        return timed(lambda: (_cell(shell, "%sprite undo"),
                              _cell(shell, "%%sprite_exec\necho hi")))

    def restore() -> float:
        magics.checkpoint_cells = False  # type: ignore[attr-defined]
        created = shell.run_line_magic("sprite", "checkpoint -m plain")
        _cell(shell, "%%sprite_exec\ntouch restored")
        seconds = timed(lambda: (_cell(shell, f"%sprite restore {created.id} --yes"),
                                 _cell(shell, "%%sprite_exec\necho hi")))
        magics.checkpoint_cells = True  # type: ignore[attr-defined]
        return seconds

    compare("%sprite undo + next cell / %sprite restore --yes + next cell",
            *interleaved(undo, restore, repeat), most=1.1, out=sys.__stdout__)
    magics.checkpoint_cells = False  # type: ignore[attr-defined]


def bench_replay(shell: InteractiveShell, magics: object, lines: int, repeat: int) -> None:
    _cell(shell, "%sprite use bench-replay --create")
    magics.cells_outlive_kernel = True  # type: ignore[attr-defined]
    _cell(shell, f"%%sprite_exec\nseq 1 {lines} | sed 's/^/line /'")
    magics.cells_outlive_kernel = False  # type: ignore[attr-defined]
    _cell(shell, f"%%sprite_exec\nseq 1 {lines} | sed 's/^/line /' > lines.txt")
    shown = _cell(shell, "%sprite attach").count("line ")
    if shown != lines:
        raise SystemExit(f"the replay showed {shown} of {lines} lines")
    compare(f"%sprite attach replaying {lines} lines / %%sprite_exec cat of them",
            *interleaved(lambda: timed(lambda: _cell(shell, "%sprite attach")),
                         lambda: timed(lambda: _cell(shell, "%%sprite_exec\ncat lines.txt")),
                         repeat), most=2, out=sys.__stdout__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--part", choices=("all", "cells", "undo", "replay"), default="all")
    args = parser.parse_args()
    with local_server() as server, loaded_shell(server.url) as shell, \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        shell.run_line_magic("config", "SpriteMagics.confirm_restore = False")
        magics = next(c for c in shell.configurables if type(c).__name__ == "SpriteMagics")
        if args.part in ("all", "cells"):
            bench_cell_checkpoints(shell, magics, args.files, args.repeat)
        if args.part in ("all", "undo"):
            bench_undo(shell, magics, args.repeat)
        if args.part in ("all", "replay"):
            bench_replay(shell, magics, args.lines, args.repeat)


if __name__ == "__main__":
    main()
