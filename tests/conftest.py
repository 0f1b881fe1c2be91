"""Fixtures shared by every test: a real local server in a subprocess, over real sockets
(started by ``sprites_jupyter.local.testing``, as the benchmarks start theirs)."""

from __future__ import annotations

import faulthandler
import os
import signal
import uuid
from collections.abc import Iterator
from typing import TextIO

import httpx
import pytest

from sprites_jupyter.local.testing import LocalServer, start_server

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


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One local server for the whole test session."""
    running = start_server(tmp_path_factory.mktemp("sprites-home"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def unsandboxed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A local server in directory mode (``--isolation none``): its sprites run this
    interpreter, with this checkout's sprites_jupyter (for in-kernel magics) and the
    pandas and numpy a sandbox's system python3 may lack."""
    running = start_server(tmp_path_factory.mktemp("sprites-home-none"),
                           args=("--isolation", "none"))
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
