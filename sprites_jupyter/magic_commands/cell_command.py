"""How a cell's code reaches the sprite: in the command line when short, else on stdin.

The exec WebSocket carries the command line in its URL, and servers refuse long URLs
(the local one answers 414 over 8000 bytes; proxies in front of the real service stop
at similar sizes). A longer cell is sent on stdin to a small fixed program that reads
all of it and runs it, so a cell of any size works; its commands still see an empty
stdin, as short cells do.
"""

from __future__ import annotations

from urllib.parse import quote

INLINE_LIMIT = 4096
"""Most URL-encoded bytes of code sent in the command line."""

_FLAG = {"bash": "-c", "sh": "-c", "python3": "-c"}
_FROM_STDIN = {
    "bash": 'eval "$(cat)"',
    "sh": 'eval "$(cat)"',
    "python3": 'import sys; exec(compile(sys.stdin.read(), "<cell>", "exec"))',
}


def cell_command(shell: str, code: str) -> tuple[list[str], bytes | None]:
    """The argv that runs ``code`` with ``shell``, and the bytes to send on its stdin."""
    if len(quote(code, safe="")) <= INLINE_LIMIT:
        return [shell, _FLAG[shell], code], None
    return [shell, _FLAG[shell], _FROM_STDIN[shell]], code.encode()
