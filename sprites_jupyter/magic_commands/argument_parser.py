"""The argparse parser of the magics: errors are one line that names the nearest valid word."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Sequence

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

__all__ = ["SpriteArgumentParser"]

_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (.*)")


class SpriteArgumentParser(MagicArgumentParser):
    """A magic parser whose errors (a :class:`UsageError`, so no traceback) suggest the
    nearest of ``known_options`` or of the offered choices."""

    def __init__(self, known_options: Sequence[str] = (), **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.HelpFormatter)
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.known_options = list(known_options)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}{self._suggestion(message)}")

    def _suggestion(self, message: str) -> str:
        if match := _INVALID_CHOICE.search(message):
            choices = re.findall(r"'([^']*)'", match.group(2))
            close = difflib.get_close_matches(match.group(1), choices, n=1)
            return f"; did you mean '{close[0]}'?" if close else ""
        if match := _UNRECOGNIZED.search(message):
            options = sorted(set(self.known_options))
            for word in match.group(1).split():
                close = difflib.get_close_matches(word, options, n=1)
                if close:
                    return f"; did you mean '{close[0]}'?"
        return ""
