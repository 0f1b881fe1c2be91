"""The %sprite grammar is declared once: completion, help and the parsers agree."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.error import UsageError

import sprites_jupyter.magics  # noqa: F401  (declares the subcommands, as load_ext does)
from sprites_jupyter.magic_commands.registry import parsers, subcommands

_LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][\w-]*")
# An option's line in argparse help: "  -s NAME, --sprite NAME   help text".
_OPTION_LINE = re.compile(r"^  (-\S.*?)(?:  |$)", re.MULTILINE)
_CHOICES = re.compile(r"invalid choice: 'zz-no-such-word' \(choose from (.*)\)")


def _complete(ip, line: str) -> set[str]:
    """What the extension's completion hook offers, called as IPython calls it (IPython
    adds Python names to what a hook offers, so its whole list cannot be compared)."""
    magic = line.split()[0]
    hooks = list(ip.shell.Completer.custom_completers.flat_matches(magic))
    assert len(hooks) == 1, hooks
    event = SimpleNamespace(line=line, text_until_cursor=line, command=magic,
                            symbol=line.split(" ")[-1])
    return set(hooks[0](event))


def _complete_in_shell(ip, line: str) -> set[str]:
    with provisionalcompleter():
        return {c.text for c in ip.shell.Completer.completions(line, len(line))}


def _help_options(help_text: str) -> set[str]:
    """The long options an argparse help text lists in its options section."""
    section = help_text.split("\noptions:\n", 1)[1] if "\noptions:\n" in help_text else ""
    section = section.split("\n\n", 1)[0]
    return {o for line in _OPTION_LINE.findall(section) for o in _LONG_OPTION.findall(line)}


def _choices(parser, words: list[str]) -> set[str] | None:
    """The words the parser accepts after ``words``, when it takes only fixed ones."""
    try:
        parser.parse_args([*words, "zz-no-such-word"])
    except UsageError as error:
        if match := _CHOICES.search(str(error)):
            return set(re.findall(r"'([^']*)'", match.group(1)))
    return None


def test_overview_completion_and_help_name_the_same_subcommands(ip, capsys):
    ip.ok("%sprite help")
    listed = re.findall(r"^  (\S+)  ", capsys.readouterr().out, re.MULTILINE)
    assert listed == list(subcommands())
    assert _complete(ip, "%sprite ") == set(listed)
    for name in listed:
        ip.ok(f"%sprite help {name}")
        assert f"usage: %sprite {name}" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(subcommands()))
def test_completion_offers_exactly_the_options_the_parser_accepts(ip, name):
    parser, action_parsers = parsers(name)
    assert _complete(ip, f"%sprite {name} --") == _help_options(parser.format_help())
    for action_parser in action_parsers:
        verb = action_parser.prog.rsplit(" ", 1)[1]
        offered = _complete(ip, f"%sprite {name} {verb} --")
        assert offered == _help_options(action_parser.format_help())


def test_completion_offers_exactly_the_choices_the_parser_accepts(ip, current):
    with_choices = []
    for name in subcommands():
        accepted = _choices(parsers(name)[0], [])
        if accepted is not None:
            with_choices.append(name)
            assert _complete(ip, f"%sprite {name} ") == accepted, name
    assert {"service", "policy", "python"} <= set(with_choices)


def test_policy_completion_offers_check(ip, current):
    assert {"allow", "deny", "set", "reset", "check"} <= _complete_in_shell(ip, "%sprite policy ")


def test_cell_magic_completion_offers_exactly_the_options_its_parser_accepts(ip, capsys):
    for magic in ("%%sprite_exec", "%%sprite_python"):
        ip.shell.run_line_magic("pinfo", magic)
        help_text = capsys.readouterr().out
        assert _complete(ip, f"{magic} --") == _help_options(help_text)


def test_sprite_option_is_accepted_after_an_action_word(ip, current):
    frame = ip.ok(f"%sprite policy reset -s {current}")
    assert frame.empty
    assert "--sprite" in _complete_in_shell(ip, "%sprite policy allow --")
