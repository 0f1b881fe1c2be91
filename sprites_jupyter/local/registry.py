"""Which local servers run on this machine: a file per server in a registry directory.

``HOME/server.json`` says which server runs for one home; ``sprites-local status``
needs every one, including those kernels started for homes nobody remembers. Each
server adds ``<pid>.json`` (home, URL, start time) when it is ready and removes it when
it exits; an entry whose process is gone, or whose home now names another server, is
stale and dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .storage.home import read_server_file

__all__ = ["RunningServer", "is_alive", "register", "registry_dir", "running_servers",
           "unregister"]


@dataclass(frozen=True)
class RunningServer:
    """One live local server: where its state is, how to reach it, since when."""

    pid: int
    url: str
    home: Path
    started: float
    limits: str = ""
    """What its sprites may use (the start-up notice of ``sprites-local serve``)."""

    @property
    def sprites(self) -> int:
        """How many sprites its home holds (read from disk: asking would be activity)."""
        directory = self.home / "sprites"
        with contextlib.suppress(OSError):
            return sum(1 for entry in directory.iterdir() if entry.is_dir())
        return 0

    @property
    def uptime(self) -> float:
        return max(0.0, time.time() - self.started)


def registry_dir() -> Path:
    """``$SPRITES_LOCAL_REGISTRY``, else ``servers`` beside the default home in the user
    data directory (stale entries are dropped, so it need not be a runtime directory)."""
    configured = os.environ.get("SPRITES_LOCAL_REGISTRY")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("sprites-jupyter", appauthor=False)) / "servers"


def register(*, pid: int, url: str, home: Path, limits: str = "") -> None:
    """Record this server (best effort: status is a convenience, serving is not)."""
    directory = registry_dir()
    with contextlib.suppress(OSError):
        directory.mkdir(parents=True, exist_ok=True)
        temp = directory / f".{pid}.json"
        temp.write_text(json.dumps({"pid": pid, "url": url, "home": str(home),
                                    "started": time.time(), "limits": limits}))
        temp.replace(directory / f"{pid}.json")


def unregister(pid: int) -> None:
    with contextlib.suppress(OSError):
        (registry_dir() / f"{pid}.json").unlink()


def is_alive(pid: int) -> bool:
    """Whether a process with this pid runs (a zombie, exited but not yet reaped by the
    kernel that started it, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    return True


def running_servers() -> list[RunningServer]:
    """Every live registered server, oldest first; stale entries are removed."""
    servers = []
    with contextlib.suppress(OSError):
        for path in registry_dir().glob("[0-9]*.json"):
            try:
                record = json.loads(path.read_text())
                server = RunningServer(int(record["pid"]), str(record["url"]),
                                       Path(record["home"]), float(record["started"]),
                                       str(record.get("limits", "")))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            current = read_server_file(server.home) or {}
            if not is_alive(server.pid) or current.get("pid") != server.pid:
                unregister(server.pid)
                continue
            servers.append(server)
    return sorted(servers, key=lambda server: server.started)
