"""Reading an exec request's query string (reference section 3.2) into what to run."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import QueryParams

from ..errors import ApiError
from ..runtime.exec_process import ExecSpec
from ..storage import paths
from ..wire import parse_duration, query_bool

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


def _environment(params: QueryParams, home: Path, tty: bool) -> dict[str, str]:
    given = params.getlist("env")
    if given:
        env = {}
        for entry in given:
            key, sep, value = entry.partition("=")
            if not sep or not key:
                raise ApiError(400, f"invalid env entry {entry!r}: use KEY=VALUE")
            env[key] = value
        return env
    user = getpass.getuser()
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "USER": user,
           "LOGNAME": user, "LANG": os.environ.get("LANG", "C.UTF-8")}
    if tty:
        env["TERM"] = "xterm-256color"
    return env


def _executable(path: str, root: Path) -> str:
    """A sprite path such as ``/home/sprite/run.sh`` runs from the sprite's tree."""
    if path.startswith("/") and not os.path.exists(path):
        _, mapped = paths.resolve(root, path)
        if mapped.exists():
            return str(mapped)
    return path


def _refuse_nul(params: QueryParams) -> None:
    """A NUL byte cannot reach a process's argv, environment or working directory."""
    for name in ("cmd", "cmd[]", "path", "env", "dir"):
        if any("\x00" in value for value in params.getlist(name)):
            raise ApiError(400, f"invalid {name.removesuffix('[]')}: it contains a NUL byte, "
                                "which no command line, environment or path can hold")


def parse_exec_query(params: QueryParams, root: Path) -> ExecRequest:
    """Validate the query of a new exec; every mistake is a 400 before anything starts."""
    _refuse_nul(params)
    argv = params.getlist("cmd") or params.getlist("cmd[]")
    if not argv:
        raise ApiError(400, "No command specified: pass cmd=<program> (repeat cmd for each "
                            "argument)")
    tty = query_bool(params.get("tty"), False)
    try:
        workdir, cwd = paths.resolve(root, params.get("dir") or paths.SPRITE_HOME)
    except ApiError as err:
        raise ApiError(err.status, f"invalid dir: {err.message}") from None
    if not cwd.is_dir():
        raise ApiError(400, f"working directory {workdir!r} does not exist in the sprite: "
                            "create it first or pass another dir")
    _, home = paths.resolve(root, paths.SPRITE_HOME)
    spec = ExecSpec(
        argv=argv,
        executable=_executable(params.get("path") or argv[0], root),
        env=_environment(params, home, tty),
        cwd=cwd,
        tty=tty,
        stdin=query_bool(params.get("stdin"), tty),
        rows=_geometry(params, "rows", 24),
        cols=_geometry(params, "cols", 80),
    )
    max_run = parse_duration(params.get("max_run_after_disconnect"),
                             0.0 if tty else NON_TTY_MAX_RUN, name="max_run_after_disconnect")
    return ExecRequest(spec=spec, workdir=workdir, max_run_after_disconnect=max_run)
