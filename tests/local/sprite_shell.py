"""Plant files the way a sprite's own processes would: a shell command run by exec, in
the sprite's home (relative paths only, so the same command works sandboxed or not);
and a server in each isolation mode for the filesystem tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import LocalServer, start_server
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


@pytest.fixture(scope="module", params=["auto", "none"], ids=["isolation-auto", "unsandboxed"],
                name="server")
def server_in_each_mode(request: pytest.FixtureRequest,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """``server`` for modules whose claims must hold in both isolation modes (import it
    into the module: it replaces the session's server there)."""
    running = start_server(tmp_path_factory.mktemp("sprites-home"),
                           args=["--isolation", request.param])
    yield running
    running.stop()
