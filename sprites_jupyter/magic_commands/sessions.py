"""Exec-session subcommands: ``sessions`` and ``kill``."""

from __future__ import annotations

from argparse import Namespace
from typing import TYPE_CHECKING

from ..frames import sessions_frame
from ..widgets.progress import track
from .context import CommandContext
from .registry import argument, subcommand

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["history", "kill", "sessions"]


@subcommand("sessions", "exec sessions (DataFrame)")
def sessions(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """The sprite's exec sessions as a DataFrame."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "sessions"):
        return sessions_frame(handle.list_sessions())


@subcommand("kill", "stop an exec session: kill ID [--signal SIG]",
            argument("id"),
            argument("--signal", default="SIGTERM",
                     help="signal to send first (default SIGTERM)"))
def kill(ctx: CommandContext, args: Namespace) -> None:
    """Signal an exec session and wait for it to exit (SIGKILL after a grace period)."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "kill", args.id):
        view = ctx.progress(f"Kill session {args.id}")
        for _ in track(handle.kill_session(args.id, signal=args.signal), view):
            pass
        view.succeed(f"session {args.id} ended")


@subcommand("history", "what this kernel did (DataFrame)", sprite=False)
def history(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """This kernel's journal of operations."""
    return ctx.journal.frame()
