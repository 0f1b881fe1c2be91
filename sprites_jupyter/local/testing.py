"""A throwaway local server in a subprocess, for the tests and benchmarks of code that talks
to it: started as a user starts one (``python -m sprites_jupyter.local serve``) on a free
port, ready when it prints its URL, stopped by its handle.

Unlike :mod:`.launcher` (a long-lived server shared by kernels, found again through its
home), each call here starts a server of its own that nothing else will find or reuse.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

READY_PREFIX = "Sprites local server listening on "
"""The line ``serve`` prints once it accepts connections, followed by its URL."""
STOP_WAIT = 30.0


class ServerDidNotStart(RuntimeError):
    """``serve`` exited or printed something other than its ready line."""


@dataclass
class LocalServer:
    """A running ``sprites-local serve`` process and how to reach it."""

    url: str
    token: str
    home: Path
    process: subprocess.Popen[str]

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def http(self, **options: Any) -> httpx.Client:
        """A plain httpx client for this server (not the package's own client); ``options``
        are httpx's, a 30-second timeout unless they say otherwise."""
        return httpx.Client(**{"base_url": self.url, "headers": self.headers, "timeout": 30,
                               **options})

    def stop(self, *, kill: bool = False) -> None:
        """End the server (SIGTERM, or SIGKILL with ``kill``) and wait for it; idempotent."""
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=STOP_WAIT)


def launch(home: Path, token: str, port: int = 0, *, args: Sequence[str] = (),
           prefix: Sequence[str] = (), preexec_fn: Callable[[], None] | None = None,
           env: dict[str, str] | None = None, stderr: int | IO[Any] | None = None,
           max_disk: str | None = "0") -> subprocess.Popen[str]:
    """The ``serve`` process, not yet waited for: its stdout is a pipe whose first line is
    the ready line, or empty when it exits first. ``prefix`` runs it under another command
    (another user, a namespace); ``env`` is added to this process's environment.

    ``max_disk`` is its ``--max-disk`` (None: the server's default). It is 0 unless asked:
    many tests plant and read files in a sprite's tree by its host path, which a root
    server's sprite with a disk of its own has mounted only in the server's namespace."""
    disk = ["--max-disk", max_disk] if max_disk is not None else []
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "sprites_jupyter.local", "serve", "--port", str(port),
         "--home", str(home), "--token", token, *disk, *args],
        stdout=subprocess.PIPE, stderr=stderr, text=True, preexec_fn=preexec_fn,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def ready_url(line: str) -> str | None:
    """The URL a ready line announces; None for any other line."""
    return line[len(READY_PREFIX):].strip() if line.startswith(READY_PREFIX) else None


def start_server(home: Path, token: str = "test-token", port: int = 0, *,
                 args: Sequence[str] = (), prefix: Sequence[str] = (),
                 preexec_fn: Callable[[], None] | None = None,
                 env: dict[str, str] | None = None,
                 stderr: int | IO[Any] | None = None,
                 max_disk: str | None = "0") -> LocalServer:
    """A server for ``home`` once it accepts connections (see :func:`launch`)."""
    process = launch(home, token, port, args=args, prefix=prefix, preexec_fn=preexec_fn,
                     env=env, stderr=stderr, max_disk=max_disk)
    assert process.stdout is not None
    line = process.stdout.readline()
    url = ready_url(line)
    if url is None:
        process.kill()
        process.wait(timeout=STOP_WAIT)
        raise ServerDidNotStart(f"server did not start: {line!r}")
    return LocalServer(url=url, token=token, home=home, process=process)
