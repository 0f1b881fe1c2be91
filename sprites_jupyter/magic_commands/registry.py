"""Every ``%sprite`` subcommand, declared once beside its handler.

The parser, ``%sprite help``/``%sprite?``, completion and dispatch are all read from
here, so they cannot disagree. A new subcommand is one decorated function::

    @subcommand("touch", "create an empty file: touch PATH",
                argument("path", help="a path in the sprite"),
                argument("--mode", metavar="OCTAL", help="permission bits"))
    def touch(ctx: CommandContext, args: Namespace) -> None: ...

(in a module that magics.py imports; ``sprite=False`` for one that takes no ``-s``).
"""

from __future__ import annotations

import argparse
import enum
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError

from .argument_parser import SpriteArgumentParser

__all__ = ["SPRITE_OPTION", "Action", "Argument", "CellMagic", "Dashes", "Exclusive", "Names",
           "Subcommand", "action", "argument", "cell_grammar", "cell_magic", "exclusive",
           "lookup", "parsers", "subcommand", "subcommands"]

Handler = Callable[[Any, argparse.Namespace], Any]


class Names(enum.Enum):
    """Words that completion asks for when a positional takes one of them."""

    SUBCOMMANDS = "subcommands"
    SPRITES = "sprites"
    CHECKPOINTS = "checkpoints"
    SERVICES = "services"
    SESSIONS = "exec sessions"
    KERNEL_VARIABLES = "kernel variables"


# Argparse actions whose option takes no value (a flag), for completion's word counting.
_FLAGS = ("store_true", "store_false", "store_const", "count", "append_const")


@dataclass(frozen=True)
class Argument:
    """One ``add_argument`` call, and what completion offers for its value."""

    flags: tuple[str, ...]
    options: dict[str, Any]
    complete: Names | None = None

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")

    @property
    def takes_value(self) -> bool:
        return self.options.get("action") not in _FLAGS

    @property
    def repeats(self) -> bool:
        return self.options.get("nargs") in ("*", "+", argparse.REMAINDER)

    def offers(self) -> tuple[str, ...] | Names | None:
        """What completion offers for this argument's value."""
        choices = self.options.get("choices")
        return tuple(choices) if choices is not None else self.complete

    def add_to(self, parser: Any) -> None:
        parser.add_argument(*self.flags, **self.options)


@dataclass(frozen=True)
class Exclusive:
    """Options of which at most one may be given (argparse's mutually exclusive group)."""

    arguments: tuple[Argument, ...]

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_mutually_exclusive_group()
        for item in self.arguments:
            item.add_to(group)


@dataclass(frozen=True)
class Dashes:
    """The words after ``--`` go, unparsed, into the namespace attribute ``dest``; when
    ``missing`` is set they are required and it says how to give them."""

    dest: str
    missing: str = ""

    def split(self, prog: str, words: list[str]) -> tuple[list[str], list[str]]:
        if "--" not in words:
            if self.missing:
                raise UsageError(f"{prog}: {self.missing}")
            return words, []
        cut = words.index("--")
        if self.missing and not words[cut + 1:]:
            raise UsageError(f"{prog}: the command after -- is missing")
        return words[:cut], words[cut + 1:]


@dataclass(frozen=True)
class Action:
    """A verb of a subcommand (``service create``, ``policy allow``) and its arguments."""

    name: str
    help: str
    arguments: tuple[Argument | Exclusive, ...] = ()
    dashes: Dashes | None = None


def argument(*flags: str, complete: Names | None = None, **options: Any) -> Argument:
    """Declare an argument as ``ArgumentParser.add_argument`` takes it; ``complete`` names
    what tab completion offers for it (``choices`` are offered without it)."""
    return Argument(flags, options, complete)


def exclusive(*arguments: Argument) -> Exclusive:
    return Exclusive(arguments)


def action(name: str, help: str, *arguments: Argument | Exclusive,
           dashes: Dashes | None = None) -> Action:
    return Action(name, help, arguments, dashes)


SPRITE_OPTION = argument("-s", "--sprite", metavar="NAME", complete=Names.SPRITES,
                         help="act on this sprite instead of the current one")
# After an action's word (``policy allow x.com -s demo``); SUPPRESS keeps a ``-s`` given
# before the action from being reset by the action parser's default.
_ACTION_SPRITE_OPTION = argument("-s", "--sprite", metavar="NAME", complete=Names.SPRITES,
                                 default=argparse.SUPPRESS,
                                 help="act on this sprite instead of the current one")


@dataclass(frozen=True)
class Subcommand:
    """``%sprite NAME``: its handler, its grammar and its help line."""

    name: str
    summary: str
    handler: Handler
    arguments: tuple[Argument | Exclusive, ...] = ()
    actions: tuple[Action, ...] = ()
    actions_required: bool = False
    dashes: Dashes | None = None
    raw_rest: str = ""  # a REMAINDER positional that receives the line's raw text
    description: str = ""
    flat_arguments: tuple[Argument, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "flat_arguments", tuple(_flatten(self.arguments)))

    def action_named(self, name: str) -> Action | None:
        return next((a for a in self.actions if a.name == name), None)

    def arguments_with(self, action_name: str | None = None) -> list[Argument]:
        """This subcommand's arguments, or those of its action once one is named (argparse
        takes the subcommand's own options only before the action's word)."""
        chosen = self.action_named(action_name) if action_name else None
        return list(_flatten(chosen.arguments)) if chosen else list(self.flat_arguments)

    def options(self, action_name: str | None = None) -> list[str]:
        """Every option string this subcommand accepts, or once its action word is given
        (argparse then reads the rest with the action's parser), that action's."""
        chosen = self.action_named(action_name) if action_name else None
        arguments = _flatten(chosen.arguments) if chosen else iter(self.flat_arguments)
        flags = (flag for item in arguments if not item.positional for flag in item.flags)
        return list(dict.fromkeys(flags))

    def positionals(self, action_name: str | None) -> list[Argument]:
        """The positional arguments in order, the action word first when there are
        actions."""
        own = [item for item in self.flat_arguments if item.positional]
        if not self.actions:
            return own
        verb = argument("action", choices=[a.name for a in self.actions])
        chosen = self.action_named(action_name) if action_name else None
        rest = [item for item in _flatten(chosen.arguments) if item.positional] if chosen else []
        return [*own, verb, *rest]


def _flatten(items: tuple[Argument | Exclusive, ...]) -> Iterator[Argument]:
    for item in items:
        if isinstance(item, Exclusive):
            yield from item.arguments
        else:
            yield item


_REGISTRY: dict[str, Subcommand] = {}

# The order of help: the modules of this package by family, each in declaration order.
_HELP_ORDER = ("sprites", "execution", "checkpoints", "diff", "services", "policy", "files",
               "sessions", "python.cells", "url", "forwarding")


def _help_rank(command: Subcommand) -> int:
    family = command.handler.__module__.removeprefix(f"{__package__}.")
    return _HELP_ORDER.index(family) if family in _HELP_ORDER else len(_HELP_ORDER)


def subcommand(name: str, summary: str, *arguments: Argument | Exclusive,
               actions: tuple[Action, ...] = (), actions_required: bool = False,
               sprite: bool = True, dashes: Dashes | None = None, raw_rest: str = "",
               description: str = "") -> Callable[[Handler], Handler]:
    """Register the decorated ``handler(ctx, args)`` as ``%sprite NAME``; ``sprite``
    adds ``-s NAME`` (act on another sprite than the current one)."""

    def register(handler: Handler) -> Handler:
        if name in _REGISTRY:
            raise ValueError(f"%sprite {name} is declared twice")
        grammar = (*arguments, SPRITE_OPTION) if sprite else arguments
        verbs = tuple(Action(a.name, a.help, (*a.arguments, _ACTION_SPRITE_OPTION), a.dashes)
                      for a in actions) if sprite else actions
        _REGISTRY[name] = Subcommand(name, summary, handler, grammar, verbs,
                                     actions_required, dashes, raw_rest, description)
        return handler

    return register


def subcommands() -> dict[str, Subcommand]:
    """Every subcommand by name, in the order help lists them."""
    return {c.name: c for c in sorted(_REGISTRY.values(), key=_help_rank)}


def lookup(name: str) -> Subcommand | None:
    return _REGISTRY.get(name)


def build_parser(prog: str, description: str,
                 arguments: tuple[Argument | Exclusive, ...]) -> SpriteArgumentParser:
    """A parser declaring ``arguments``; its errors suggest the nearest of its options."""
    parser = SpriteArgumentParser(
        prog=prog, description=description,
        known_options=[f for a in _flatten(arguments) if not a.positional for f in a.flags])
    for item in arguments:
        item.add_to(parser)
    return parser


@functools.cache
def parsers(name: str) -> tuple[SpriteArgumentParser, tuple[SpriteArgumentParser, ...]]:
    """The parser of ``%sprite NAME`` and those of its actions, built on first use
    (loading the extension builds none of them: each costs milliseconds)."""
    command = _REGISTRY[name]
    parser = build_parser(f"%sprite {name}", command.description or command.summary,
                          command.arguments)
    if not command.actions:
        return parser, ()
    verbs = parser.add_subparsers(dest="action", metavar="ACTION",
                                  required=command.actions_required,
                                  parser_class=SpriteArgumentParser)
    built = []
    for verb in command.actions:
        sub = verbs.add_parser(verb.name, help=verb.help, known_options=command.options(verb.name))
        for item in verb.arguments:
            item.add_to(sub)
        built.append(sub)
    parser.known_options = [*parser.known_options,
                            *(o for verb in command.actions for o in command.options(verb.name))]
    return parser, tuple(built)


@dataclass(frozen=True)
class CellMagic:
    """The options of a cell magic's line (``%%sprite_exec``, ``%%sprite_python``)."""

    magic: str
    description: str
    arguments: tuple[Argument | Exclusive, ...]

    def options(self) -> list[str]:
        return [f for item in _flatten(self.arguments) if not item.positional for f in item.flags]

    def parser(self) -> SpriteArgumentParser:
        """Built on first use, as the subcommands' parsers are."""
        return _cell_parser(self.magic)


@functools.cache
def _cell_parser(magic: str) -> SpriteArgumentParser:
    grammar = _CELL_MAGICS[magic]
    return build_parser(grammar.magic, grammar.description, grammar.arguments)


_CELL_MAGICS: dict[str, CellMagic] = {}


def cell_magic(magic: str, description: str, *arguments: Argument | Exclusive) -> CellMagic:
    """Declare the options of the cell magic ``magic`` (e.g. ``"%%sprite_exec"``)."""
    grammar = CellMagic(magic, description, arguments)
    _CELL_MAGICS[magic] = grammar
    return grammar


def cell_grammar(magic: str) -> CellMagic | None:
    return _CELL_MAGICS.get(magic)
