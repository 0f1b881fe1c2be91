"""Exec-session subcommands: ``sessions``, ``attach`` and ``kill``."""

from __future__ import annotations

import threading
from argparse import Namespace
from typing import TYPE_CHECKING

from IPython.core.error import UsageError

from ..client import SpritesError
from ..frames import sessions_frame
from ..widgets.progress import track
from .context import CommandContext
from .registry import Names, argument, subcommand

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["attach", "history", "kill", "sessions"]


@subcommand("sessions", "exec sessions (DataFrame)")
def sessions(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """The sprite's exec sessions as a DataFrame."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "sessions"):
        return sessions_frame(handle.list_sessions())


@subcommand("kill", "stop an exec session: kill ID [--signal SIG]",
            argument("id", complete=Names.SESSIONS),
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


@subcommand("attach", "an exec session's output, recent and live: attach ID [--timeout S]",
            argument("id", complete=Names.SESSIONS,
                     help="the session id (%%sprite sessions lists them)"),
            argument("--timeout", type=float, metavar="S",
                     help="detach after S seconds (the session keeps running)"))
def attach(ctx: CommandContext, args: Namespace) -> None:
    """Show a session's recent output, then its live output until it exits. Ctrl-C, the
    Stop button or ``--timeout`` detach: the session keeps running."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "attach", args.id) as journaled:
        command = handle.attach(args.id)
        detached = threading.Event()

        def detach() -> None:
            detached.set()
            command.detach()

        view = ctx.log_view(f"{handle.name}: session {args.id}")
        view.stop_with(detach)
        try:
            for chunk in command.follow(args.timeout):
                view.write(chunk.stream, chunk.data)
        except KeyboardInterrupt:
            view.finish("stopped", "detached by Ctrl-C; the session keeps running")
            raise
        except SpritesError:
            if not detached.is_set():
                raise
        if command.exit_code is None:
            view.finish("stopped", "detached; the session keeps running")
            journaled.set("ok: detached")
            return
        code = command.exit_code
        view.finish("done" if code == 0 else "failed", f"exit code {code}")
        journaled.set(f"ok: exit code {code}")
    if code != 0:
        raise UsageError(f"Session {args.id} on sprite {handle.name} exited with code {code}")


@subcommand("history", "what this kernel did (DataFrame)", sprite=False)
def history(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """This kernel's journal of operations."""
    return ctx.journal.frame()
