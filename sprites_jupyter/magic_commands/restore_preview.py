"""What a restore would undo, in one paragraph: files, the Python session's variables,
services that stop and restart, exec sessions that end.

The confirmation of ``%sprite restore`` and of the browser's Restore both show it.
Each part is worked out on its own; one that cannot be says so and the rest stand.
"""

from __future__ import annotations

from IPython.core.error import UsageError

from ..client import Sprite, SpritesError
from .context import CommandContext
from .diff import ask_helper, restore_summary
from .python.lifecycle import sessions_of
from .variable_changes import (
    checkpoint_states,
    describe_variable_undo,
    pick_state,
    variables_frame,
)

__all__ = ["describe_restore", "describe_running"]

AGENT_MARK = "python_agent.py"
LISTED = 3


def _variables(ctx: CommandContext, handle: Sprite, checkpoint_id: str) -> str:
    session = sessions_of(ctx).get(handle.name)
    live = session is not None and session.alive
    own = session.session_id if live and session is not None else None
    try:
        held = pick_state(checkpoint_states(handle, checkpoint_id, ask_helper), own)
        now = pick_state(checkpoint_states(handle, None, ask_helper), own) if live else None
    except (UsageError, SpritesError, OSError) as error:
        return f"What it would do to the Python session's variables is unknown: {error}."
    return describe_variable_undo(variables_frame(held, now), checkpoint_id,
                                  held=held is not None, live=live)


def _named(items: list[str]) -> str:
    shown = items[:LISTED]
    more = len(items) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def describe_running(handle: Sprite) -> str:
    """Which services stop and restart and which exec sessions end."""
    parts = []
    try:
        services = [s.name for s in handle.list_services()
                    if s.state is not None and s.state.status == "running"]
        if services:
            parts.append(f"Services that stop and restart: {_named(services)}.")
        sessions = ["the Python session" if AGENT_MARK in s.command else
                    (s.command if len(s.command) <= 40 else s.command[:39] + "…")
                    for s in handle.list_sessions()]
        if sessions:
            parts.append(f"Exec sessions that end: {_named(sessions)}.")
    except (SpritesError, OSError) as error:
        parts.append(f"Which processes it would stop is unknown: {error}.")
    return " ".join(parts)


def describe_restore(ctx: CommandContext, handle: Sprite, checkpoint_id: str) -> str:
    """The paragraph a restore confirmation shows (the session saved first, so the
    variables compared are the current ones)."""
    parts = [restore_summary(handle, checkpoint_id), _variables(ctx, handle, checkpoint_id),
             describe_running(handle)]
    return " ".join(part for part in parts if part)
