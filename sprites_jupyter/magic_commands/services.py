"""Service subcommands: services, service create|start|stop|restart|delete|signal, logs.

``logs --follow`` with widgets reads in a background thread, so the notebook
stays usable; the panel's Stop button closes the stream, and the panel ends saying how
the service ended (:mod:`.log_follow`). Create, start and restart return once the
service has run for ``SETTLE_SECONDS`` (or has failed) unless ``--duration`` says longer.
"""

from __future__ import annotations

import threading
from argparse import Namespace
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..client import Conflict, Sprite
from ..frames import services_frame
from ..journal import Outcome
from ..widgets.progress import track
from .context import CommandContext
from .errors import explain
from .execution import parse_env
from .log_follow import LogFollower
from .registry import Argument, Dashes, Names, action, argument, subcommand

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["logs", "service", "services"]

# Service statuses in which a stop has something to stop.
_LIVE = ("starting", "running", "stopping")

# How long service create/start/restart watch a service after it started by default:
# long enough to see a command that dies at once fail, short enough not to wait.
SETTLE_SECONDS = 1.0


def _duration() -> Argument:
    return argument("--duration", type=float, metavar="S",
                    help=f"seconds of output to show after starting (default "
                         f"{SETTLE_SECONDS:g}: return once it runs, or has failed)")


def _service_name() -> Argument:
    return argument("name", complete=Names.SERVICES)


@subcommand("services", "list services (DataFrame)")
def services(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """The sprite's services and their state as a DataFrame (with the sprite URL on the
    service it routes to)."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "services"):
        listed = handle.list_services()
        url = handle.info().url if any(s.http_port for s in listed) else ""
        return services_frame(listed, url)


def _follow_stream(ctx: CommandContext, title: str, events: Iterable[Any], name: str) -> None:
    """Show a service stream's stages; fail when the service exits non-zero."""
    view = ctx.progress(title)
    exit_code = None
    for event in track(events, view):
        if event.type == "exit":
            exit_code = event.exit_code
    if exit_code:
        view.fail(f"exited with code {exit_code}")
        raise UsageError(f"Service {name} exited with code {exit_code}: "
                         f"see %sprite logs {name}")
    view.succeed("done")


def _stop(ctx: CommandContext, handle: Sprite, name: str, journaled: Outcome) -> None:
    """Stop the service; one line, not a failure, when it is not running anyway."""
    try:
        events = handle.stop_service(name)
    except Conflict:
        state = handle.get_service(name).state
        status = state.status if state is not None else ""
        if status in _LIVE:
            raise
        why = f"{status}: {state.error}" if state is not None and state.error else status
        print(f"Service {name} is not running ({why or 'no state'}); nothing to stop")
        journaled.set("ok: was not running")
        return
    _follow_stream(ctx, f"Stop {name}", events, name)


@subcommand(
    "service", "create|start|stop|restart|delete|signal a service",
    actions=(
        action("create", "define and start: create NAME [options] -- CMD ARGS…",
               argument("name"),
               argument("--port", type=int, help="HTTP port the sprite URL routes to"),
               argument("--needs", default="", help="services to start first (a,b)"),
               argument("--env", metavar="K=V", action="append", default=[]),
               argument("--dir", metavar="D"),
               _duration(),
               dashes=Dashes("command", missing="give the command after --, e.g. service "
                                                "create web --port 8000 -- python3 -m "
                                                "http.server")),
        action("start", "start NAME [--duration S]", _service_name(), _duration()),
        action("restart", "restart NAME [--duration S]", _service_name(), _duration()),
        action("stop", "stop NAME (a stopped service is left as it is)", _service_name()),
        action("delete", "delete NAME", _service_name()),
        action("signal", "signal NAME SIG", _service_name(), argument("signal")),
    ),
    actions_required=True)
def service(ctx: CommandContext, args: Namespace) -> None:
    """create|start|stop|restart|delete|signal one service."""
    handle = ctx.sprite(args.sprite)
    action, name = args.action, args.name
    window = SETTLE_SECONDS if getattr(args, "duration", None) is None else args.duration
    with ctx.operation(handle.name, f"service {action}", name) as journaled:
        if action == "create":
            needs = [n.strip() for n in args.needs.split(",") if n.strip()]
            cmd, *rest = args.command
            events = handle.create_service(name, cmd, rest, needs=needs, http_port=args.port,
                                           env=parse_env(args.env) or None, dir=args.dir,
                                           duration=window)
            _follow_stream(ctx, f"Service {name}", events, name)
        elif action == "start":
            _follow_stream(ctx, f"Start {name}", handle.start_service(name, window), name)
        elif action == "stop":
            _stop(ctx, handle, name, journaled)
        elif action == "restart":
            events = handle.restart_service(name, window)
            _follow_stream(ctx, f"Restart {name}", events, name)
        elif action == "delete":
            handle.delete_service(name)
            print(f"Deleted service {name}")
        else:
            handle.signal_service(name, args.signal)
            print(f"Sent {args.signal} to service {name}")


@subcommand("logs", "a service's logs: logs NAME [--follow [S]] [--lines N]",
            argument("name", complete=Names.SERVICES),
            argument("--follow", nargs="?", type=float, const=float("inf"), metavar="S",
                     help="keep following (for S seconds, or until stopped)"),
            argument("--lines", type=int, metavar="N", help="only the last N lines"))
def logs(ctx: CommandContext, args: Namespace) -> None:
    """Show a service's logs; ``--follow`` keeps the view updating until the service ends.

    With widgets the panel follows in the background (the notebook stays usable);
    in a terminal it follows in the foreground, and Ctrl-C ends it with one line.
    """
    handle = ctx.sprite(args.sprite)
    follow = args.follow or 0.0
    with ctx.operation(handle.name, "logs", args.name) as journaled:
        stream = handle.service_logs(args.name, lines=args.lines, follow=follow,
                                     raise_on_error=False)
        view = ctx.log_view(f"{handle.name}: {args.name}", announce=bool(follow),
                            on_stop=lambda: follower.end("done", "stopped following"))
        follower = LogFollower(handle, args.name, stream, view, follow=bool(follow))
        if follow and ctx.widgets:
            threading.Thread(target=_follow_in_background, args=(ctx, handle.name, follower),
                             daemon=True).start()
            return
        try:
            follower.run()
        except KeyboardInterrupt:
            follower.end("cancelled", "stopped following (Ctrl-C)")
        except Exception as error:
            follower.end("failed", explain(error))
            raise
        if follower.ending is not None and follower.ending[1]:
            journaled.set(f"ok: {follower.ending[1]}")


def _follow_in_background(ctx: CommandContext, sprite: str, follower: LogFollower) -> None:
    with ctx.journal.record(sprite, "logs --follow", follower.name) as journaled:
        try:
            follower.run()
        except Exception as error:
            follower.end("failed", explain(error))
        if follower.ending is not None:
            journaled.set(f"{follower.ending[0]}: {follower.ending[1]}")
