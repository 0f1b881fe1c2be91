"""Where the local server keeps its state, its token, and the file that says it runs."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path

import platformdirs

SERVER_FILE = "server.json"
TOKEN_FILE = "token"


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
    home.mkdir(parents=True, exist_ok=True)
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
    temp.write_text(json.dumps({"pid": pid, "url": url}))
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
