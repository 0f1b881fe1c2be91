"""``%sprite undo`` and ``%sprite redo``: take back a cell's effect on the whole sprite.

With ``SpriteMagics.checkpoint_cells`` on, every ``%%sprite_exec``/``%%sprite_python``
cell is preceded by a checkpoint whose comment names the cell (cell_checkpoints.py).
Undo restores the newest such checkpoint the live state descends from; the restore's
own safety checkpoint is the way back that redo takes.
"""

from __future__ import annotations

import sys
from argparse import Namespace
from datetime import UTC, datetime

from IPython.core.error import UsageError

from ..client import Checkpoint, NotFound, Sprite, SpritesError
from ..widgets.progress import ProgressView
from .cell_checkpoints import cell_comment, cell_tag, notebook_name
from .checkpoints import restore_with_undo, save_variables
from .context import CommandContext
from .errors import explain
from .registry import argument, subcommand

__all__ = ["checkpoint_before_cell", "redo", "undo", "undo_to", "undoable_cells"]

_OLDEST = datetime.min.replace(tzinfo=UTC)


def checkpoint_before_cell(ctx: CommandContext, name: str, code: str) -> None:
    """Take the per-cell checkpoint (when ``checkpoint_cells`` is on), then prune the
    oldest beyond ``cell_checkpoints_kept``."""
    if not ctx.settings.checkpoint_cells:
        return
    handle = ctx.sprite(name)
    comment = cell_comment(ctx.shell.execution_count, code, notebook_name(ctx.shell))
    with ctx.journal.record(name, "checkpoint", comment) as taken:
        save_variables(ctx, handle)
        created = handle.create_checkpoint(comment).wait()
        taken.set(f"ok: {created.id}")
    ctx.undo.new_cell(name)
    _prune(handle, ctx.settings.cell_checkpoints_kept)


def _newest_first(checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    return sorted(checkpoints, key=lambda c: c.create_time or _OLDEST, reverse=True)


def _prune(handle: Sprite, keep: int) -> None:
    """Delete the per-cell checkpoints past the newest ``keep``; the user's own and the
    server's automatic ones are never touched. A failed delete is said, not raised:
    the cell itself is fine."""
    cells = _newest_first([c for c in handle.list_checkpoints(include_auto=True)
                           if cell_tag(c.comment)])
    for old in cells[keep:]:
        try:
            handle.delete_checkpoint(old.id)
        except NotFound:
            pass
        except SpritesError as error:
            print(f"Could not prune per-cell checkpoint {old.id} of sprite {handle.name}: "
                  f"{explain(error)}", file=sys.stderr)
            return


def undoable_cells(handle: Sprite, undone: set[str]) -> list[Checkpoint]:
    """The per-cell checkpoints the live state descends from, newest first, minus those
    already undone. A server that lists no lineage for the live state gets every one."""
    cells = [c for c in handle.list_checkpoints(include_auto=True)
             if cell_tag(c.comment) and c.id not in undone]
    try:
        live = handle.get_checkpoint("Current")
    except NotFound:
        live = None
    if live is not None and (live.history or live.source_id):
        ancestry = {*live.history, live.source_id}
        cells = [c for c in cells if c.id in ancestry]
    return _newest_first(cells)


def _cells_text(checkpoints: list[Checkpoint]) -> str:
    tags = [cell_tag(c.comment) for c in checkpoints]
    described = [tag.describe() for tag in tags if tag is not None]
    if len(described) == 1:
        return described[0]
    return f"{len(described)} cells ({described[-1]} … {described[0]})"


@subcommand("undo", "take back the last cell's effect on the sprite: undo [N|on|off]",
            argument("what", nargs="?", default="1", metavar="N|on|off",
                     help="undo the last N cells (default 1); on/off: take a checkpoint "
                          "before every cell or not (SpriteMagics.checkpoint_cells)"))
def undo(ctx: CommandContext, args: Namespace) -> None:
    """Restore the sprite to before the last (N-th last) checkpointed cell."""
    if args.what in ("on", "off"):
        ctx.settings.checkpoint_cells = args.what == "on"
        kept = ctx.settings.cell_checkpoints_kept
        print("Per-cell checkpoints are on: %sprite undo takes back a cell "
              f"(the last {kept} are kept)" if args.what == "on"
              else "Per-cell checkpoints are off")
        return
    if not args.what.isdigit() or int(args.what) < 1:
        raise UsageError(f"%sprite undo takes a number of cells, on or off, not '{args.what}'")
    count = int(args.what)
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "undo", args.what) as journaled:
        cells = undoable_cells(handle, ctx.undo.undone.get(handle.name, set()))
        if not cells:
            hint = ("" if ctx.settings.checkpoint_cells
                    else ": turn per-cell checkpoints on with %sprite undo on")
            raise UsageError(f"Nothing to undo on sprite {handle.name}: no checkpointed "
                             f"cell is left{hint}")
        if count > len(cells):
            raise UsageError(f"Only {len(cells)} cell(s) can be undone on sprite "
                             f"{handle.name}: try %sprite undo {len(cells)}")
        message = _undo(ctx, handle, cells[:count], ctx.progress(f"Undo on {handle.name}"))
        journaled.set(f"ok: {message}")
    print(message)


def undo_to(ctx: CommandContext, handle: Sprite, checkpoint_id: str, view: ProgressView) -> str:
    """Undo every cell back to (and including) the one checkpoint ``checkpoint_id`` was
    taken before (the panel's Undo to here); the one-line account of it."""
    with ctx.operation(handle.name, "undo", checkpoint_id) as journaled:
        cells = undoable_cells(handle, ctx.undo.undone.get(handle.name, set()))
        ids = [c.id for c in cells]
        if checkpoint_id not in ids:
            raise UsageError(f"Checkpoint {checkpoint_id} is not a cell sprite {handle.name} "
                             "can go back to: it was undone, pruned or is not a cell's")
        message = _undo(ctx, handle, cells[:ids.index(checkpoint_id) + 1], view)
        journaled.set(f"ok: {message}")
    return message


def _undo(ctx: CommandContext, handle: Sprite, taken_back: list[Checkpoint],
          view: ProgressView) -> str:
    target = taken_back[-1]
    way_back = restore_with_undo(ctx, handle, target.id, view)
    ctx.undo.undid(handle.name, [c.id for c in taken_back], way_back)
    return (f"Undid {_cells_text(taken_back)} on sprite {handle.name}: back to checkpoint "
            f"{target.id}. %sprite redo brings it back")


@subcommand("redo", "return to the state before the last undo")
def redo(ctx: CommandContext, args: Namespace) -> None:
    """Restore the safety checkpoint the last undo took."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "redo") as journaled:
        popped = ctx.undo.redone(handle.name)
        if popped is None:
            raise UsageError(f"Nothing to redo on sprite {handle.name}: this kernel has not "
                             "undone a cell since the last one ran")
        way_back, cells = popped
        try:
            restore_with_undo(ctx, handle, way_back, ctx.progress(f"Redo on {handle.name}"))
        except BaseException:
            ctx.undo.undid(handle.name, cells, way_back)
            raise
        journaled.set(f"ok: restored {way_back}")
    plural = "s" if len(cells) != 1 else ""
    print(f"Redid {len(cells)} cell{plural} on sprite {handle.name}: back to checkpoint "
          f"{way_back}, the state before the undo")
