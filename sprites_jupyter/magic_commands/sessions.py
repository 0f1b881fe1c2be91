"""Exec-session subcommands: ``sessions``, ``attach`` and ``kill``."""

from __future__ import annotations

import threading
from argparse import Namespace
from collections.abc import Callable
from typing import TYPE_CHECKING

from IPython.core.error import UsageError

from ..client import Command
from ..frames import sessions_frame
from ..widgets.progress import track
from .cell_replay import attach_cell, newest_cell, raise_for_end
from .context import CommandContext
from .kept_output import CellEnd, follow_to_end
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


@subcommand("attach", "an exec session's or kept cell's output, whole or recent, then live: "
                      "attach [ID] [--timeout S]",
            argument("id", nargs="?", complete=Names.SESSIONS,
                     help="a session id (%%sprite sessions) or a kept cell's id (%%sprite "
                          "running); default: the newest kept cell"),
            argument("--timeout", type=float, metavar="S",
                     help="detach after S seconds (the session keeps running)"))
def attach(ctx: CommandContext, args: Namespace) -> None:
    """Show a session's recent output (a kept cell's whole output), then its live output
    until it exits. Ctrl-C, the Stop button or ``--timeout`` detach: it keeps running."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "attach", args.id or "") as journaled:
        cell_id = None
        if args.id is not None and args.id.isdigit():
            command = handle.attach(args.id)
            end = CellEnd(_follow(ctx, f"{handle.name}: session {args.id}", command,
                                  command.detach, args.timeout))
        else:
            cell_id = args.id or newest_cell(handle)
            end = attach_cell(ctx, handle, cell_id, args.timeout)
        if end.exit_code is None:
            journaled.set("ok: detached")
            return
        journaled.set(f"ok: exit code {end.exit_code}")
    if cell_id is not None:
        raise_for_end(handle.name, cell_id, end)
    elif end.exit_code != 0:
        raise UsageError(f"Session {args.id} on sprite {handle.name} exited with code "
                         f"{end.exit_code}")


def _follow(ctx: CommandContext, title: str, command: Command, detach: Callable[[], None],
            timeout: float | None) -> int | None:
    """Stream ``command`` into a log view; its exit code, ``None`` once detached."""
    detached = threading.Event()

    def stop() -> None:
        detached.set()
        detach()

    view = ctx.log_view(title)
    view.stop_with(stop)
    try:
        code = follow_to_end(command, timeout, lambda chunk: view.write(chunk.stream,
                                                                        chunk.data),
                             stop, detached)
    except KeyboardInterrupt:
        view.finish("stopped", "detached by Ctrl-C; it keeps running")
        raise
    if code is None:
        view.finish("stopped", "detached; it keeps running")
        return None
    view.finish("done" if code == 0 else "failed", f"exit code {code}")
    return code


@subcommand("history", "what this kernel, and earlier ones on the current sprite, did "
                       "(DataFrame)", sprite=False)
def history(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """This kernel's journal of operations, after what earlier kernels of this notebook
    did on the current sprite (``SpriteMagics.journal_location`` says where that is kept)."""
    return ctx.journal.frame(ctx.settings.sprite)
