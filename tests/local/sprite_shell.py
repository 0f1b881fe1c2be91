"""Plant files the way a sprite's own processes would: a shell command run by exec, in
the sprite's home (relative paths only, so the same command works sandboxed or not)."""

from __future__ import annotations

from tests.local.exec_ws import run


def sh(server, sprite: str, script: str) -> tuple[int, str]:
    """Run ``script`` with ``sh -c`` in the sprite; its exit code and stdout+stderr."""
    _, transcript = run(server, sprite, ["sh", "-c", script])
    last = transcript.messages[-1]
    assert isinstance(last, bytes) and last[:1] == b"\x03", transcript.messages
    output = (transcript.stream(1) + transcript.stream(2)).decode(errors="replace")
    return last[1], output


def must(server, sprite: str, script: str) -> str:
    """:func:`sh` that must succeed; its output."""
    code, output = sh(server, sprite, script)
    assert code == 0, f"{script!r} exited {code}: {output}"
    return output
