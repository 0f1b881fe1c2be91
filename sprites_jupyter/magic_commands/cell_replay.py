"""Cells that outlive their kernel: their output kept on the sprite, listed by
``%sprite running`` and replayed by ``%sprite attach`` / ``%sprite python attach``.

With ``SpriteMagics.cells_outlive_kernel`` on, a ``%%sprite_exec`` cell runs under
:mod:`sprites_jupyter.remote.cell_runner` as an exec session that the server keeps
after the socket closes, and a ``%%sprite_python`` cell asks the session's agent to
keep its output (displays and final reply included) the same way: bounded records in a
cell folder on the sprite. A new kernel replays that folder whole (:mod:`.kept_output`),
follows it live, and ends with the cell's status.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
import uuid
from argparse import Namespace
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.display import publish_display_data

from ..client import NotFound, Sprite, SpritesError
from .cell_checkpoints import cell_comment
from .context import CommandContext
from .kept_output import CellEnd, ReplaySink, follow_kept, read_kept
from .python.remote_error import RemotePythonError
from .registry import subcommand

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CELLS_DIR", "attach_cell", "mark_seen", "missed_python_cell", "newest_cell",
           "outliving_argv", "python_keep", "raise_for_end", "running"]

HOME = "/home/sprite"
_CELLS = ".sprites_jupyter/cells"
CELLS_DIR = f"{HOME}/{_CELLS}"
_CELL_ID = re.compile(r"[0-9]+-[0-9a-f]{6}")
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


def _new_cell(ctx: CommandContext, code: str) -> tuple[str, str]:
    """A new cell id (its start time in milliseconds first) and the cell's first line."""
    cell_id = f"{int(time.time() * 1000)}-{uuid.uuid4().hex[:6]}"
    return cell_id, cell_comment(ctx.shell.execution_count, code, "").partition(": ")[2]


def outliving_argv(ctx: CommandContext, handle: Sprite, argv: list[str],
                   code: str) -> list[str]:
    """``argv`` run under the runner, its output kept in a new cell folder."""
    cell_id, first_line = _new_cell(ctx, code)
    return ["python3", _runner_path(handle), "run", f"{CELLS_DIR}/{cell_id}",
            str(ctx.settings.cell_output_kept), "exec", first_line, "--", *argv]


def python_keep(ctx: CommandContext, code: str) -> tuple[str, dict[str, Any]]:
    """A new kept Python cell: its id, and the ``keep`` field of the agent's ``run``."""
    cell_id, first_line = _new_cell(ctx, code)
    return cell_id, {"dir": f"{_CELLS}/{cell_id}", "limit": ctx.settings.cell_output_kept,
                     "first_line": first_line}


def mark_seen(handle: Sprite, cell_id: str) -> None:
    """Note that a kernel showed the cell's end, so ``%sprite python attach`` does not
    replay it again (best effort: at worst it is replayed once more)."""
    with contextlib.suppress(SpritesError, OSError):
        handle.write_file(f"{CELLS_DIR}/{cell_id}/seen", b"")


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


def missed_python_cell(handle: Sprite, session_id: str) -> str | None:
    """The newest kept cell of this Python session whose end no kernel has shown yet."""
    try:
        handle.list_dir(CELLS_DIR)  # none kept: no process on the sprite to ask
    except NotFound:
        return None
    mine = [c for c in _cells(handle) if c.get("kind") == "python"
            and c.get("session") == session_id]
    newest = max(mine, key=lambda c: c["started"], default=None)
    return None if newest is None or newest.get("seen") else str(newest["id"])


def attach_cell(ctx: CommandContext, handle: Sprite, cell_id: str,
                timeout: float | None) -> CellEnd:
    """Replay a kept cell's whole output, then follow it live to its end. Ctrl-C, the
    Stop button or ``timeout`` detach (``exit_code`` None): the cell goes on."""
    if not _CELL_ID.fullmatch(cell_id):
        raise UsageError(f"{cell_id!r} is neither an exec session's id (%sprite sessions) "
                         "nor a kept cell's (%sprite running)")
    folder = f"{CELLS_DIR}/{cell_id}"
    view = ctx.log_view(f"{handle.name}: cell {cell_id}", announce=True)
    sink = ReplaySink(view, lambda data, metadata: publish_display_data(data, metadata))
    try:
        code = _replay_and_follow(handle, folder, sink, timeout)
    except NotFound:
        view.finish("failed", "no such cell")
        raise UsageError(f"Sprite {handle.name} keeps no cell {cell_id}: %sprite running "
                         "lists the kept ones") from None
    except KeyboardInterrupt:
        view.finish("stopped", "detached by Ctrl-C; it keeps running")
        raise
    if code is None:
        view.finish("stopped", "detached; it keeps running")
        return CellEnd(None)
    failed = code != 0
    view.finish("failed" if failed else "done",
                str(sink.final.get("ename") or "") if "status" in sink.final and failed
                else f"exit code {code}")
    if "status" in sink.final:
        mark_seen(handle, cell_id)
    return CellEnd(code, sink.final)


def _replay_and_follow(handle: Sprite, folder: str, sink: ReplaySink,
                       timeout: float | None) -> int | None:
    ended, number, offset = read_kept(handle, folder, sink)
    if ended:
        return int(sink.final.get("exit_code", 0))
    command = handle.command("python3", _runner_path(handle), "follow", folder,
                             str(number), str(offset), stdin=False)
    detached = threading.Event()

    def stop() -> None:
        detached.set()
        command.kill()  # the follower stops; the cell goes on

    sink.view.stop_with(stop)
    return follow_kept(command, sink, timeout, stop, detached)


def raise_for_end(sprite: str, cell_id: str, end: CellEnd) -> None:
    """A failed cell fails the replaying one too: a Python cell with its remote frames."""
    if end.exit_code in (None, 0):
        return
    final = end.final
    if final.get("status") == "error":
        raise RemotePythonError(sprite, str(final.get("ename")), str(final.get("evalue") or ""),
                                list(final.get("traceback") or []))
    raise UsageError(f"Cell {cell_id} on sprite {sprite} exited with code {end.exit_code}")
