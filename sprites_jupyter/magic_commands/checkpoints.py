"""Checkpoint subcommands: checkpoint (and checkpoint delete), checkpoints, restore, browse.

A checkpoint holds the Python session's variables too: the session saves its
namespace into the sprite first (:mod:`.session_state`). Every restore can be undone.
The local server, and any server that has said so in an earlier restore stream,
takes an ``auto-<ms>`` safety checkpoint before restoring; for other servers a
checkpoint of the live state is taken first (the protocol itself does not promise
a backup of what a restore replaces).
"""

from __future__ import annotations

import contextlib
import re
from argparse import Namespace
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..client import Checkpoint, CheckpointStream, NotFound, Sprite, SpritesError
from ..frames import checkpoints_frame
from ..widgets.browser import (
    RESTORE_EFFECT,
    CheckpointActions,
    CheckpointBrowser,
    checkpoint_table_text,
)
from ..widgets.progress import ProgressView, describe_event, track
from .cell_checkpoints import untagged
from .checkpoint_refs import resolve_checkpoint
from .context import CommandContext
from .diff import checkpoint_changes, checkpoint_variables
from .errors import explain
from .python.lifecycle import sessions_of
from .python.session import AGENT_FILES
from .registry import Names, action, argument, subcommand
from .restore_preview import describe_restore
from .session_state import end_after_restore, save_others, save_session

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["browse", "browser_actions", "checkpoint", "checkpoints", "delete", "restore"]

_AUTO_ID = re.compile(r"\bauto-\d+\b")
_LIVE_IDS = ("current", "active")


def save_variables(ctx: CommandContext, handle: Sprite) -> str:
    """Every Python session on the sprite saves its namespace into it: this kernel's, and
    those other kernels left running there. What happened, in one line."""
    own = sessions_of(ctx).get(handle.name)
    lines = [save_session(own)]
    with contextlib.suppress(SpritesError, OSError):
        others = [s.id for s in handle.list_sessions() if AGENT_FILES[0] in s.command
                  and (own is None or not own.alive or s.id != own.session_id)]
        lines += save_others(handle, others)
    return "; ".join(line for line in lines if line)


def restored(ctx: CommandContext, name: str) -> None:
    """After a restore: this kernel's Python session on ``name`` is seen as ended, so its
    next use resumes the variables the checkpoint holds."""
    end_after_restore(sessions_of(ctx).get(name))


def restore_preview(ctx: CommandContext, handle: Sprite, checkpoint_id: str) -> str:
    """The confirmation's paragraph, the Python session saved first (so it compares the
    variables the session holds now)."""
    save_variables(ctx, handle)
    return describe_restore(ctx, handle, checkpoint_id)


def take_checkpoint(ctx: CommandContext, handle: Sprite, comment: str,
                    view: ProgressView) -> Checkpoint:
    """Save the Python session's variables, then create a checkpoint, showing its stages
    on ``view``."""
    saved = save_variables(ctx, handle)
    stream = handle.create_checkpoint(comment)
    for _ in track(stream, view):
        pass
    created = _created(stream)
    view.succeed(f"{created.id} created" + (f"; Python session: {saved}" if saved else ""))
    return created


def _created(stream: CheckpointStream) -> Checkpoint:
    """The checkpoint a finished creation stream made (a server that names none fails)."""
    if stream.result is None:
        raise UsageError(f"{stream.what}: the server ended without naming the checkpoint")
    return stream.result


def restore_with_undo(ctx: CommandContext, handle: Sprite, checkpoint_id: str,
                      view: ProgressView) -> str:
    """Restore with a way back; returns the id of the checkpoint that undoes it."""
    backs_up = (handle.client.is_local
                or handle.client.base_url in ctx.servers_with_auto_backup)
    save_variables(ctx, handle)
    before = None
    if not backs_up:
        comment = f"before restore to {checkpoint_id}"
        with ctx.journal.record(handle.name, "checkpoint", comment) as taken:
            before = handle.create_checkpoint(comment)
            for _ in track(before, view):
                pass
            taken.set(f"ok: {_created(before).id}")
    auto_id = None
    for event in track(handle.restore_checkpoint(checkpoint_id), view):
        found = _AUTO_ID.search(describe_event(event) or "")
        if event.type == "info" and found:
            auto_id = found.group(0)
    restored(ctx, handle.name)
    if auto_id:
        ctx.servers_with_auto_backup.add(handle.client.base_url)
    undo_id = auto_id or (_created(before).id if before is not None else "")
    view.succeed(f"restored {checkpoint_id}; undo with %sprite restore {undo_id}")
    return undo_id


@subcommand("checkpoint", "take a checkpoint: checkpoint [-m COMMENT] | checkpoint delete ID",
            argument("-m", "--comment", default="", help="what this checkpoint is"),
            actions=(action("delete", "delete a checkpoint: delete ID [--yes]",
                            argument("id", complete=Names.CHECKPOINTS),
                            argument("--yes", action="store_true",
                                     help="do not ask for confirmation")),))
def checkpoint(ctx: CommandContext, args: Namespace) -> Checkpoint | None:
    """Take a checkpoint with a progress view; returns the new Checkpoint.
    ``checkpoint delete ID`` deletes one instead."""
    if args.action == "delete":
        delete(ctx, args)
        return None
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "checkpoint", args.comment) as journaled:
        created = take_checkpoint(ctx, handle, args.comment,
                                  ctx.progress(f"Checkpoint {handle.name}"))
        journaled.set(f"ok: {created.id}")
        return created


@subcommand("checkpoints", "list checkpoints (DataFrame): checkpoints [--auto] [--history ID]",
            argument("--auto", action="store_true",
                     help="include automatic and per-cell checkpoints"),
            argument("--history", metavar="ID", complete=Names.CHECKPOINTS,
                     help="only checkpoints descending from ID (or the checkpoint a "
                          "comment names)"))
def checkpoints(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """The sprite's checkpoints as a DataFrame indexed by id."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "checkpoints", args.history or ""):
        history = resolve_checkpoint(handle, args.history).id if args.history else None
        listed = handle.list_checkpoints(include_auto=args.auto, history=history)
        if args.auto:
            return checkpoints_frame(listed)
        # Read as a column: making each checkpoint's model cost more than the listing.
        keep = untagged(listed.column("comment"))
        return checkpoints_frame(listed if all(keep) else listed.where(keep))


@subcommand("restore", "restore a checkpoint: restore ID [--yes]",
            argument("id", complete=Names.CHECKPOINTS,
                     help="a checkpoint's id, or a comment that names one checkpoint"),
            argument("--yes", action="store_true", help="do not ask for confirmation"))
def restore(ctx: CommandContext, args: Namespace) -> None:
    """Restore a checkpoint after confirmation, then print how to undo it."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "restore", args.id) as journaled:
        target = resolve_checkpoint(handle, args.id)
        if ctx.settings.confirm_restore and not args.yes:
            comment = f" ({target.comment})" if target.comment else ""
            ctx.confirm(f"Restore {target.id}{comment} on sprite {handle.name}? "
                        f"{restore_preview(ctx, handle, target.id)} This {RESTORE_EFFECT}.",
                        how_to_skip=f"add --yes (%sprite restore {args.id} --yes)")
        undo_id = restore_with_undo(ctx, handle, target.id,
                                    ctx.progress(f"Restore {handle.name}"))
        journaled.set(f"ok: undo with {undo_id}")
    print(f"Restored {target.id} on sprite {handle.name}. "
          f"Undo with: %sprite restore {undo_id}")


def delete(ctx: CommandContext, args: Namespace) -> None:
    """Delete a checkpoint after confirmation (as restore asks); the live state
    (``Current``) and the checkpoint the sprite runs on are refused before asking."""
    if args.comment:
        raise UsageError("%sprite checkpoint delete takes no -m: a deleted checkpoint "
                         "keeps no comment")
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "checkpoint delete", args.id):
        if args.id.lower() in _LIVE_IDS:
            raise UsageError(f"{args.id} is sprite {handle.name}'s live state, not a "
                             "checkpoint: it cannot be deleted")
        target = resolve_checkpoint(handle, args.id)
        if _active_checkpoint(handle) == target.id:
            raise UsageError(f"Checkpoint {target.id} is the one sprite {handle.name} runs "
                             "on: restore another checkpoint first, then delete it")
        if ctx.settings.confirm_restore and not args.yes:
            comment = f" ({target.comment})" if target.comment else ""
            ctx.confirm(f"Delete checkpoint {target.id}{comment} of sprite {handle.name}? "
                        "It cannot be restored afterwards.",
                        how_to_skip=f"add --yes (%sprite checkpoint delete {args.id} --yes)")
        handle.delete_checkpoint(target.id)
    print(f"Deleted checkpoint {target.id} of sprite {handle.name}")


def _active_checkpoint(handle: Sprite) -> str | None:
    """The checkpoint the live state descends from (``Current``'s ``source_id``), where
    the server lists one."""
    try:
        return handle.get_checkpoint("Current").source_id
    except NotFound:
        return None


def browser_actions(ctx: CommandContext, handle: Sprite) -> CheckpointActions:
    """What the browser (and the timeline panel) may do on ``handle``, journaled."""
    name = handle.name

    def journaled(operation: str, target: str, job: Any, outcome: str) -> Any:
        with ctx.journal.record(name, operation, target) as journal_outcome:
            result = job()
            journal_outcome.set(outcome.format(result))
            return result

    return CheckpointActions(
        list=lambda: handle.list_checkpoints(include_auto=True),
        get=lambda cp: resolve_checkpoint(handle, cp),
        restore=lambda cp, view: journaled("restore", cp,
                                           lambda: restore_with_undo(ctx, handle, cp, view),
                                           "ok: undo with {}"),
        create=lambda comment, view: journaled(
            "checkpoint", comment, lambda: take_checkpoint(ctx, handle, comment, view).id,
            "ok: {}"),
        explain=explain,
        changes=lambda cp: checkpoint_changes(handle, cp),
        variables=lambda cp: checkpoint_variables(ctx, handle, cp),
        preview=lambda cp: restore_preview(ctx, handle, cp),
        gone=lambda: not ctx.sprite_exists(name),
    )


@subcommand("browse", "the checkpoint browser")
def browse(ctx: CommandContext, args: Namespace) -> Any:
    """The checkpoint browser widget (or, without widgets, a table and how to restore)."""
    handle = ctx.sprite(args.sprite)
    actions = browser_actions(ctx, handle)
    with ctx.operation(handle.name, "browse"):
        if not ctx.widgets:
            print(checkpoint_table_text(handle.list_checkpoints(include_auto=True)))
            return None
        return CheckpointBrowser(handle.name, actions)
