"""Checkpoint contents: ``diff``, ``show`` and ``ls A:PATH``.

The work happens inside the sprite: :mod:`sprites_jupyter.remote.diff_helper`
is sent to its ``python3`` on stdin (not in the exec URL) and walks the
read-only checkpoint trees the service mounts at ``/.sprite/checkpoints/<id>/``,
so only the answer crosses the network. Only recent checkpoints are mounted;
asking about another gets one line naming those that can be compared.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
from argparse import Namespace
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..client import FileEntry, NotFound, Sprite
from ..frames import (
    changes_by_directory,
    changes_frame,
    describe_changes,
    describe_undo,
    files_frame,
)
from .context import CommandContext
from .errors import describe_ids
from .registry import Dashes, Names, argument, subcommand

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HELPER_SOURCE", "checkpoint_changes", "diff", "ls_checkpoint", "restore_summary",
           "show", "split_checkpoint_path"]

HELPER_SOURCE = files("sprites_jupyter.remote").joinpath("diff_helper.py").read_text("utf-8")
CHECKPOINTS_DIR = "/.sprite/checkpoints"
HOME = "/home/sprite"
# How far the sprite's clock may be behind the API's (checkpoint times come from the API).
CLOCK_SKEW = 60.0
_CHECKPOINT_PATH = re.compile(r"^([\w.-]+):(.*)$")
_NATURAL = re.compile(r"(\d+)")


def split_checkpoint_path(text: str) -> tuple[str, str] | None:
    """``v1:/etc/hosts`` → ``("v1", "/etc/hosts")``; ``None`` for a plain path.

    A relative path is taken from the sprite's home, as the filesystem API does.
    """
    match = _CHECKPOINT_PATH.match(text)
    if not match:
        return None
    path = match.group(2) or HOME
    return match.group(1), path if path.startswith("/") else f"{HOME}/{path}"


def _natural(checkpoint_id: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in _NATURAL.split(checkpoint_id)]


def _not_mounted(handle: Sprite, answer: dict[str, Any]) -> UsageError:
    missing = str(answer.get("id", ""))
    try:
        _taken(handle, missing)
    except UsageError as error:
        return error
    mounted = sorted((str(m) for m in answer.get("mounted") or ()), key=_natural)
    if not mounted:
        where = " (the local server mounts them only when it runs sprites sandboxed)" \
            if handle.client.is_local else ""
        return UsageError(f"Checkpoint {missing} is not mounted in sprite {handle.name}: no "
                          f"checkpoints are mounted at {CHECKPOINTS_DIR}/{where}")
    return UsageError(f"Checkpoint {missing} is not mounted in sprite {handle.name} (only "
                      f"recent checkpoints are); these can be compared: {', '.join(mounted)}")


def ask_helper(handle: Sprite, request: dict[str, Any]) -> list[Any]:
    """Run one request through the in-sprite helper; its answer, one item per line."""
    result = handle.run("python3", "-", json.dumps(request), stdin=HELPER_SOURCE)
    try:
        lines = [json.loads(line) for line in result.stdout.splitlines() if line]
    except ValueError:
        lines = []
    if result.exit_code == 3 and lines:
        raise _not_mounted(handle, lines[0])
    if result.exit_code == 2 and lines:
        raise UsageError(f"{handle.name}: {lines[0].get('error')}")
    if result.exit_code != 0:
        detail = (result.stderr.strip().splitlines() or [f"exit code {result.exit_code}"])[-1]
        raise UsageError(f"Cannot compare checkpoints in sprite {handle.name}: python3 in the "
                         f"sprite failed ({detail})")
    return lines


def _taken(handle: Sprite, checkpoint_id: str) -> float | None:
    """When the checkpoint was taken (Unix seconds), or a UsageError if it does not exist."""
    try:
        created = handle.get_checkpoint(checkpoint_id).create_time
    except NotFound:
        have = [c.id for c in handle.list_checkpoints(include_auto=True)]
        raise UsageError(f"Checkpoint {checkpoint_id} not found on sprite {handle.name} "
                         f"(have {describe_ids(have)})") from None
    return created.timestamp() if created is not None else None


def checkpoint_changes(handle: Sprite, a: str, b: str | None = None,
                       paths: tuple[str, ...] | list[str] = ()) -> pd.DataFrame:
    """What differs between checkpoint ``a`` and ``b`` (default: the sprite now)."""
    request: dict[str, Any] = {"op": "diff", "a": a, "b": b, "paths": list(paths)}
    if b is None and (taken := _taken(handle, a)) is not None:
        request["since"] = taken - CLOCK_SKEW
    return changes_frame(ask_helper(handle, request))


def restore_summary(handle: Sprite, checkpoint_id: str) -> str:
    """The sentence a restore confirmation shows: what restoring would undo."""
    try:
        return describe_undo(checkpoint_id, checkpoint_changes(handle, checkpoint_id))
    except UsageError as error:
        return f"What it would undo is unknown: {error}."


def _label(checkpoint_id: str | None) -> str:
    return checkpoint_id or "now"


def _file_diff(handle: Sprite, args: Namespace) -> None:
    (answer,) = ask_helper(handle, {"op": "file", "a": args.a, "b": args.b,
                                    "path": args.file})
    sides = f"{args.a} and {_label(args.b)}"
    if answer["same"]:
        print(f"{args.file}: no differences between {sides}")
    elif answer["binary"]:
        sizes = [f"{'absent' if s is None else f'{s} bytes'} in {label}"
                 for s, label in ((answer["size_a"], args.a), (answer["size_b"], _label(args.b)))]
        print(f"Binary file {args.file} differs: {', '.join(sizes)}")
    else:
        print(answer["diff"], end="" if answer["diff"].endswith("\n") else "\n")


@subcommand("diff", "what changed (DataFrame): diff A [B] [-- PATH …] [--stat] [--file PATH]",
            argument("a", metavar="A", complete=Names.CHECKPOINTS,
                     help="the checkpoint to compare"),
            argument("b", metavar="B", nargs="?", complete=Names.CHECKPOINTS,
                     help="the checkpoint to compare it with (default: the sprite now)"),
            argument("--stat", action="store_true",
                     help="a one-line summary and counts by top-level directory"),
            argument("--file", metavar="PATH", help="a unified diff of this one file"),
            dashes=Dashes("paths"))
def diff(ctx: CommandContext, args: Namespace) -> pd.DataFrame | None:
    """A DataFrame of what differs between two checkpoints (or one and now)."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "diff", " ".join(filter(None, (args.a, args.b)))):
        if args.file:
            _file_diff(handle, args)
            return None
        frame = checkpoint_changes(handle, args.a, args.b, args.paths)
        if args.stat:
            print(f"{args.a} → {_label(args.b)}: {describe_changes(frame)}")
            return changes_by_directory(frame, args.paths)
        return frame


def _checkpoint_path(text: str, subcommand: str) -> tuple[str, str]:
    parsed = split_checkpoint_path(text)
    if parsed is None:
        raise UsageError(f"%sprite {subcommand}: give CHECKPOINT:PATH, e.g. "
                         f"%sprite {subcommand} v1:/home/sprite/results.txt")
    return parsed


@subcommand("show", "a file as it was in a checkpoint: show A:PATH [-o VAR]",
            argument("target", metavar="A:PATH", help="checkpoint and file, e.g. v1:/etc/hosts"),
            argument("-o", "--out", metavar="VAR", help="keep the file's bytes in VAR"))
def show(ctx: CommandContext, args: Namespace) -> None:
    """Print a file as it was in a checkpoint (text), or describe it (binary)."""
    checkpoint_id, path = _checkpoint_path(args.target, "show")
    handle = ctx.sprite(args.sprite)
    where = f"{checkpoint_id}:{path}"
    with ctx.operation(handle.name, "show", where):
        (answer,) = ask_helper(handle, {"op": "read", "a": checkpoint_id, "path": path})
    if answer["type"] == "directory":
        raise UsageError(f"{where} is a directory: list it with %sprite ls {where}")
    if answer["type"] == "symlink":
        print(f"{where} is a symlink to {answer['target']}")
        return
    if answer["type"] != "file":
        raise UsageError(f"{where} is a {answer['type']}, not a regular file")
    data = base64.b64decode(answer["data"])
    if args.out:
        ctx.shell.user_ns[args.out] = data
        print(f"{where}: {len(data)} bytes kept in {args.out}")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\0" in text:
        kind = mimetypes.guess_type(path)[0] or "binary data"
        print(f"{where}: binary, {len(data)} bytes ({kind}); keep the bytes with "
              f"%sprite show {where} -o VAR")
        return
    print(text, end="" if text.endswith("\n") or not text else "\n")


def ls_checkpoint(ctx: CommandContext, handle: Sprite, checkpoint_id: str,
                  path: str) -> pd.DataFrame:
    """A directory's entries as they were in a checkpoint (the same frame as ``ls``)."""
    with ctx.operation(handle.name, "ls", f"{checkpoint_id}:{path}"):
        entries = ask_helper(handle, {"op": "list", "a": checkpoint_id, "path": path})
    return files_frame(FileEntry.from_json(entry) for entry in entries)
