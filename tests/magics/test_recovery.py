"""The auto-started local server is killed (kill -9) under a kernel: the next magics work."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from sprites_jupyter.config import NO_WIDGETS_ENV
from sprites_jupyter.local import launcher
from sprites_jupyter.local.storage.home import read_server_file

from .conftest import Shell


def _kill_9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    for process in launcher._started:
        if process.pid == pid:
            process.wait(timeout=60)
            return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@pytest.fixture
def local_ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Shell, Path]]:
    """The extension with no token: it starts the local server of its own home."""
    for name in ("SPRITES_TOKEN", "SPRITE_TOKEN", "SPRITES_API_URL", "SPRITES_LOCAL_TOKEN",
                 NO_WIDGETS_ENV):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("SPRITES_LOCAL_HOME", str(home))
    shell = InteractiveShell.instance()
    shell.config.pop("SpriteMagics", None)
    shell.run_line_magic("load_ext", "sprites_jupyter")
    try:
        yield Shell(shell), home
    finally:
        shell.run_line_magic("unload_ext", "sprites_jupyter")
        shell.config.pop("SpriteMagics", None)
        record = read_server_file(home)
        if record:
            _kill_9(record["pid"])


def test_a_magic_after_kill_9_of_the_auto_started_server_succeeds(local_ip, capsys) -> None:
    ip, home = local_ip
    ip.ok("%sprite use survivor --create")
    first = read_server_file(home)["pid"]
    _kill_9(first)
    ip.ok("%%sprite_exec -o r\necho still-here\n")
    assert ip.shell.user_ns["r"].stdout == "still-here\n"
    assert read_server_file(home)["pid"] != first
    _kill_9(read_server_file(home)["pid"])
    frame = ip.ok("%sprite list")
    assert frame.index.tolist() == ["survivor"] or "survivor" in frame.to_string()
    assert "SPRITES_API_URL" not in capsys.readouterr().err
