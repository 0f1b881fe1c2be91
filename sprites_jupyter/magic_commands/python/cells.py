"""``%%sprite_python`` and ``%sprite python [vars|reset|stop|attach]``.

One agent per (kernel, sprite), started by the first cell. Output streams into
the same log view as ``%%sprite_exec``; values come back as MIME bundles through
IPython's display machinery. A remote exception fails the cell with the remote
frames (``_render_traceback_``, as ipyparallel does); Ctrl-C sends SIGINT to the
sprite. When the agent's process ended, the next cell says so in one line and the
one after starts afresh: a cell never runs silently against an empty interpreter.
With ``SpriteMagics.cells_outlive_kernel`` the agent also keeps each cell's output on
the sprite, and ``%sprite python attach`` in a new kernel first replays a cell it
missed (following it to its end), then takes the session over.
"""

from __future__ import annotations

import contextlib
import time
from argparse import Namespace
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.display import publish_display_data

from ...widgets.logs import LogView
from ..cell_replay import attach_cell, mark_seen, missed_python_cell, python_keep, raise_for_end
from ..context import CommandContext
from ..registry import SPRITE_OPTION, Names, argument, cell_magic, subcommand
from ..undo import checkpoint_before_cell
from .lifecycle import forget, running_agents, session_for, sessions_of
from .remote_error import RemotePythonError
from .session import PythonSession, SessionEnded
from .transfer import pull_value, push_value

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PYTHON_CELL", "RemotePythonError", "pull", "push", "python", "run_cell"]

PYTHON_CELL = cell_magic(
    "%%sprite_python",
    "Run the cell in this kernel's persistent Python session on the sprite: variables "
    "survive between cells, output streams live, the last expression and display() come "
    "back as rich output, an exception fails the cell with the remote traceback.",
    SPRITE_OPTION,
    argument("--timeout", metavar="S", type=float,
             help="interrupt the cell after S seconds (the state stays)"),
    argument("--no-raise", action="store_true",
             help="show a remote exception without failing the cell"),
    argument("--new", action="store_true",
             help="start a fresh interpreter first (the old variables are gone)"),
    argument("--python", metavar="PATH",
             help="the interpreter to start the session on (a venv's or conda's bin/python, "
                  "Python 3.8+; default: SpriteMagics.python, else python3)"),
    argument("--push", metavar="A,B",
             help="send these kernel variables to the session before the cell"),
    argument("--pull", metavar="C,D",
             help="bring these session variables into the kernel after the cell"))

PYTHON_ACTIONS = ("status", "vars", "reset", "stop", "attach")

INTERRUPT_GRACE = 10.0
POLL = 0.1


def _names(option: str | None) -> list[str]:
    return [n.strip() for n in (option or "").split(",") if n.strip()]


def _summary(code: str) -> str:
    first = code.strip().splitlines()[0] if code.strip() else ""
    return first if len(first) <= 60 else first[:59] + "…"


class _Cell:
    """One cell in flight: its log view (made on first output), Ctrl-C and timeout; with
    ``SpriteMagics.cells_outlive_kernel`` its output is kept on the sprite too."""

    def __init__(self, ctx: CommandContext, session: PythonSession, timeout: float | None):
        self.ctx = ctx
        self.session = session
        self.timeout = timeout
        self.view: LogView | None = None
        self.started = time.monotonic()
        self.kept_id: str | None = None
        self.keep: dict[str, Any] = {}

    def _write(self, stream: str, text: str) -> None:
        if self.view is None:
            self.view = self.ctx.log_view(self.session.sprite.name)
        self.view.write(stream, text)

    def run(self, code: str) -> dict[str, Any]:
        if self.ctx.settings.cells_outlive_kernel:
            self.kept_id, keep = python_keep(self.ctx, code)
            self.keep = {"keep": keep}
        with self.session.in_use:
            return self._run(code)

    def _run(self, code: str) -> dict[str, Any]:
        request_id = self.session.request("run", code=code, **self.keep)
        interrupted_at: float | None = None
        timed_out = False
        while True:
            try:
                message = self.session.next_message(request_id, POLL)
            except KeyboardInterrupt:
                if interrupted_at is not None:
                    self._finish("cancelled", "stopped by Ctrl-C")
                    raise
                self.session.interrupt()
                interrupted_at = time.monotonic()
                continue
            now = time.monotonic()
            if message is None:
                if self.timeout and not timed_out and now - self.started > self.timeout:
                    timed_out = True
                    self.session.interrupt()
                    interrupted_at = now
                elif interrupted_at is not None and now - interrupted_at > INTERRUPT_GRACE:
                    self._finish("cancelled", "the sprite's Python did not stop in time")
                    raise KeyboardInterrupt
                continue
            kind = message.get("type")
            if kind == "stream":
                self._write(str(message.get("name")), str(message.get("text", "")))
            elif kind == "display":
                publish_display_data(message.get("data") or {}, message.get("metadata") or {})
            elif kind == "done" and message.get("id") == request_id:
                if self.kept_id:
                    mark_seen(self.session.sprite, self.kept_id)
                return self._outcome(message, interrupted_at is not None, timed_out)

    def _outcome(self, done: dict[str, Any], interrupted: bool, timed_out: bool
                 ) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        if done.get("status") == "ok":
            self._finish("done", f"ok in {seconds:.1f} s")
            return done
        ename = str(done.get("ename"))
        if ename == "KeyboardInterrupt" and timed_out:
            self._finish("failed", f"timed out after {self.timeout:g} s")
            raise UsageError(f"Cell timed out after {self.timeout:g} s on sprite "
                             f"{self.session.sprite.name}: interrupted; the session and its "
                             "variables remain")
        if ename == "KeyboardInterrupt" and interrupted:
            self._finish("cancelled", "stopped by Ctrl-C")
            raise KeyboardInterrupt
        self._finish("failed", ename)
        raise RemotePythonError(self.session.sprite.name, ename, str(done.get("evalue", "")),
                                list(done.get("traceback") or []))

    def _finish(self, state: str, message: str) -> None:
        if self.view is not None:
            self.view.finish(state, message)


def run_cell(ctx: CommandContext, code: str, opts: Namespace) -> None:
    """Run ``code`` in the sprite's Python session (``--push``/``--pull`` around it)."""
    name = ctx.target(opts.sprite)
    with ctx.operation(name, "python", _summary(code)) as journaled:
        checkpoint_before_cell(ctx, name, code)
        session = session_for(ctx, name, fresh=opts.new, python=opts.python)
        if opts.python and session.python != opts.python:
            raise UsageError(f"The Python session on sprite {name} runs {session.python}: "
                             f"add --new to start one on {opts.python}")
        try:
            for variable in _names(opts.push):
                push_value(ctx, session, variable, variable)
            try:
                _Cell(ctx, session, opts.timeout).run(code)
            except RemotePythonError as error:
                if not opts.no_raise:
                    raise
                print("\n".join(error._render_traceback_()))
                journaled.set(f"failed: {error}")
                return
            for variable in _names(opts.pull):
                pull_value(ctx, session, variable, variable)
        except SessionEnded:
            raise forget(ctx, session) from None


def _pairs(args: Namespace) -> list[tuple[str, str]]:
    if args.rename and len(args.names) != 1:
        raise UsageError("--as renames one variable: give one NAME with it")
    return [(name, args.rename or name) for name in args.names]


# -- %sprite python [status|vars|reset|stop|attach] ----------------------------------


@subcommand("python",
            "the sprite's Python session: python [status|vars|reset|stop|attach [ID]]",
            argument("action", nargs="?", default="status", choices=PYTHON_ACTIONS),
            argument("id", nargs="?", help="attach: the session id (default: the newest)"))
def python(ctx: CommandContext, args: Namespace) -> Any:
    """Dispatch ``%sprite python ACTION``."""
    name = ctx.target(args.sprite)
    with ctx.operation(name, f"python {args.action}", args.id or ""):
        return _ACTIONS[args.action](ctx, name, args)


def _status(ctx: CommandContext, name: str, args: Namespace) -> pd.Series:
    import pandas as pd
    session = sessions_of(ctx).get(name)
    if session is None:
        raise UsageError(f"No Python session on sprite {name} in this kernel: a "
                         "%%sprite_python cell starts one (%sprite python attach finds one "
                         "left by an earlier kernel)")
    if not session.alive:
        session = session_for(ctx, name)  # resumes what a restored checkpoint holds
    facts: dict[str, Any] = {"sprite": name, "session": session.session_id,
                             "pid": session.info.get("pid"),
                             "started": pd.Timestamp(session.started_at),
                             "python": session.info.get("python"),
                             "interpreter": session.info.get("executable") or session.python,
                             "memory": None,
                             "alive": False}
    with contextlib.suppress(SessionEnded):
        value = session.call("status", timeout=30).get("value") or {}
        facts.update(memory=value.get("memory"), alive=True)
    return pd.Series(facts, name="python session")


def _vars(ctx: CommandContext, name: str, args: Namespace) -> pd.DataFrame:
    import pandas as pd
    session = session_for(ctx, name)
    try:
        rows = session.call("vars", timeout=60).get("value") or []
    except SessionEnded:
        raise forget(ctx, session) from None
    frame = pd.DataFrame(rows, columns=["name", "type", "size", "info"])
    return frame.set_index("name")


def _reset(ctx: CommandContext, name: str, args: Namespace) -> None:
    session = session_for(ctx, name, fresh=True)
    print(f"Started a fresh Python session on sprite {name} (pid {session.info.get('pid')})")


def _stop(ctx: CommandContext, name: str, args: Namespace) -> None:
    session = sessions_of(ctx).pop(name, None)
    if session is None:
        print(f"No Python session on sprite {name} in this kernel: nothing to stop")
        return
    if not session.alive:
        print(f"No Python session was running on sprite {name}: its process had already "
              "ended, so there was nothing to stop")
        return
    session.stop()
    print(f"Stopped the Python session on sprite {name}")


def _attach(ctx: CommandContext, name: str, args: Namespace) -> None:
    sprite = ctx.sprite(name)
    current = sessions_of(ctx).get(name)
    if current is not None and current.alive:
        raise UsageError(f"This kernel is already attached to the Python session on sprite "
                         f"{name} (session {current.session_id})")
    candidates = running_agents(sprite)
    if args.id:
        candidates = [sid for sid in candidates if sid == args.id]
    if not candidates:
        which = f"Python session {args.id} running" if args.id else "running Python session"
        raise UsageError(f"Sprite {name} has no {which} to attach to: a "
                         "%%sprite_python cell starts a new one")
    newest = candidates[0]
    missed = missed_python_cell(sprite, newest)
    end = attach_cell(ctx, sprite, missed, None) if missed else None
    if end is not None and end.exit_code is None:
        print(f"Detached from cell {missed}, which still runs in the Python session on "
              f"sprite {name}: %sprite python attach again to follow it")
        return
    session = PythonSession.attach(sprite, newest)
    sessions_of(ctx)[name] = session
    print(f"Attached to the Python session on sprite {name} (session {newest}, "
          f"pid {session.info.get('pid')})")
    if end is not None and missed is not None:
        raise_for_end(name, missed, end)


_ACTIONS = dict(zip(PYTHON_ACTIONS, (_status, _vars, _reset, _stop, _attach), strict=True))


@subcommand("push", "kernel variables into the Python session: push NAME … [--as REMOTE]",
            argument("names", nargs="+", metavar="NAME", complete=Names.KERNEL_VARIABLES),
            argument("--as", dest="rename", metavar="NAME", help="the name on the other side"))
def push(ctx: CommandContext, args: Namespace) -> None:
    """``%sprite push NAME … [--as REMOTE]``: kernel variables into the sprite's session."""
    pairs = _pairs(args)
    session = session_for(ctx, ctx.target(args.sprite))
    try:
        for local, remote in pairs:
            push_value(ctx, session, local, remote)
    except SessionEnded:
        raise forget(ctx, session) from None


@subcommand("pull", "Python session variables into the kernel: pull NAME … [--as LOCAL]",
            argument("names", nargs="+", metavar="NAME"),
            argument("--as", dest="rename", metavar="NAME", help="the name on the other side"))
def pull(ctx: CommandContext, args: Namespace) -> None:
    """``%sprite pull NAME … [--as LOCAL]``: session variables into this kernel."""
    pairs = _pairs(args)
    session = session_for(ctx, ctx.target(args.sprite))
    try:
        for remote, local in pairs:
            pull_value(ctx, session, remote, local)
    except SessionEnded:
        raise forget(ctx, session) from None
