"""What both forms of exec (WebSocket and HTTP) send and receive: the query string as
sprites-go builds it, the signal names, and the stream ids of non-TTY frames (0 stdin,
1 stdout, 2 stderr, 3 exit, 4 stdin EOF)."""

from __future__ import annotations

import signal as signals
from collections.abc import Sequence

from .http import go_duration

STDIN, STDOUT, STDERR, EXIT, STDIN_EOF = 0, 1, 2, 3, 4


def signal_name(sig: str | int) -> str:
    """``"INT"`` from ``"INT"``, ``"sigint"``, ``2`` or ``signal.SIGINT``."""
    if isinstance(sig, int):
        return signals.Signals(sig).name.removeprefix("SIG")
    name = str(sig).strip().upper().removeprefix("SIG")
    if not name:
        raise ValueError("give a signal such as INT, TERM or KILL")
    return name


def exec_params(argv: Sequence[str], *, env: dict[str, str] | None, dir: str | None,
                tty: bool, stdin: bool, rows: int | None = None, cols: int | None = None,
                max_run_after_disconnect: float | None = None) -> list[tuple[str, str]]:
    """The exec query string as sprites-go sends it: repeated ``cmd``, ``path``, ``env``,
    ``dir`` when set, ``tty`` (and a size given) only for a TTY, and an accurate ``stdin``."""
    if not argv or not all(isinstance(arg, str) for arg in argv):
        raise ValueError("give the command as strings, e.g. run('ls', '-l')")
    params = [("cmd", arg) for arg in argv]
    params.append(("path", argv[0]))
    params += [("env", f"{key}={value}") for key, value in (env or {}).items()]
    if dir:
        params.append(("dir", dir))
    if max_run_after_disconnect is not None:
        params.append(("max_run_after_disconnect", go_duration(max_run_after_disconnect)))
    if tty:
        params.append(("tty", "true"))
        if rows is not None and cols is not None:
            params += [("rows", str(rows)), ("cols", str(cols))]
    params.append(("stdin", "true" if stdin else "false"))
    return params
