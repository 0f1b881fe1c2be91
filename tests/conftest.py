"""Fixtures shared by every test: a real local server in a subprocess, over real sockets."""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx
import pytest

READY_PREFIX = "Sprites local server listening on "
BACKSTOP_GRACE_MAX = 60  # s; the backstop fires at twice a test's timeout, at most this later
_REAL_STDERR = pytest.StashKey[TextIO]()


def pytest_configure(config: pytest.Config) -> None:
    """A run started in the background by a non-interactive shell (``pytest &`` in a script,
    ``nohup``) inherits SIGINT ignored, which Python then keeps: every test that presses
    Ctrl-C (``os.kill(pid, SIGINT)``) would wait until its timeout. Tests get Python's own
    Ctrl-C, as in a terminal."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Global capture is suspended here: this is the terminal's (or CI log's) stderr.
    config.stash[_REAL_STDERR] = os.fdopen(os.dup(2), "w")


def pytest_unconfigure(config: pytest.Config) -> None:
    real_stderr = config.stash.get(_REAL_STDERR, None)
    if real_stderr is not None:
        real_stderr.close()


def pytest_timeout_set_timer(item: pytest.Item, settings: object) -> None:
    """pytest-timeout fails a test by raising in it (its signal method), and code that
    catches every exception (IPython's ``run_cell`` does) swallows that and runs on. So at
    twice the timeout (at most a minute more) the run ends, with every thread's traceback.
    pytest-timeout's own timer is set as well (this returns None)."""
    timeout = float(getattr(settings, "timeout", 0) or 0)
    if timeout > 0:
        faulthandler.dump_traceback_later(timeout + min(timeout, BACKSTOP_GRACE_MAX),
                                          exit=True, file=item.config.stash[_REAL_STDERR])


def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    faulthandler.cancel_dump_traceback_later()


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
                 preexec_fn: Callable[[], None] | None = None,
                 max_disk: str | None = "0") -> LocalServer:
    """Start the server as a user would (``python -m sprites_jupyter.local serve``), with
    extra ``args``, under a ``prefix`` command (another user, say), after ``preexec_fn``.

    ``max_disk`` is its ``--max-disk`` (None: the server's default). It is 0 unless a
    test asks, because many tests plant and read files in a sprite's tree by its host
    path, and a root server's sprite with a disk of its own has that tree mounted only
    in the server's mount namespace (tests/local/test_sprite_disks.py covers those)."""
    disk = ["--max-disk", max_disk] if max_disk is not None else []
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "sprites_jupyter.local", "serve", "--port", str(port),
         "--home", str(home), "--token", token, *disk, *args],
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
