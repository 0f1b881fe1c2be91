"""Port forwards: ``%sprite forward PORT [--local L]``, ``forward stop PORT|--all``, ``forwards``.

The kernel's forwards live in :class:`~.port_forwards.Forwards`.
"""

from __future__ import annotations

from argparse import Namespace
from typing import TYPE_CHECKING

from IPython.core.error import UsageError

from ..client import PortForward, Sprite
from ..frames import forwards_frame
from .registry import argument, subcommand

if TYPE_CHECKING:
    import pandas as pd

    from .context import CommandContext

__all__ = ["forward", "forwards", "start_forward"]


def _port(word: str, what: str) -> int:
    if not word.isdigit() or not 1 <= int(word) <= 65535:
        raise UsageError(f"%sprite forward: {what} must be a port number from 1 to 65535, "
                         f"not {word!r}")
    return int(word)


def start_forward(ctx: CommandContext, handle: Sprite, port: int,
                  local_port: int = 0) -> PortForward:
    """Start a forward, or say in one line why the local port cannot be used."""
    try:
        return ctx.forwards.start(handle, port, local_port)
    except OSError as error:
        raise UsageError(f"Cannot listen on localhost:{local_port} ({error.strerror}): pick "
                         "another --local port, or leave --local out for a free one") from None


@subcommand(
    "forward", "forward a local port to the sprite: forward PORT [--local L] | stop PORT|--all",
    argument("port", metavar="PORT|stop", help="the sprite's port, or stop"),
    argument("stop_port", nargs="?", metavar="PORT", help="with stop: the port to stop"),
    argument("--local", type=int, metavar="L", help="local port (default: a free one)"),
    argument("--all", action="store_true", help="with stop: stop every forward"))
def forward(ctx: CommandContext, args: Namespace) -> int | None:
    """Forward a local port to a port in the sprite (or reuse the forward already there);
    returns the local port. ``stop`` stops forwards."""
    if args.port == "stop":
        _stop(ctx, args)
        return None
    if args.stop_port is not None or args.all:
        raise UsageError("%sprite forward: give one port to forward (forward PORT [--local L]),"
                         " or stop forwards with forward stop PORT|--all")
    port = _port(args.port, "PORT")
    if args.local is not None and not 0 <= args.local <= 65535:
        raise UsageError(f"%sprite forward: --local must be from 1 to 65535 (0: a free one), "
                         f"not {args.local}")
    handle = ctx.sprite(args.sprite)
    running = ctx.forwards.find(handle.name, port)
    if running is not None and args.local in (None, 0, running.local_port):
        print(f"Already forwarding localhost:{running.local_port} to port {port} in "
              f"{handle.name} (stop it with %sprite forward stop {port})")
        return running.local_port
    with ctx.operation(handle.name, "forward", str(port)):
        handle.info()  # a missing sprite fails here, not on every connection
        started = start_forward(ctx, handle, port, args.local or 0)
    print(f"Forwarding localhost:{started.local_port} to port {port} in {handle.name} "
          f"(stop it with %sprite forward stop {port})")
    return started.local_port


def _stop(ctx: CommandContext, args: Namespace) -> None:
    if args.all:
        ending = list(ctx.forwards)
        ctx.forwards.close()
        print(f"Stopped {len(ending)} forward{'s' if len(ending) != 1 else ''}")
        return
    if args.stop_port is None:
        raise UsageError("%sprite forward stop: give the sprite's PORT, or --all")
    port = _port(args.stop_port, "PORT")
    sprite = args.sprite or ctx.settings.sprite
    match = ctx.forwards.find(sprite, port) or next(
        (f for f in ctx.forwards if f.local_port == port), None)
    if match is None:
        raise UsageError(f"No forward of port {port}{f' in {sprite}' if sprite else ''}: "
                         "%sprite forwards lists them")
    with ctx.operation(match.sprite.name, "forward stop", str(match.port)):
        ctx.forwards.stop(match)
    print(f"Stopped forwarding localhost:{match.local_port} to port {match.port} in "
          f"{match.sprite.name}")


@subcommand("forwards", "this kernel's port forwards (DataFrame)", sprite=False)
def forwards(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """This kernel's forwards as a DataFrame."""
    return forwards_frame(ctx.forwards)
