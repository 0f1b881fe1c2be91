"""Fixtures shared by every test: a real local server in a subprocess, over real sockets."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

READY_PREFIX = "Sprites local server listening on "


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

    def http(self, **kwargs: object) -> httpx.Client:
        """A plain httpx client for this server (not our own client)."""
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30, **kwargs)

    def stop(self, *, kill: bool = False) -> None:
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=30)


def start_server(home: Path, token: str = "test-token", port: int = 0, *,
                 args: Sequence[str] = (), prefix: Sequence[str] = (),
                 preexec_fn: Callable[[], None] | None = None) -> LocalServer:
    """Start the server as a user would (``python -m sprites_jupyter.local serve``), with
    extra ``args``, under a ``prefix`` command (another user, say), after ``preexec_fn``."""
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "sprites_jupyter.local", "serve", "--port", str(port),
         "--home", str(home), "--token", token, *args],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=preexec_fn,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(READY_PREFIX):
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return LocalServer(url=line[len(READY_PREFIX):].strip(), token=token, home=home,
                       process=process)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One local server for the whole test session."""
    running = start_server(tmp_path_factory.mktemp("sprites-home"))
    yield running
    running.stop()


@pytest.fixture
def http(server: LocalServer) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client


@pytest.fixture
def sprite(http: httpx.Client) -> Iterator[str]:
    """A fresh sprite, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    response = http.post("/v1/sprites", json={"name": name})
    assert response.status_code == 201, response.text
    yield name
    http.delete(f"/v1/sprites/{name}")
