"""Tab completion for ``%sprite`` and the cell magics, read from the subcommand registry.

Choices come from the declarations (so completion offers what the parser accepts);
sprite, checkpoint and service names are asked of the server, and a failure there
just means no suggestions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .checkpoint_refs import checkpoint_names
from .context import CommandContext
from .registry import Argument, Names, Subcommand, cell_grammar, lookup, subcommands

__all__ = ["SpriteCompleter", "positional_at"]

_SPRITE_FLAGS = ("-s", "--sprite")


def _long(options: list[str]) -> list[str]:
    return [option for option in options if option.startswith("--")]


def positional_at(command: Subcommand, words: list[str]) -> Argument | None:
    """The positional argument that the next word of ``words`` (the words after the
    subcommand's name) would fill, or None when it takes no more."""
    verb = words[0] if command.actions and words else None
    taken, skip_value = 0, False
    for word in words:
        if skip_value:
            skip_value = False
        elif word == "--":
            return None
        elif word.startswith("-"):
            declared = _option_named(command, verb, word)
            skip_value = declared is not None and declared.takes_value and "=" not in word
        else:
            taken += 1
    positionals = command.positionals(verb)
    if taken < len(positionals):
        return positionals[taken]
    return positionals[-1] if positionals and positionals[-1].repeats else None


def _option_named(command: Subcommand, verb: str | None, word: str) -> Argument | None:
    flag = word.partition("=")[0]
    return next((a for a in command.arguments_with(verb)
                 if not a.positional and flag in a.flags), None)


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
                       if w in _SPRITE_FLAGS), None)
        if words and words[-1] in _SPRITE_FLAGS:
            return self._offer(Names.SPRITES, chosen)
        if magic.startswith("%%"):
            grammar = cell_grammar(magic)
            return _long(grammar.options()) if grammar else []
        if not words:
            return list(subcommands())
        command = lookup(words[0])
        if command is None:
            return []
        rest = words[1:]
        if current.startswith("-"):
            return _long(command.options(rest[0] if command.actions and rest else None))
        if rest and rest[-1].startswith("-"):
            option = _option_named(command, rest[0] if command.actions else None, rest[-1])
            if option is not None and option.takes_value:
                return self._offer(option.offers(), chosen)
        argument = positional_at(command, rest)
        return self._offer(argument.offers() if argument else None, chosen)

    def _offer(self, offers: tuple[str, ...] | Names | None, chosen: str | None) -> list[str]:
        if offers is None:
            return []
        if isinstance(offers, tuple):
            return list(offers)
        fetch: dict[Names, Callable[[], list[str]]] = {
            Names.SUBCOMMANDS: lambda: list(subcommands()),
            Names.SPRITES: self._sprites,
            Names.CHECKPOINTS: lambda: self._checkpoints(chosen),
            Names.SERVICES: lambda: self._services(chosen),
            Names.SESSIONS: lambda: [s.id for s in self.context.sprite(chosen).list_sessions()],
            Names.KERNEL_VARIABLES: self._kernel_variables,
        }
        return self._names(fetch[offers])

    def _names(self, fetch: Callable[[], list[str]]) -> list[str]:
        """Names from the server; none when it cannot say (no sprite, unreachable…)."""
        try:
            return fetch()
        except Exception:
            return []

    def _sprites(self) -> list[str]:
        return [s.name for s in self.context.client.list_sprites()]

    def _checkpoints(self, chosen: str | None) -> list[str]:
        return checkpoint_names(self.context.sprite(chosen))

    def _services(self, chosen: str | None) -> list[str]:
        return [s.name for s in self.context.sprite(chosen).list_services()]

    def _kernel_variables(self) -> list[str]:
        return [name for name in self.context.shell.user_ns if not name.startswith("_")]
