"""``%%sprite_exec`` and ``%sprite exec``: run code on one or several sprites, live.

Output streams into a log view as it arrives. One sprite runs in the calling
thread, so Ctrl-C reaches the client, which signals the remote process; several
sprites run in parallel threads, and Ctrl-C kills each remote command.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from argparse import Namespace
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..client import ExecResult, Sprite
from ..frames import exit_codes_frame
from ..widgets.logs import LogView
from ..widgets.progress import track
from .cell_command import cell_command
from .cell_replay import outliving_argv
from .checkpoints import restored, take_checkpoint
from .context import CommandContext
from .errors import explain
from .registry import Names, argument, cell_magic, subcommand
from .undo import checkpoint_before_cell

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXEC_CELL", "Outcome", "exec_line", "parse_env", "run_code"]

_EXEC_OPTIONS = (
    argument("-s", "--sprite", metavar="NAME[,NAME…]", complete=Names.SPRITES,
             help="run on these sprites (in parallel) instead of the current one"),
    argument("--shell", choices=("bash", "sh", "python3"), default="bash",
             help="interpreter for the code (default: bash)"),
    argument("--dir", metavar="D", help="working directory on the sprite"),
    argument("--env", metavar="K=V", action="append", default=[],
             help="environment variable (repeatable)"),
    argument("--timeout", metavar="S", type=float, help="stop the command after S seconds"),
    argument("-o", "--out", metavar="VAR",
             help="store the result (stdout, stderr, exit_code, duration) in VAR"),
    argument("--no-raise", action="store_true",
             help="do not fail the cell on a non-zero exit code"),
    argument("--checkpoint-before", metavar="COMMENT",
             help="take a checkpoint with this comment first"),
    argument("--rollback-on-error", action="store_true",
             help="restore that checkpoint if the command fails"),
)

EXEC_CELL = cell_magic(
    "%%sprite_exec",
    "Run the cell on the sprite, streaming stdout and stderr as they arrive. A non-zero "
    "exit fails the cell unless --no-raise.",
    *_EXEC_OPTIONS)


@dataclass
class Outcome:
    """How the command went on one sprite (a row of the multi-sprite DataFrame)."""

    sprite: str
    exit_code: int | None = None
    duration: float | None = None
    error: str = ""
    result: ExecResult | None = None


def parse_env(pairs: list[str]) -> dict[str, str]:
    """``--env K=V`` options as a mapping."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--env expects K=V, got '{pair}'")
        env[key] = value
    return env


def _summary(code: str) -> str:
    first = code.strip().splitlines()[0] if code.strip() else ""
    return first if len(first) <= 60 else first[:59] + "…"


class _Running:
    """The remote commands in flight, so Ctrl-C or a timeout can stop them."""

    def __init__(self) -> None:
        self.commands: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.cancelled = threading.Event()

    def cancel_all(self) -> None:
        """Kill every command still running (best effort: one may just have exited)."""
        self.cancelled.set()
        with self.lock:
            commands = list(self.commands.values())
        for command in commands:
            with contextlib.suppress(Exception):
                command.kill()


def _run(handle: Sprite, argv: list[str], script: bytes | None, env: dict[str, str],
         opts: Namespace, view: LogView, running: _Running, keep: bool,
         outlives: bool = False) -> Outcome:
    """Run one command to its end (``script`` on its stdin), streaming into ``view``; an
    ``outlives`` command keeps running on the sprite if this kernel goes."""
    started = time.monotonic()
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    tail: deque[bytes] = deque(maxlen=16)
    timed_out = threading.Event()
    with handle.command(*argv, env=env or None, dir=opts.dir, stdin=script is not None,
                        max_run_after_disconnect=0 if outlives else None) as command:
        if script is not None:
            command.feed(script)
        with running.lock:
            running.commands[handle.name] = command
        if running.cancelled.is_set():  # Ctrl-C came while this one was still opening
            command.kill()
        view.stop_with(command.kill)
        timer = None
        if opts.timeout:
            def time_out() -> None:
                timed_out.set()
                command.kill()

            timer = threading.Timer(opts.timeout, time_out)
            timer.daemon = True
            timer.start()
        try:
            for chunk in command:
                view.write(chunk.stream, chunk.data)
                if keep:
                    chunks[chunk.stream].append(chunk.data)
                elif chunk.stream == "stderr":
                    tail.append(chunk.data)
            code = command.wait()
        except KeyboardInterrupt:
            view.finish("cancelled", "stopped by Ctrl-C")
            raise
        finally:
            if timer is not None:
                timer.cancel()
            with running.lock:
                running.commands.pop(handle.name, None)
    duration = time.monotonic() - started
    stderr = b"".join(chunks["stderr"] if keep else tail).decode(errors="replace")
    result = ExecResult(stdout=b"".join(chunks["stdout"]).decode(errors="replace"),
                        stderr=stderr, exit_code=code, duration=duration)
    outcome = Outcome(handle.name, code, duration, result=result)
    if running.cancelled.is_set():
        outcome.error = "cancelled"
        view.finish("cancelled", "stopped by Ctrl-C")
        return outcome
    if timed_out.is_set():
        outcome.error = f"timed out after {opts.timeout:g} s (stopped)"
    elif code != 0:
        lines = stderr.strip().splitlines()
        outcome.error = f"exit code {code}" + (f": {lines[-1]}" if lines else "")
    view.finish("failed" if outcome.error else "done",
                outcome.error or f"exit code 0 in {duration:.1f} s")
    return outcome


def _rollback(ctx: CommandContext, handle: Sprite, checkpoint_id: str) -> None:
    view = ctx.progress(f"Roll back {handle.name}")
    for _ in track(handle.restore_checkpoint(checkpoint_id), view):
        pass
    restored(ctx, handle.name)
    view.succeed(f"rolled back to {checkpoint_id}")


def _run_one(ctx: CommandContext, name: str, code: str, opts: Namespace, running: _Running,
             *, prefix: str = "", raise_on_failure: bool = True, cell: bool = False) -> Outcome:
    """Checkpoint (if asked, or per cell), run, roll back on failure (if asked); journal
    it all."""
    handle = ctx.sprite(name)
    argv, script = cell_command(opts.shell, code)
    outlives = cell and ctx.settings.cells_outlive_kernel
    if outlives:
        argv = outliving_argv(ctx, handle, argv, code)
    env = parse_env(opts.env)
    with ctx.operation(name, "exec", _summary(code)) as journaled:
        if cell:
            checkpoint_before_cell(ctx, name, code)
        before = opts.checkpoint_before
        if opts.rollback_on_error and before is None:
            before = "before %%sprite_exec"
        checkpoint_id = None
        if before is not None:
            with ctx.journal.record(name, "checkpoint", before) as taken:
                checkpoint_id = take_checkpoint(ctx, handle, before,
                                                ctx.progress(f"Checkpoint {name}")).id
                taken.set(f"ok: {checkpoint_id}")
        outcome = _run(handle, argv, script, env, opts, ctx.log_view(name, prefix=prefix), running,
                       keep=bool(opts.out), outlives=outlives)
        if running.cancelled.is_set():
            raise KeyboardInterrupt  # Ctrl-C reached the main thread: journal it as cancelled
        if outcome.error and opts.rollback_on_error and checkpoint_id:
            with ctx.journal.record(name, "restore", checkpoint_id) as restored:
                _rollback(ctx, handle, checkpoint_id)
                restored.set("ok: rolled back after the command failed")
            outcome.error += f"; rolled back to {checkpoint_id}"
        if outcome.error and raise_on_failure and not opts.no_raise:
            raise UsageError(f"Command failed on sprite {name}: {outcome.error}")
        if outcome.error:
            journaled.set(f"failed: {outcome.error}")
    return outcome


def run_code(ctx: CommandContext, code: str, opts: Namespace, *,
             cell: bool = False) -> pd.DataFrame | None:
    """Run ``code`` as ``opts`` say; a DataFrame of exit codes when several sprites ran.
    A ``cell`` (not a ``%sprite exec`` line) gets its per-cell checkpoint."""
    names = [n.strip() for n in (opts.sprite or "").split(",") if n.strip()]
    names = names or [ctx.target()]
    parse_env(opts.env)
    running = _Running()
    if len(names) == 1:
        outcome = _run_one(ctx, names[0], code, opts, running, cell=cell)
        if opts.out:
            ctx.shell.user_ns[opts.out] = outcome.result
        return None
    outcomes = {name: Outcome(name) for name in names}

    def work(name: str) -> None:
        try:
            outcomes[name] = _run_one(ctx, name, code, opts, running, prefix=f"[{name}] ",
                                      raise_on_failure=False, cell=cell)
        except KeyboardInterrupt:
            outcomes[name].error = "cancelled"
        except Exception as error:
            outcomes[name].error = explain(error)

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in names]
    for thread in threads:
        thread.start()
    try:
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(0.1)
    except KeyboardInterrupt:
        running.cancel_all()
        raise
    if opts.out:
        ctx.shell.user_ns[opts.out] = {n: o.result for n, o in outcomes.items()}
    frame = exit_codes_frame(outcomes.values())
    failed = [o for o in outcomes.values() if o.error]
    if failed and not opts.no_raise:
        ctx.show(frame)
        names_failed = ", ".join(f"{o.sprite} ({o.error})" for o in failed)
        raise UsageError(f"Command failed on {len(failed)} of {len(names)} sprites: "
                         f"{names_failed}")
    return frame


@subcommand("exec", "run one command line: exec [options] CMD …",
            *_EXEC_OPTIONS,
            argument("command", nargs=argparse.REMAINDER, help="the command line"),
            sprite=False, raw_rest="command")
def exec_line(ctx: CommandContext, args: Namespace) -> pd.DataFrame | None:
    """``%sprite exec CMD …``: the rest of the line, as typed, is the code."""
    if not args.command:
        raise UsageError("%sprite exec: give a command, e.g. %sprite exec ls -l")
    return run_code(ctx, args.command, args)
