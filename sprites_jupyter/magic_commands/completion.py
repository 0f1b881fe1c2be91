"""Tab completion for ``%sprite`` and ``%%sprite_exec``: subcommands, options and names.

Sprite, checkpoint and service names are asked of the server; a failure there
just means no suggestions.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .context import CommandContext
from .parsing import (
    PYTHON_ACTIONS,
    SUBCOMMANDS,
    build_exec_parser,
    build_python_parser,
    subcommand_parser,
)

__all__ = ["SpriteCompleter"]

_SERVICE_ACTIONS = ("create", "start", "stop", "restart", "delete", "signal")
_POLICY_ACTIONS = ("allow", "deny", "set", "reset")


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for action in parser._actions for o in action.option_strings if o.startswith("--")]


class SpriteCompleter:
    """An IPython ``complete_command`` hook (called as ``hook(shell, event)``)."""

    def __init__(self, context: CommandContext) -> None:
        self.context = context

    def __call__(self, _shell: Any, event: Any) -> list[str]:
        words = event.text_until_cursor.split()
        if not event.text_until_cursor.endswith((" ", "\t")) and len(words) > 1:
            current = words.pop()
        else:
            current = ""
        magic, words = words[0], words[1:]
        chosen = next((words[i + 1] for i, w in enumerate(words[:-1])
                       if w in ("-s", "--sprite")), None)
        if words and words[-1] in ("-s", "--sprite"):
            return self._names(self._sprites)
        if magic == "%%sprite_python":
            return _options(build_python_parser())
        if magic.startswith("%%"):
            return _options(build_exec_parser())
        if not words:
            return list(SUBCOMMANDS)
        if current.startswith("-"):
            return _options(subcommand_parser(words[0])) if words[0] in SUBCOMMANDS else []
        return self._arguments(words, chosen)

    def _arguments(self, words: list[str], chosen: str | None) -> list[str]:
        sub, position = words[0], len(words)
        if sub == "help" and position == 1:
            return list(SUBCOMMANDS)
        if sub in ("use", "destroy") and position == 1:
            return self._names(self._sprites)
        if ((sub == "restore" and position == 1) or words[-1] == "--history"
                or (sub == "diff" and position in (1, 2))
                or (sub == "checkpoint" and position == 2 and words[1] == "delete")):
            return self._names(lambda: self._checkpoints(chosen))
        if sub == "checkpoint" and position == 1:
            return ["delete"]
        if sub == "labels" and position == 1:
            return ["add", "remove", "clear"]
        if sub in ("attach", "kill") and position == 1:
            return self._names(lambda: [s.id for s in self.context.sprite(chosen)
                                        .list_sessions()])
        if sub in ("logs", "open") and position == 1:
            return self._names(lambda: self._services(chosen))
        if sub == "service":
            if position == 1:
                return list(_SERVICE_ACTIONS)
            if position == 2 and words[1] != "create":
                return self._names(lambda: self._services(chosen))
        if sub == "policy" and position == 1:
            return list(_POLICY_ACTIONS)
        if sub == "python" and position == 1:
            return list(PYTHON_ACTIONS)
        if sub == "push":
            return [name for name in self.context.shell.user_ns if not name.startswith("_")]
        return []

    def _names(self, fetch: Callable[[], list[str]]) -> list[str]:
        """Names from the server; none when it cannot say (no sprite, unreachable…)."""
        try:
            return fetch()
        except Exception:
            return []

    def _sprites(self) -> list[str]:
        return [s.name for s in self.context.client.list_sprites()]

    def _checkpoints(self, chosen: str | None) -> list[str]:
        return [c.id for c in self.context.sprite(chosen).list_checkpoints(include_auto=True)]

    def _services(self, chosen: str | None) -> list[str]:
        return [s.name for s in self.context.sprite(chosen).list_services()]
