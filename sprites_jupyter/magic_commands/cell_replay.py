"""Cells that outlive their kernel: run through a runner that keeps their output on the
sprite, listed by ``%sprite running`` and replayed by ``%sprite attach``.

With ``SpriteMagics.cells_outlive_kernel`` on, a ``%%sprite_exec`` cell runs under
:mod:`sprites_jupyter.remote.cell_runner` as an exec session that the server keeps
after the socket closes, its output appended to a bounded file on the sprite. A new
kernel replays that file whole, follows it live, and ends with the cell's status.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from argparse import Namespace
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..client import Command, NotFound, Sprite
from .cell_checkpoints import cell_comment
from .context import CommandContext
from .registry import subcommand

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CELLS_DIR", "newest_cell", "outliving_argv", "replay_command", "running"]

HOME = "/home/sprite"
CELLS_DIR = f"{HOME}/.sprites_jupyter/cells"
_RUNNER = "cell_runner.py"


def _runner_path(handle: Sprite) -> str:
    """The runner on the sprite, uploaded when this version is missing."""
    source = resources.files("sprites_jupyter.remote").joinpath(_RUNNER).read_bytes()
    path = f"{HOME}/.sprites_jupyter/runner-{hashlib.sha256(source).hexdigest()[:12]}.py"
    try:
        handle.stat(path)
    except NotFound:
        handle.write_file(path, source)
    return path


def outliving_argv(ctx: CommandContext, handle: Sprite, argv: list[str],
                   code: str) -> list[str]:
    """``argv`` run under the runner, its output kept in a new cell folder."""
    cell_id = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:6]}"
    first_line = cell_comment(ctx.shell.execution_count, code, "").partition(": ")[2]
    return ["python3", _runner_path(handle), "run", f"{CELLS_DIR}/{cell_id}",
            str(ctx.settings.cell_output_kept), "exec", first_line, "--", *argv]


def _cells(handle: Sprite) -> list[dict[str, Any]]:
    result = handle.run("python3", _runner_path(handle), "list", CELLS_DIR, check=True)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@subcommand("running", "cells kept on the sprite past their kernel (DataFrame)")
def running(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """Every kept cell, newest first: kind, started, first line, still running, exit."""
    import pandas as pd
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "running"):
        cells = sorted(_cells(handle), key=lambda c: c["started"], reverse=True)
    started = [datetime.fromtimestamp(c["started"], UTC) for c in cells]
    index = pd.Index([c["id"] for c in cells], name="id", dtype="object")
    return pd.DataFrame({
        "kind": pd.Series([c["kind"] for c in cells], index=index, dtype="object"),
        "started": pd.Series(pd.to_datetime(started, utc=True), index=index,
                             dtype="datetime64[ns, UTC]"),
        "first_line": pd.Series([c["first_line"] for c in cells], index=index,
                                dtype="object"),
        "running": pd.Series([bool(c["running"]) for c in cells], index=index, dtype="bool"),
        "exit_code": pd.Series([c["exit_code"] for c in cells], index=index, dtype="Int64"),
    }, index=index)


def newest_cell(handle: Sprite) -> str:
    """The newest kept cell (ids begin with their start time in milliseconds), read with
    one file-API listing rather than a process on the sprite."""
    try:
        folders = [e.name for e in handle.list_dir(CELLS_DIR) if e.is_dir]
    except NotFound:
        folders = []
    if not folders:
        raise UsageError(f"No cell has been kept on sprite {handle.name}: turn "
                         "SpriteMagics.cells_outlive_kernel on, or give a session id")
    return max(folders, key=lambda name: (len(name.partition("-")[0]), name))


def replay_command(handle: Sprite, cell_id: str) -> Command:
    """A command that writes the cell's whole output, follows it, and exits with its
    status."""
    return handle.command("python3", _runner_path(handle), "replay", f"{CELLS_DIR}/{cell_id}",
                          stdin=False)
