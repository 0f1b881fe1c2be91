"""A ``%sprite`` line to a namespace, and the help texts, all read from the registry.

Parsers raise :class:`~IPython.core.error.UsageError` (one line, no traceback)
and suggest the nearest subcommand or option when a word is misspelt.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shlex

from IPython.core.error import UsageError

from .registry import Subcommand, lookup, parsers, subcommands

__all__ = ["full_help", "overview", "parse_cell_line", "parse_sprite_line", "split_line",
           "subcommand_help"]

# One shell word of the raw line: quoted runs and unquoted characters, glued together.
_WORD = re.compile(r"""(?:"(?:\\.|[^"\\])*"|'[^']*'|[^\s"'])+""")


def _unknown(word: str) -> UsageError:
    close = difflib.get_close_matches(word, list(subcommands()), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return UsageError(f"Unknown subcommand '{word}': {hint}(%sprite help lists them)")


def split_line(line: str) -> list[str]:
    """The shell words of a magic's line."""
    try:
        return shlex.split(line)
    except ValueError as error:
        raise UsageError(f"Cannot parse '{line}': {error}") from None


def _raw_rest(line: str, words_before: int) -> str:
    """The raw text of ``line`` after its first ``words_before`` shell words."""
    words = list(_WORD.finditer(line))
    return line[words[words_before].start():].strip() if words_before < len(words) else ""


def _split_dashes(command: Subcommand, rest: list[str]) -> tuple[list[str], str, list[str]]:
    """The words for argparse, and the attribute and words that follow ``--`` (if the
    subcommand, or the action named first, takes them)."""
    verb = command.action_named(rest[0]) if rest and command.actions else None
    dashes = verb.dashes if verb else command.dashes
    if dashes is None:
        return rest, "", []
    prog = f"%sprite {command.name}" + (f" {verb.name}" if verb else "")
    before, after = dashes.split(prog, rest)
    return before, dashes.dest, after


def parse_sprite_line(line: str) -> argparse.Namespace:
    """Parse a ``%sprite`` line into a namespace with ``subcommand`` set (plain
    ``%sprite`` is ``%sprite status``)."""
    argv = split_line(line) or ["status"]
    name, rest = argv[0], argv[1:]
    if name in ("-h", "--help"):
        name, rest = "help", []
    command = lookup(name)
    if command is None:
        raise _unknown(name)
    rest, dashes_dest, after_dashes = _split_dashes(command, rest)
    args = parsers(name)[0].parse_args(rest)
    args.subcommand = name
    if dashes_dest:
        setattr(args, dashes_dest, after_dashes)
    if command.raw_rest and getattr(args, command.raw_rest):
        taken = len(argv) - len(getattr(args, command.raw_rest))
        setattr(args, command.raw_rest, _raw_rest(line, taken).removeprefix("--").strip())
    return args


def parse_cell_line(parser: argparse.ArgumentParser, line: str) -> argparse.Namespace:
    """Parse the options of a cell magic's line."""
    return parser.parse_args(split_line(line))


def subcommand_help(topic: str | None) -> str:
    """Help text for one subcommand (its options, then each action's), or the overview."""
    if not topic:
        return overview()
    if lookup(topic) is None:
        raise _unknown(topic)
    parser, actions = parsers(topic)
    return "\n".join(p.format_help() for p in (parser, *actions))


def overview() -> str:
    """The ``%sprite?`` text: every subcommand with its summary."""
    summaries = {name: command.summary for name, command in subcommands().items()}
    width = max(map(len, summaries))
    rows = "\n".join(f"  {name:<{width}}  {summary}" for name, summary in summaries.items())
    return (
        "%sprite [SUBCOMMAND] [options]\n\n"
        "Work with Sprites (persistent, checkpointable Linux sandboxes) from IPython.\n"
        "Subcommands that act on a sprite take -s NAME to pick another than the "
        "current one.\n\n"
        f"{rows}\n\n"
        "%sprite help SUBCOMMAND shows a subcommand's options; %%sprite_exec? shows the "
        "cell magic's.\nSettings: %config SpriteMagics (sprite, api_url, timeout, "
        "max_log_lines, confirm_restore, widgets).\n"
    )


def full_help() -> str:
    """The ``%sprite?`` text: the overview, then every subcommand's options."""
    sections = [subcommand_help(name) for name in subcommands() if name != "help"]
    return "\n".join([overview(), *sections])
