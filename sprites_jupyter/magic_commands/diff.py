"""Checkpoint contents: ``diff`` (``--vars``: the Python session's variables),
``show`` and ``ls A:PATH``.

The work happens inside the sprite: :mod:`sprites_jupyter.remote.diff_helper` and the
modules it imports are sent to its ``python3`` on stdin as one program (not in the exec
URL) and walk the read-only checkpoint trees the service mounts at
``/.sprite/checkpoints/<id>/``, so only the answer crosses the network. Only recent
checkpoints are mounted; asking about another gets one line naming those that can be
compared.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
from argparse import Namespace
from functools import cache
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..change_summary import describe_size_change, summarize_changes
from ..client import Checkpoint, FileEntry, Sprite
from ..frames import changes_frame, describe_changes, describe_undo, files_frame
from ..remote.bundle import build
from .checkpoint_refs import resolve_checkpoint
from .context import CommandContext
from .python.lifecycle import sessions_of
from .registry import Dashes, Names, argument, subcommand
from .session_state import save_session
from .variable_changes import checkpoint_states, pick_state, variables_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["checkpoint_changes", "checkpoint_variables", "diff", "helper_source",
           "ls_checkpoint", "restore_summary", "show", "split_checkpoint_path"]

CHECKPOINTS_DIR = "/.sprite/checkpoints"
HOME = "/home/sprite"
# This extension's own bookkeeping in the sprite (Python sessions), never a user's change.
EXTENSION_DIR = f"{HOME}/.sprites_jupyter"
# How far the sprite's clock may be behind the API's (checkpoint times come from the API);
# the local server and its sprites share one clock (timestamps are whole seconds there).
# A wider margin would count the host's own recent changes under /etc as the user's.
CLOCK_SKEW = 60.0
LOCAL_CLOCK_SKEW = 2.0
_CHECKPOINT_PATH = re.compile(r"^([\w.-]+):(.*)$")
_NATURAL = re.compile(r"(\d+)")


@cache
def helper_source() -> str:
    """The in-sprite diff program, built on first use (not when the extension loads)."""
    return build("diff_helper")


def split_checkpoint_path(text: str) -> tuple[str, str] | None:
    """``v1:/etc/hosts`` → ``("v1", "/etc/hosts")``; ``None`` for a plain path.

    A relative path is taken from the sprite's home, as the filesystem API does.
    """
    match = _CHECKPOINT_PATH.match(text)
    if not match:
        return None
    return match.group(1), in_home(match.group(2))


def in_home(path: str) -> str:
    """A sprite path, a relative one taken from ``/home/sprite`` (where cells run)."""
    return path if path.startswith("/") else f"{HOME}/{path}" if path else HOME


def _natural(checkpoint_id: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in _NATURAL.split(checkpoint_id)]


def _not_mounted(handle: Sprite, answer: dict[str, Any]) -> UsageError:
    missing = str(answer.get("id", ""))
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
    result = handle.run("python3", "-", json.dumps(request), stdin=helper_source())
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


def checkpoint_changes(handle: Sprite, a: str, b: str | None = None,
                       paths: tuple[str, ...] | list[str] = ()) -> pd.DataFrame:
    """What differs between checkpoint ``a`` and ``b`` (default: the sprite now), each
    named by its id or its comment."""
    first = resolve_checkpoint(handle, a)
    second = resolve_checkpoint(handle, b).id if b is not None else None
    return _changes(handle, first, second, paths)


def _changes(handle: Sprite, first: Checkpoint, second: str | None,
             paths: tuple[str, ...] | list[str]) -> pd.DataFrame:
    request: dict[str, Any] = {"op": "diff", "a": first.id, "b": second,
                               "paths": [in_home(path) for path in paths],
                               "own": [EXTENSION_DIR]}
    if second is None and first.create_time is not None:
        skew = LOCAL_CLOCK_SKEW if handle.client.is_local else CLOCK_SKEW
        request["since"] = first.create_time.timestamp() - skew
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
                                    "path": in_home(args.file)})
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
                     help="the checkpoint to compare (its id, or a comment naming one)"),
            argument("b", metavar="B", nargs="?", complete=Names.CHECKPOINTS,
                     help="the checkpoint to compare it with (default: the sprite now)"),
            argument("--stat", action="store_true",
                     help="a one-line summary and counts where the changes concentrate "
                          "(by directory; site-packages by package), with sizes"),
            argument("--file", metavar="PATH", help="a unified diff of this one file"),
            argument("--vars", action="store_true",
                     help="the Python session's variables only: name, change, type, "
                          "size_a, size_b"),
            dashes=Dashes("paths"))
def diff(ctx: CommandContext, args: Namespace) -> pd.DataFrame | None:
    """A DataFrame of what differs between two checkpoints (or one and now)."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "diff", " ".join(filter(None, (args.a, args.b)))):
        first = resolve_checkpoint(handle, args.a)
        args.a = first.id
        if args.b is not None:
            args.b = resolve_checkpoint(handle, args.b).id
        if args.vars:
            return checkpoint_variables(ctx, handle, args.a, args.b)
        if args.file:
            _file_diff(handle, args)
            return None
        frame = _changes(handle, first, args.b, args.paths)
        if args.stat:
            size = f" ({describe_size_change(frame)})" if not frame.empty else ""
            print(f"{args.a} → {_label(args.b)}: {describe_changes(frame)}{size}")
            return summarize_changes(frame, [in_home(path) for path in args.paths])
        return frame


def checkpoint_variables(ctx: CommandContext, handle: Sprite, a: str,
                         b: str | None = None) -> pd.DataFrame:
    """The Python session's variables that differ between checkpoint ``a`` and ``b``
    (default: this kernel's session now, saved first)."""
    session = sessions_of(ctx).get(handle.name)
    own = session.session_id if session is not None and session.alive else None
    a = resolve_checkpoint(handle, a).id
    if b is None:
        save_session(session)
    else:
        b = resolve_checkpoint(handle, b).id
    before = pick_state(checkpoint_states(handle, a, ask_helper), own)
    after = pick_state(checkpoint_states(handle, b, ask_helper), own) \
        if b is not None or own else None
    return variables_frame(before, after)


def _checkpoint_path(text: str, subcommand: str) -> tuple[str, str]:
    parsed = split_checkpoint_path(text)
    if parsed is None:
        raise UsageError(f"%sprite {subcommand}: give CHECKPOINT:PATH, e.g. "
                         f"%sprite {subcommand} v1:/home/sprite/results.txt")
    return parsed


@subcommand("show", "a file as it was in a checkpoint: show A:PATH [-o VAR]",
            argument("target", metavar="A:PATH",
                     help="checkpoint (id or comment) and file, e.g. v1:/etc/hosts or "
                          "baseline:results.txt (relative to /home/sprite)"),
            argument("-o", "--out", metavar="VAR", help="keep the file's bytes in VAR"))
def show(ctx: CommandContext, args: Namespace) -> None:
    """Print a file as it was in a checkpoint (text), or describe it (binary)."""
    reference, path = _checkpoint_path(args.target, "show")
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "show", f"{reference}:{path}"):
        checkpoint_id = resolve_checkpoint(handle, reference).id
        where = f"{checkpoint_id}:{path}"
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
        checkpoint_id = resolve_checkpoint(handle, checkpoint_id).id
        entries = ask_helper(handle, {"op": "list", "a": checkpoint_id, "path": path})
    return files_frame(FileEntry.from_json(entry) for entry in entries)
