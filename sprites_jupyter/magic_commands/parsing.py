"""The argument grammar of ``%sprite`` and ``%%sprite_exec`` (argparse, as IPython's magics).

Parsers raise :class:`~IPython.core.error.UsageError` (one line, no traceback)
and suggest the nearest subcommand or option when a word is misspelt.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import re
import shlex
from collections.abc import Iterator

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

__all__ = ["SETTLE_SECONDS", "SUBCOMMANDS", "build_exec_parser", "build_python_parser",
           "full_help", "overview", "parse_exec_line", "parse_python_line", "parse_sprite_line",
           "subcommand_help", "subcommand_parser"]

_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (.*)")
# One shell word of the raw line: quoted runs and unquoted characters, glued together.
_WORD = re.compile(r"""(?:"(?:\\.|[^"\\])*"|'[^']*'|[^\s"'])+""")


class SpriteArgumentParser(MagicArgumentParser):
    """A magic parser whose errors name the nearest valid word."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.HelpFormatter)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}{self._suggestion(message)}")

    def _options(self) -> Iterator[str]:
        stack: list[argparse.ArgumentParser] = [self]
        while stack:
            parser = stack.pop()
            for action in parser._actions:
                yield from action.option_strings
                if isinstance(action, argparse._SubParsersAction):
                    stack.extend(action.choices.values())

    def _suggestion(self, message: str) -> str:
        if match := _INVALID_CHOICE.search(message):
            choices = re.findall(r"'([^']*)'", match.group(2))
            close = difflib.get_close_matches(match.group(1), choices, n=1)
            return f"; did you mean '{close[0]}'?" if close else ""
        if match := _UNRECOGNIZED.search(message):
            options = sorted(set(self._options()))
            for word in match.group(1).split():
                close = difflib.get_close_matches(word, options, n=1)
                if close:
                    return f"; did you mean '{close[0]}'?"
        return ""


def _sprite_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--sprite", metavar="NAME",
                        help="act on this sprite instead of the current one")


def _exec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--sprite", metavar="NAME[,NAME…]",
                        help="run on these sprites (in parallel) instead of the current one")
    parser.add_argument("--shell", choices=("bash", "sh", "python3"), default="bash",
                        help="interpreter for the code (default: bash)")
    parser.add_argument("--dir", metavar="D", help="working directory on the sprite")
    parser.add_argument("--env", metavar="K=V", action="append", default=[],
                        help="environment variable (repeatable)")
    parser.add_argument("--timeout", metavar="S", type=float,
                        help="stop the command after S seconds")
    parser.add_argument("-o", "--out", metavar="VAR",
                        help="store the result (stdout, stderr, exit_code, duration) in VAR")
    parser.add_argument("--no-raise", action="store_true",
                        help="do not fail the cell on a non-zero exit code")
    parser.add_argument("--checkpoint-before", metavar="COMMENT",
                        help="take a checkpoint with this comment first")
    parser.add_argument("--rollback-on-error", action="store_true",
                        help="restore that checkpoint if the command fails")


@functools.cache
def build_exec_parser() -> SpriteArgumentParser:
    """The parser of ``%%sprite_exec`` (the cell body is the code), built on first use."""
    parser = SpriteArgumentParser(
        prog="%%sprite_exec",
        description="Run the cell on the sprite, streaming stdout and stderr as they "
                    "arrive. A non-zero exit fails the cell unless --no-raise.")
    _exec_options(parser)
    return parser


# How long service create/start/restart watch a service after it started by default:
# long enough to see a command that dies at once fail, short enough not to wait.
SETTLE_SECONDS = 1.0


@functools.cache
def build_python_parser() -> SpriteArgumentParser:
    """The parser of ``%%sprite_python`` (the cell body is Python code), built on first
    use."""
    parser = SpriteArgumentParser(
        prog="%%sprite_python",
        description="Run the cell in this kernel's persistent Python session on the "
                    "sprite: variables survive between cells, output streams live, the "
                    "last expression and display() come back as rich output, an exception "
                    "fails the cell with the remote traceback.")
    _sprite_option(parser)
    parser.add_argument("--timeout", metavar="S", type=float,
                        help="interrupt the cell after S seconds (the state stays)")
    parser.add_argument("--no-raise", action="store_true",
                        help="show a remote exception without failing the cell")
    parser.add_argument("--new", action="store_true",
                        help="start a fresh interpreter first (the old variables are gone)")
    parser.add_argument("--python", metavar="PATH",
                        help="the interpreter to start the session on (a venv's or conda's "
                             "bin/python, Python 3.8+; default: SpriteMagics.python, else "
                             "python3)")
    parser.add_argument("--push", metavar="A,B",
                        help="send these kernel variables to the session before the cell")
    parser.add_argument("--pull", metavar="C,D",
                        help="bring these session variables into the kernel after the cell")
    return parser


PYTHON_ACTIONS = ("status", "vars", "reset", "stop", "attach")

# Every subcommand and its one-line summary, in the order help lists them.
SUBCOMMANDS: dict[str, str] = {
    "status": "backend, current sprite and its status (also plain %sprite)",
    "help": "help on a subcommand: %sprite help SUBCOMMAND",
    "use": "select the current sprite: use NAME [--create]",
    "list": "all sprites (DataFrame): list [--prefix P] [--all]",
    "create": "create a sprite: create NAME [--exist-ok]",
    "destroy": "delete a sprite and everything in it: destroy NAME --yes",
    "exec": "run one command line: exec [options] CMD …",
    "checkpoint": "take a checkpoint: checkpoint [-m COMMENT]",
    "checkpoints": "list checkpoints (DataFrame): checkpoints [--auto] [--history ID]",
    "restore": "restore a checkpoint: restore ID [--yes]",
    "browse": "the checkpoint browser",
    "diff": "what changed (DataFrame): diff A [B] [-- PATH …] [--stat] [--file PATH]",
    "show": "a file as it was in a checkpoint: show A:PATH [-o VAR]",
    "services": "list services (DataFrame)",
    "service": "create|start|stop|restart|delete|signal a service",
    "logs": "a service's logs: logs NAME [--follow [S]] [--lines N]",
    "policy": "network policy (DataFrame) | allow D | deny D | set VAR | reset | check D",
    "put": "upload: put LOCAL REMOTE",
    "get": "download: get REMOTE LOCAL",
    "ls": "list a directory (DataFrame): ls [PATH | A:PATH]",
    "sessions": "exec sessions (DataFrame)",
    "kill": "stop an exec session: kill ID [--signal SIG]",
    "history": "what this kernel did (DataFrame)",
    "python": "the sprite's Python session: python [status|vars|reset|stop|attach [ID]]",
    "push": "kernel variables into the Python session: push NAME … [--as REMOTE]",
    "pull": "Python session variables into the kernel: pull NAME … [--as LOCAL]",
    "url": "the sprite's URL and who may open it: url [--public | --private]",
    "open": "link to a web app in the sprite: open [PORT | SERVICE] [--embed [HEIGHT]]",
    "forward": "forward a local port to the sprite: forward PORT [--local L] | stop PORT|--all",
    "forwards": "this kernel's port forwards (DataFrame)",
}


def _add_service(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                    parser_class=SpriteArgumentParser)
    create = actions.add_parser("create", help="define and start: create NAME [options] "
                                               "-- CMD ARGS…")
    create.add_argument("name")
    create.add_argument("--port", type=int, help="HTTP port the sprite URL routes to")
    create.add_argument("--needs", default="", help="services to start first (a,b)")
    create.add_argument("--env", metavar="K=V", action="append", default=[])
    create.add_argument("--dir", metavar="D")
    create.add_argument("--duration", type=float, metavar="S",
                        help=f"seconds of output to show after starting (default "
                             f"{SETTLE_SECONDS:g}: return once it runs, or has failed)")
    for name in ("start", "restart"):
        action = actions.add_parser(name, help=f"{name} NAME [--duration S]")
        action.add_argument("name")
        action.add_argument("--duration", type=float, metavar="S",
                            help=f"seconds of output to show after starting (default "
                                 f"{SETTLE_SECONDS:g}: return once it runs, or has failed)")
    actions.add_parser("stop", help="stop NAME (a stopped service is left as it is)"
                       ).add_argument("name")
    actions.add_parser("delete", help="delete NAME").add_argument("name")
    signal = actions.add_parser("signal", help="signal NAME SIG")
    signal.add_argument("name")
    signal.add_argument("signal")


def _add_policy(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION",
                                    parser_class=SpriteArgumentParser)
    actions.add_parser("allow", help="allow DOMAIN").add_argument("domain")
    actions.add_parser("deny", help="deny DOMAIN").add_argument("domain")
    actions.add_parser("set", help="set VAR (a list of rule dicts)").add_argument("variable")
    actions.add_parser("reset", help="remove every rule")
    actions.add_parser("check", help="check DOMAIN or URL: allowed or not, and by which "
                                     "rule").add_argument("domain", metavar="DOMAIN_OR_URL")


@functools.cache
def subcommand_parser(name: str) -> SpriteArgumentParser:
    """The parser of ``%sprite NAME``, built on first use (loading the extension builds
    none of them)."""
    parser = SpriteArgumentParser(prog=f"%sprite {name}", description=SUBCOMMANDS[name])
    add = parser.add_argument
    if name == "help":
        add("topic", nargs="?", help="a subcommand")
    elif name == "use":
        add("name")
        add("--create", action="store_true", help="create the sprite if it does not exist")
    elif name == "list":
        add("--prefix", help="only names starting with this")
        add("--all", action="store_true",
            help="every column (id, organization, updated_at too)")
    elif name == "create":
        add("name")
        add("--exist-ok", action="store_true",
            help="succeed (and say so) when the sprite already exists")
    elif name == "destroy":
        add("name")
        add("--yes", action="store_true", help="confirm: the sprite cannot be recovered")
    elif name == "exec":
        _exec_options(parser)
        add("command", nargs=argparse.REMAINDER, help="the command line")
    elif name == "checkpoint":
        add("-m", "--comment", default="", help="what this checkpoint is")
    elif name == "checkpoints":
        add("--auto", action="store_true", help="include automatic checkpoints")
        add("--history", metavar="ID", help="only checkpoints descending from ID")
    elif name == "restore":
        add("id")
        add("--yes", action="store_true", help="do not ask for confirmation")
    elif name == "diff":
        add("a", metavar="A", help="the checkpoint to compare")
        add("b", metavar="B", nargs="?",
            help="the checkpoint to compare it with (default: the sprite now)")
        add("--stat", action="store_true",
            help="a one-line summary and counts by top-level directory")
        add("--file", metavar="PATH", help="a unified diff of this one file")
    elif name == "show":
        add("target", metavar="A:PATH", help="checkpoint and file, e.g. v1:/etc/hosts")
        add("-o", "--out", metavar="VAR", help="keep the file's bytes in VAR")
    elif name == "service":
        _add_service(parser)
    elif name == "logs":
        add("name")
        add("--follow", nargs="?", type=float, const=float("inf"), metavar="S",
            help="keep following (for S seconds, or until stopped)")
        add("--lines", type=int, metavar="N", help="only the last N lines")
    elif name == "policy":
        _add_policy(parser)
    elif name in ("put", "get"):
        add("source")
        add("destination")
    elif name == "ls":
        add("path", nargs="?", default="/home/sprite",
            help="a path in the sprite, or A:PATH for how it was in checkpoint A")
    elif name == "kill":
        add("id")
        add("--signal", default="SIGTERM", help="signal to send first (default SIGTERM)")
    elif name == "python":
        add("action", nargs="?", default="status", choices=PYTHON_ACTIONS)
        add("id", nargs="?", help="attach: the session id (default: the newest)")
    elif name in ("push", "pull"):
        add("names", nargs="+", metavar="NAME")
        add("--as", dest="rename", metavar="NAME", help="the name on the other side")
    elif name == "url":
        access = parser.add_mutually_exclusive_group()
        access.add_argument("--public", action="store_true", help="anyone may open the URL")
        access.add_argument("--private", action="store_true",
                            help="only with the token / a signed-in browser (the default)")
    elif name == "open":
        add("target", nargs="?", metavar="PORT|SERVICE",
            help="a port, or a service with an http_port (default: what the URL serves)")
        add("--embed", nargs="?", type=int, const=480, metavar="HEIGHT",
            help="show the app in the cell (HEIGHT pixels, default 480)")
        add("--forward", action="store_true",
            help="go through a forwarded port even if the browser could reach the URL "
                 "(a remote kernel)")
    elif name == "forward":
        add("port", metavar="PORT|stop", help="the sprite's port, or stop")
        add("stop_port", nargs="?", metavar="PORT", help="with stop: the port to stop")
        add("--local", type=int, metavar="L", help="local port (default: a free one)")
        add("--all", action="store_true", help="with stop: stop every forward")
    if name not in ("help", "list", "create", "destroy", "use", "history", "status", "exec",
                    "forwards"):
        _sprite_option(parser)
    return parser


def _unknown(word: str) -> UsageError:
    close = difflib.get_close_matches(word, SUBCOMMANDS, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return UsageError(f"Unknown subcommand '{word}': {hint}(%sprite help lists them)")


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as error:
        raise UsageError(f"Cannot parse '{line}': {error}") from None


def _raw_rest(line: str, words_before: int) -> str:
    """The raw text of ``line`` after its first ``words_before`` shell words."""
    words = list(_WORD.finditer(line))
    return line[words[words_before].start():].strip() if words_before < len(words) else ""


def parse_sprite_line(line: str) -> argparse.Namespace:
    """Parse a ``%sprite`` line into a namespace with ``subcommand`` set."""
    argv = _split(line)
    if not argv:
        return argparse.Namespace(subcommand="status")
    name, rest = argv[0], argv[1:]
    if name in ("-h", "--help"):
        name, rest = "help", []
    if name not in SUBCOMMANDS:
        raise _unknown(name)
    command: list[str] = []
    if name == "service" and rest[:1] == ["create"]:
        if "--" not in rest:
            raise UsageError("%sprite service create: give the command after --, "
                             "e.g. service create web --port 8000 -- python3 -m http.server")
        cut = rest.index("--")
        rest, command = rest[:cut], rest[cut + 1:]
        if not command:
            raise UsageError("%sprite service create: the command after -- is missing")
    paths: list[str] = []
    if name == "diff" and "--" in rest:
        cut = rest.index("--")
        rest, paths = rest[:cut], rest[cut + 1:]
    args = subcommand_parser(name).parse_args(rest)
    args.subcommand = name
    if name == "exec":
        if not args.command:
            raise UsageError("%sprite exec: give a command, e.g. %sprite exec ls -l")
        taken = len(argv) - len(args.command)
        args.command = _raw_rest(line, taken).removeprefix("--").strip()
    if name == "service" and args.action == "create":
        args.command = command
    if name == "diff":
        args.paths = paths
    return args


def parse_exec_line(line: str) -> argparse.Namespace:
    """Parse the options of a ``%%sprite_exec`` line."""
    return build_exec_parser().parse_args(_split(line))


def parse_python_line(line: str) -> argparse.Namespace:
    """Parse the options of a ``%%sprite_python`` line."""
    return build_python_parser().parse_args(_split(line))


def subcommand_help(topic: str | None) -> str:
    """Help text for one subcommand, or the overview."""
    if not topic:
        return overview()
    if topic not in SUBCOMMANDS:
        raise _unknown(topic)
    return _parser_help(subcommand_parser(topic))


def _parser_help(parser: argparse.ArgumentParser) -> str:
    """A parser's help followed by that of each of its actions (service create, …)."""
    parts = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parts += [_parser_help(sub) for sub in dict.fromkeys(action.choices.values())]
    return "\n".join(parts)


def overview() -> str:
    """The ``%sprite?`` text: every subcommand with its summary."""
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {summary}" for name, summary in SUBCOMMANDS.items())
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
    sections = [_parser_help(subcommand_parser(name)) for name in SUBCOMMANDS
                if name != "help"]
    return "\n".join([overview(), *sections])
