"""Find the local server running for a home directory, or start one in the background.

The running server records itself in ``HOME/server.json``; a server is reused when
that process is alive and answers an authenticated request. Starting is guarded by a
lock file, so two kernels racing to start one end up sharing a single server.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .registry import is_alive
from .storage.home import default_home, prepare_home, read_server_file, resolve_token

LOCK_FILE = "launch.lock"
LOG_FILE = "server.log"
_POLL = 0.05
IDLE_EXIT = 1800.0
"""Seconds a server started here may sit without clients or sprite activity before it
exits by itself (nobody else would stop it: it outlives the kernel that started it)."""

_started: list[subprocess.Popen[bytes]] = []
"""Servers this process started: kept so they are not reported as leaked on exit."""


class LaunchError(RuntimeError):
    """The local server could not be found or started; the message says what to do."""


@dataclass(frozen=True)
class LocalServerInfo:
    """How to reach a running local server."""

    url: str
    token: str = field(repr=False)
    pid: int
    home: Path


def ensure_server(home: Path | None = None, *, timeout: float = 30.0) -> LocalServerInfo:
    """The local server for ``home`` (default: :func:`default_home`), started if needed."""
    home = prepare_home((home or default_home()).expanduser().resolve())
    token = resolve_token(home)
    running = find_server(home, token)
    if running is not None:
        return running
    with _locked(home / LOCK_FILE, timeout):
        running = find_server(home, token)
        if running is not None:
            return running
        return _start(home, token, timeout)


def find_server(home: Path, token: str) -> LocalServerInfo | None:
    """The server recorded in ``HOME/server.json`` if it is alive and accepts ``token``."""
    record = read_server_file(home)
    if not record:
        return None
    pid, url = record.get("pid"), record.get("url")
    if not isinstance(pid, int) or not isinstance(url, str) or not is_alive(pid):
        return None
    if not _healthy(url, token):
        return None
    return LocalServerInfo(url=url, token=token, pid=pid, home=home)


# The server speaks plain HTTP on loopback: no CA bundle to load for each probe (~20 ms).
_PLAIN_HTTP_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _healthy(url: str, token: str) -> bool:
    try:
        response = httpx.get(f"{url}/v1/sprites", params={"max_results": 1},
                             headers={"Authorization": f"Bearer {token}"}, timeout=2.0,
                             verify=_PLAIN_HTTP_TLS)
    except httpx.HTTPError:
        return False
    if response.status_code == 401:
        raise LaunchError(f"the local server at {url} refuses the token for this home: "
                          "set SPRITES_LOCAL_TOKEN to the token it was started with")
    return response.status_code == 200


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LaunchError(f"another process holds {path} (starting the local "
                                      "server?); try again, or delete the file") from None
                time.sleep(_POLL)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _start(home: Path, token: str, timeout: float) -> LocalServerInfo:
    log_path = home / LOG_FILE
    with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sprites_jupyter.local", "serve", "--home", str(home),
             "--idle-exit", str(IDLE_EXIT)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    _started.append(process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise LaunchError(f"the local server exited with code {code}: {_last_line(log_path)} "
                              f"(log: {log_path})")
        record = read_server_file(home)
        if record and record.get("pid") == process.pid and _healthy(str(record["url"]), token):
            return LocalServerInfo(url=str(record["url"]), token=token, pid=process.pid,
                                   home=home)
        time.sleep(_POLL)
    process.terminate()
    raise LaunchError(f"the local server did not become ready within {timeout:g}s "
                      f"(log: {log_path})")


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"
