"""``%sprite`` and ``%%sprite_exec``: parse the line, call the subcommand, return what it shows.

The subcommands live in :mod:`sprites_jupyter.magic_commands`; this class holds
the settings (traitlets, so ``%config SpriteMagics.sprite = "demo"`` works), the
client (made on first use, remade when ``api_url`` or ``timeout`` change) and the
journal behind ``%sprite history``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, cast

from IPython.core import magic
from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class
from traitlets import observe

from .backend import client_from_env
from .client import SpritesClient, SpritesError
from .client.http import DEFAULT_BASE_URL, is_loopback_url
from .config import SpriteSettings
from .journal import Journal, JournalStore
from .journal_stores import choose_journal_store
from .kernel.in_kernel import kernel_sprite, relay_client

# Each module declares its subcommands (magic_commands/registry.py) when imported.
from .magic_commands import (  # noqa: F401
    cell_replay,
    checkpoints,
    diff,
    files,
    forwarding,
    panel,
    policy,
    services,
    sessions,
    sprites,
    undo,
    url,
)
from .magic_commands.cell_checkpoints import notebook_name
from .magic_commands.context import CommandContext
from .magic_commands.errors import explain
from .magic_commands.execution import EXEC_CELL, run_code
from .magic_commands.parsing import full_help, overview, parse_cell_line, parse_sprite_line
from .magic_commands.python.cells import PYTHON_CELL, run_cell
from .magic_commands.registry import lookup

__all__ = ["SpriteMagics"]

# Asked for every journal line (every cell): the URL is parsed once.
_is_loopback = functools.lru_cache(maxsize=8)(is_loopback_url)

MagicMethod = Callable[..., Any]
# IPython 9 annotates its markers as returning "the method or a decorator"; each is used
# here in one form, so it is typed as that form (IPython 8 leaves them untyped).
line_magic = cast(Callable[[str], Callable[[MagicMethod], MagicMethod]], magic.line_magic)
cell_magic = cast(Callable[[MagicMethod], MagicMethod], magic.cell_magic)

# The environment the client is made from; a change to any of them makes a new one.
_BACKEND_ENV = ("SPRITES_TOKEN", "SPRITE_TOKEN", "SPRITES_API_URL", "SPRITES_LOCAL_HOME")


def _tell(text: str) -> None:
    """Say what a slow operation waits for (a sprite waking up), on stderr."""
    print(text, file=sys.stderr, flush=True)


class SpriteInterrupted(KeyboardInterrupt):
    """Ctrl-C during a magic: IPython shows ``_render_traceback_``'s one line instead of
    a traceback through IPython and this module."""

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}"]


def _interrupts_in_short(method: Callable[..., Any]) -> Callable[..., Any]:
    """Ctrl-C still raises ``KeyboardInterrupt`` (the cell fails, Run All stops), but as
    one line: a terminal shows no page of httpx, nor of IPython's own frames."""

    @functools.wraps(method)
    def magic(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except KeyboardInterrupt:
            raise SpriteInterrupted("interrupted: %sprite history says what was "
                                    "stopped") from None

    return magic



def _describe(method: Any, summary: str, full_help: Callable[[], str]) -> None:
    """IPython's ``?`` asks an object's getdoc() first: the full help is built when asked
    (every parser costs ~10 ms, which loading the extension then does not pay)."""
    method.__doc__ = summary
    method.getdoc = full_help


@magics_class
class SpriteMagics(Magics, SpriteSettings):
    """Run code in Sprites (persistent, checkpointable sandboxes) from IPython."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.journal = Journal(self._journal_store)
        self._client: SpritesClient | None = None
        self._client_made_from: tuple[str, ...] = ()
        self.context = CommandContext(shell, self, self.journal, self._get_client)
        self.sprite = self.sprite or kernel_sprite()  # a sprite kernel starts on its own

    def _get_client(self) -> SpritesClient:
        """The client, remade when the environment it came from has changed (a new
        ``SPRITES_TOKEN`` or ``SPRITES_API_URL`` set in this process)."""
        made_from = tuple(os.environ.get(name, "") for name in _BACKEND_ENV)
        if self._client is not None and made_from != self._client_made_from:
            self.close()
        if self._client is None:
            try:
                self._client = self._make_client()
            except SpritesError as error:
                raise UsageError(explain(error)) from None
            self._client_made_from = made_from
        return self._client

    def _journal_store(self) -> JournalStore | None:
        token = os.environ.get("SPRITES_TOKEN") or os.environ.get("SPRITE_TOKEN")
        api_url = self.api_url or os.environ.get("SPRITES_API_URL", "")
        return choose_journal_store(
            self.journal_location, notebook_name(self.shell),
            default_local=not token and not api_url,
            remote_api=bool(token) and not _is_loopback(api_url or DEFAULT_BASE_URL),
            sprite=lambda name: self._get_client().sprite(name))

    def _make_client(self) -> SpritesClient:
        if not self.api_url:
            relayed = relay_client(timeout=self.timeout, on_wait=_tell)  # in a sprite kernel
            return relayed or client_from_env(timeout=self.timeout, on_wait=_tell)
        token = os.environ.get("SPRITES_TOKEN") or os.environ.get("SPRITE_TOKEN")
        if not token:
            raise UsageError(f"SpriteMagics.api_url is {self.api_url} but no token is set: "
                             "set SPRITES_TOKEN")
        return SpritesClient(token, self.api_url, timeout=self.timeout, on_wait=_tell)

    @observe("api_url", "timeout")
    def _settings_changed(self, change: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the client (a new one is made on next use), once the journal is saved."""
        self.journal.flush()
        if self._client is not None:
            self._client.close()
            self._client = None

    @line_magic("sprite")
    @_interrupts_in_short
    def sprite_line(self, line: str) -> Any:
        args = parse_sprite_line(line)
        command = lookup(args.subcommand)
        assert command is not None  # the parser accepts only declared subcommands
        return command.handler(self.context, args)

    @cell_magic
    @_interrupts_in_short
    def sprite_exec(self, line: str, cell: str) -> Any:
        return run_code(self.context, cell, parse_cell_line(EXEC_CELL.parser(), line),
                        cell=True)

    @cell_magic
    @_interrupts_in_short
    def sprite_python(self, line: str, cell: str) -> Any:
        return run_cell(self.context, cell, parse_cell_line(PYTHON_CELL.parser(), line))

    _describe(sprite_line, overview(), full_help)
    _describe(sprite_exec, "Run the cell on the current sprite (%%sprite_exec? for options).",
              lambda: EXEC_CELL.parser().format_help())
    _describe(sprite_python, "Run the cell in the sprite's persistent Python session "
                             "(%%sprite_python? for options).",
              lambda: PYTHON_CELL.parser().format_help())
