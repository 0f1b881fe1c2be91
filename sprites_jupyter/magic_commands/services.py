"""Service subcommands: services, service create|start|stop|restart|delete|signal, logs.

``logs --follow`` with widgets reads in a background thread, so the notebook
stays usable; the panel's Stop button closes the stream.
"""

from __future__ import annotations

import contextlib
import threading
from argparse import Namespace
from collections.abc import Iterable
from typing import Any

import pandas as pd
from IPython.core.error import UsageError

from ..frames import services_frame
from ..widgets.logs import LogView
from ..widgets.progress import track
from .context import CommandContext
from .errors import explain
from .execution import parse_env

__all__ = ["logs", "service", "services"]


def services(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """The sprite's services and their state as a DataFrame."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "services"):
        return services_frame(handle.list_services())


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


def service(ctx: CommandContext, args: Namespace) -> None:
    """create|start|stop|restart|delete|signal one service."""
    handle = ctx.sprite(args.sprite)
    action, name = args.action, args.name
    with ctx.operation(handle.name, f"service {action}", name):
        if action == "create":
            needs = [n.strip() for n in args.needs.split(",") if n.strip()]
            cmd, *rest = args.command
            events = handle.create_service(name, cmd, rest, needs=needs, http_port=args.port,
                                           env=parse_env(args.env) or None, dir=args.dir,
                                           duration=args.duration)
            _follow_stream(ctx, f"Service {name}", events, name)
        elif action == "start":
            _follow_stream(ctx, f"Start {name}", handle.start_service(name, args.duration), name)
        elif action == "stop":
            _follow_stream(ctx, f"Stop {name}", handle.stop_service(name), name)
        elif action == "restart":
            events = handle.restart_service(name, args.duration)
            _follow_stream(ctx, f"Restart {name}", events, name)
        elif action == "delete":
            handle.delete_service(name)
            print(f"Deleted service {name}")
        else:
            handle.signal_service(name, args.signal)
            print(f"Sent {args.signal} to service {name}")


def _pump(events: Iterable[Any], view: LogView,
          stopped: threading.Event | None = None) -> None:
    for event in events:
        if stopped is not None and stopped.is_set():
            return
        if event.type in ("stdout", "stderr"):
            view.write(event.type, event.data or "")
        elif event.type == "exit":
            view.write("stderr", f"[exited with code {event.exit_code}]\n")


def logs(ctx: CommandContext, args: Namespace) -> None:
    """Show a service's logs; ``--follow`` keeps the panel updating."""
    handle = ctx.sprite(args.sprite)
    follow = args.follow or 0.0
    with ctx.operation(handle.name, "logs", args.name):
        stream = handle.service_logs(args.name, lines=args.lines, follow=follow)
        stopped = threading.Event()

        def stop() -> None:
            stopped.set()
            view.finish("done", "stopped")
            stream.close()  # wakes the follower thread, whose iteration then ends

        view = ctx.log_view(f"{handle.name}: {args.name}", on_stop=stop)
        if follow and ctx.widgets:
            threading.Thread(target=_follow_in_background,
                             args=(ctx, handle.name, args.name, stream, view, stopped),
                             daemon=True).start()
            return
        try:
            _pump(stream, view)
        except KeyboardInterrupt:
            stream.close()
            view.finish("cancelled", "stopped following")
            raise
        except Exception as error:
            view.finish("failed", explain(error))
            raise
        view.finish("done")


def _follow_in_background(ctx: CommandContext, sprite: str, name: str, stream: Any,
                          view: LogView, stopped: threading.Event) -> None:
    with ctx.journal.record(sprite, "logs --follow", name), contextlib.closing(stream):
        try:
            _pump(stream, view, stopped)
        except Exception as error:
            view.finish("failed", explain(error))
            return
        view.finish("done")
