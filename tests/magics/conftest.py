"""A real IPython shell with ``%load_ext sprites_jupyter``, pointed at the test server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from sprites_jupyter.config import NO_WIDGETS_ENV
from sprites_jupyter.magic_commands.python import session as python_session

STDLIB_PYTHON = "/usr/bin/python3"


class Shell:
    """The shell plus helpers that run a cell and report how it went."""

    def __init__(self, shell: InteractiveShell) -> None:
        self.shell = shell

    @property
    def magics(self) -> Any:
        return next(c for c in self.shell.configurables if type(c).__name__ == "SpriteMagics")

    def ok(self, source: str) -> Any:
        """Run a cell that must succeed; its result."""
        result = self.shell.run_cell(source)
        assert result.success, f"{source!r} failed: {result.error_in_exec!r}"
        return result.result

    def fails(self, source: str) -> str:
        """Run a cell that must fail with a one-line UsageError; its message."""
        from IPython.core.error import UsageError

        result = self.shell.run_cell(source)
        assert not result.success, f"{source!r} should have failed"
        error = result.error_in_exec
        assert type(error) is UsageError, repr(error)
        assert "\n" not in str(error)
        return str(error)


@pytest.fixture
def ip(server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    """The extension freshly loaded, on the shared local test server, widgets off by default."""
    with loaded_shell(server, monkeypatch) as shell:
        yield shell


@pytest.fixture
def shell_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Any], Shell]]:
    """Loads the extension on a server the test chooses (one of its own, or a shared one
    other than ``server``); unloaded when the test ends."""
    with ExitStack() as loaded:
        yield lambda server: loaded.enter_context(loaded_shell(server, monkeypatch))


@pytest.fixture
def library_ip(unsandboxed_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    """The extension on the unsandboxed server, ``%%sprite_python`` sessions on this
    interpreter (which has pandas and numpy), with a fresh current sprite."""
    monkeypatch.setattr(python_session, "PYTHON", sys.executable)
    with loaded_shell(unsandboxed_server, monkeypatch) as shell:
        name = f"t-{uuid.uuid4().hex[:10]}"
        shell.ok(f"%sprite use {name} --create")
        try:
            yield shell
        finally:
            shell.shell.run_cell("%sprite python stop")  # run_cell: teardown never raises
            shell.shell.run_cell(f"%sprite destroy {name} --yes")


@contextmanager
def loaded_shell(server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    """The extension loaded on ``server`` as a notebook user loads it (through the
    environment), with no configuration left over from another test."""
    monkeypatch.setenv("SPRITES_API_URL", server.url)
    monkeypatch.setenv("SPRITES_TOKEN", server.token)
    monkeypatch.delenv("SPRITE_TOKEN", raising=False)
    monkeypatch.delenv(NO_WIDGETS_ENV, raising=False)
    shell = InteractiveShell.instance()
    shell.config.pop("SpriteMagics", None)
    shell.run_line_magic("load_ext", "sprites_jupyter")
    try:
        yield Shell(shell)
    finally:
        shell.run_line_magic("unload_ext", "sprites_jupyter")
        shell.config.pop("SpriteMagics", None)


@pytest.fixture
def current(ip: Shell, sprite: str) -> str:
    """A fresh sprite selected with ``%sprite use``."""
    ip.ok(f"%sprite use {sprite}")
    return sprite


@pytest.fixture
def stdlib_python(monkeypatch: pytest.MonkeyPatch) -> str:
    """Sessions run on the system's python3 when it has no IPython and no pandas, so the
    agent's own formatter and the refusals for missing libraries are exercised."""
    if not os.path.exists(STDLIB_PYTHON):
        pytest.skip(f"{STDLIB_PYTHON} is missing here")
    probe = subprocess.run([STDLIB_PYTHON, "-c", "import IPython"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"{STDLIB_PYTHON} has IPython, so the agent would use IPython's formatter")
    monkeypatch.setattr(python_session, "PYTHON", STDLIB_PYTHON)
    return STDLIB_PYTHON
