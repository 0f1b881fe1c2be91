"""Client errors → the one line a person reads (raised as IPython's ``UsageError``).

``UsageError`` is what IPython shows without a traceback, and it still marks
the cell as failed, so papermill and nbclient runs stop loudly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from IPython.core.error import UsageError

from ..client import AuthError, NotFound, SpritesError

__all__ = ["describe_ids", "explain", "user_errors"]

_VERSION = re.compile(r"^v(\d+)$")


def describe_ids(ids: Sequence[str]) -> str:
    """A run of consecutive versions as first-en-dash-last, else a short comma list."""
    versions = sorted(int(m.group(1)) for i in ids if (m := _VERSION.match(i)))
    others = [i for i in ids if not _VERSION.match(i)]
    if versions and versions == list(range(versions[0], versions[-1] + 1)) and len(versions) > 2:
        shown = [f"v{versions[0]}\u2013v{versions[-1]}"]
    else:
        shown = [f"v{n}" for n in versions]
    shown += others
    if not shown:
        return "none"
    return ", ".join(shown[:8]) + (", …" if len(shown) > 8 else "")


def explain(error: BaseException) -> str:
    """The one-line message for an error raised while running a magic."""
    if isinstance(error, AuthError):
        return _not_authorized()
    if isinstance(error, UsageError | SpritesError):
        return str(error)
    return f"{type(error).__name__}: {error}"


# What to do when an operation's target is not there, instead of a bare "(HTTP 404)".
_SERVICES_HINT = "%sprite services lists this sprite's services"
_NOT_FOUND_HINTS = {
    "logs": _SERVICES_HINT,
    "kill": "%sprite sessions lists the running sessions",
    "get": "%sprite ls DIRECTORY lists what is there",
    "ls": "%sprite ls DIRECTORY lists what is there; relative paths start at /home/sprite",
    "put": "the directory must exist: make it with %sprite exec mkdir -p DIRECTORY",
}


def not_found_hint(operation: str) -> str:
    """The hint for a NotFound in ``operation`` (``service stop`` and the like included)."""
    if operation.startswith("service "):
        return _SERVICES_HINT
    return _NOT_FOUND_HINTS.get(operation, "")


@contextmanager
def user_errors(sprite: str = "", *, operation: str = "",
                sprite_exists: Callable[[str], bool] | None = None) -> Iterator[None]:
    """Turn client errors inside the block into one-line ``UsageError``s.

    A ``NotFound`` on a sprite-scoped call is reported as the sprite missing
    when ``sprite_exists`` says so, since that is the usual cause; else it says
    what to do, where ``operation`` has a hint.
    """
    try:
        yield
    except UsageError:
        raise
    except NotFound as error:
        if sprite and sprite_exists is not None and not sprite_exists(sprite):
            raise UsageError(f"Sprite {sprite} not found: create it with %sprite create "
                             f"{sprite} (or %sprite use {sprite} --create)") from None
        hint = not_found_hint(operation)
        if hint:
            message = explain(error).removesuffix(f" (HTTP {error.status})")
            raise UsageError(f"{message} ({hint})") from None
        raise UsageError(explain(error)) from None
    except SpritesError as error:
        raise UsageError(explain(error)) from None


def _not_authorized() -> str:
    """Names only the token setting that is set; without one, the local server's token."""
    for name in ("SPRITES_TOKEN", "SPRITE_TOKEN"):
        if os.environ.get(name):
            return f"Not authorized: check {name}"
    return ("Not authorized: the local server refused the token it was found with: run "
            "%reload_ext sprites_jupyter to find it again")
