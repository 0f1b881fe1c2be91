"""A real IPython shell with ``%load_ext sprites_jupyter``, pointed at the test server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from sprites_jupyter.config import NO_WIDGETS_ENV


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
