"""Reading an exec request's query string (reference section 3.2) into what to run."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import QueryParams

from ..errors import LocalError
from ..runtime.exec.process import ExecSpec
from ..runtime.sandbox.machine import Sandbox
from ..storage import paths
from ..wire import parse_duration, query_bool
from .errors import ApiError, status_of

NON_TTY_MAX_RUN = 10.0


@dataclass
class ExecRequest:
    """A new process to start: the spec plus what the session reports about it."""

    spec: ExecSpec
    workdir: str
    max_run_after_disconnect: float


def _geometry(params: QueryParams, name: str, default: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"invalid {name} {text!r}: use a whole number") from None
    if not 1 <= value <= 65535:
        raise ApiError(400, f"invalid {name} {value}: use 1 to 65535")
    return value


def _environment(params: QueryParams, sandbox: Sandbox, tty: bool) -> dict[str, str]:
    given = params.getlist("env")
    if given:
        env = {}
        for entry in given:
            key, sep, value = entry.partition("=")
            if not sep or not key:
                raise ApiError(400, f"invalid env entry {entry!r}: use KEY=VALUE")
            env[key] = value
        return env
    env = sandbox.base_env()
    if tty:
        env["TERM"] = "xterm-256color"
    return env


def _refuse_nul(params: QueryParams) -> None:
    """A NUL byte cannot reach a process's argv, environment or working directory."""
    for name in ("cmd", "cmd[]", "path", "env", "dir"):
        if any("\x00" in value for value in params.getlist(name)):
            raise ApiError(400, f"invalid {name.removesuffix('[]')}: it contains a NUL byte, "
                                "which no command line, environment or path can hold")


def parse_exec_query(params: QueryParams, sandbox: Sandbox) -> ExecRequest:
    """Validate the query of a new exec; every mistake is a 400 before anything starts."""
    _refuse_nul(params)
    argv = params.getlist("cmd") or params.getlist("cmd[]")
    if not argv:
        raise ApiError(400, "No command specified: pass cmd=<program> (repeat cmd for each "
                            "argument)")
    tty = query_bool(params.get("tty"), False)
    try:
        workdir = paths.sprite_path(params.get("dir") or paths.SPRITE_HOME)
        sandbox.location(workdir)  # unsandboxed: 403 for a symlink out of the tree
    except LocalError as err:
        raise ApiError(status_of(err), f"invalid dir: {err.message}") from None
    spec = ExecSpec(
        argv=argv,
        executable=params.get("path") or argv[0],
        env=_environment(params, sandbox, tty),
        cwd=workdir,
        tty=tty,
        stdin=query_bool(params.get("stdin"), tty),
        rows=_geometry(params, "rows", 24),
        cols=_geometry(params, "cols", 80),
    )
    max_run = parse_duration(params.get("max_run_after_disconnect"),
                             0.0 if tty else NON_TTY_MAX_RUN, name="max_run_after_disconnect")
    return ExecRequest(spec=spec, workdir=workdir, max_run_after_disconnect=max_run)
