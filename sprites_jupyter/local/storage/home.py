"""Where the local server keeps its state, its token, and the file that says it runs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from pathlib import Path
from typing import IO

import platformdirs

SERVER_FILE = "server.json"
TOKEN_FILE = "token"
SERVE_LOCK = "serve.lock"


class AlreadyServing(RuntimeError):
    """Another server holds this home; the message names it."""


def hold_serve_lock(home: Path) -> IO[str]:
    """Take the home's one-server lock for this process's lifetime (keep the handle).

    Raises :class:`AlreadyServing` naming the running server's URL when another holds it.
    The kernel drops the lock when the process ends, however it ends (kill -9 too).
    """
    prepare_home(home)
    handle = os.fdopen(os.open(home / SERVE_LOCK, os.O_RDWR | os.O_CREAT, 0o600), "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        record = read_server_file(home) or {}
        where = (f"at {record['url']} (pid {record.get('pid')})" if record.get("url")
                 else "(still starting)")
        raise AlreadyServing(f"a server for {home} is already running {where}: use that one, "
                             "or stop it first") from None
    return handle


def prepare_home(home: Path) -> Path:
    """Make ``home`` (and its parents) and keep it private to this user (mode 0700):
    it holds the token, checkpoint comments and every sprite's files."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if home.stat().st_mode & 0o077:
        home.chmod(0o700)
    return home


def write_private(path: Path, text: str) -> None:
    """Write ``path`` (created or truncated) readable by this user only (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(fd, 0o600)
        handle.write(text)


def default_home() -> Path:
    """``$SPRITES_LOCAL_HOME``, else the user data directory."""
    configured = os.environ.get("SPRITES_LOCAL_HOME")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("sprites-jupyter", appauthor=False)) / "local"


def resolve_token(home: Path, explicit: str | None = None) -> str:
    """``explicit``, else ``$SPRITES_LOCAL_TOKEN``, else ``HOME/token`` (made, mode 0600)."""
    if explicit:
        return explicit
    from_env = os.environ.get("SPRITES_LOCAL_TOKEN")
    if from_env:
        return from_env
    prepare_home(home)
    path = home / TOKEN_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def write_server_file(home: Path, *, pid: int, url: str) -> None:
    """Record the running server (atomically: written aside, then renamed)."""
    temp = home / f".{SERVER_FILE}.{pid}"
    write_private(temp, json.dumps({"pid": pid, "url": url}))
    temp.replace(home / SERVER_FILE)


def read_server_file(home: Path) -> dict[str, object] | None:
    try:
        return json.loads((home / SERVER_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def remove_server_file(home: Path, *, pid: int) -> None:
    """Remove the record if it is still ours."""
    record = read_server_file(home)
    if record and record.get("pid") == pid:
        with contextlib.suppress(FileNotFoundError):
            (home / SERVER_FILE).unlink()
