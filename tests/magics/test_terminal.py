"""Terminal IPython in a real pseudo-terminal: what a person at a shell prompt sees."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect
import pytest

PROMPT = r"In \[\d+\]: "


@pytest.fixture
def terminal(server, tmp_path: Path):
    """``ipython`` in a pty, on the test server, with a private profile directory."""
    env = {**os.environ, "SPRITES_API_URL": server.url, "SPRITES_TOKEN": server.token,
           "IPYTHONDIR": str(tmp_path / "ipython"), "TERM": "dumb"}
    env.pop("SPRITES_JUPYTER_NO_WIDGETS", None)
    child = pexpect.spawn(sys.executable, ["-m", "IPython", "--no-banner", "--simple-prompt",
                                           "--colors=NoColor"],
                          env=env, encoding="utf-8", timeout=60, dimensions=(50, 200))
    child.expect(PROMPT)
    try:
        yield child
    finally:
        child.sendline("exit")
        child.expect(pexpect.EOF)
        child.close()


def _run(child: pexpect.spawn, line: str) -> str:
    child.sendline(line)
    child.expect(PROMPT)
    return child.before


def test_ctrl_c_on_a_followed_log_prints_one_line(terminal, sprite):
    _run(terminal, "%load_ext sprites_jupyter")
    assert "Using sprite" in _run(terminal, f"%sprite use {sprite}")
    _run(terminal, "%sprite service create ticker -- sh -c 'while true; do echo tick; "
                   "sleep 0.2; done'")
    terminal.sendline("%sprite logs ticker --follow")
    terminal.expect("tick\r\n")
    terminal.expect("tick\r\n")
    terminal.sendintr()
    terminal.expect(PROMPT)
    printed = [line.replace("^C", "").strip() for line in terminal.before.splitlines()]
    after = [line for line in printed if line and line != "tick"]
    assert after == [f"{sprite}: ticker: cancelled — stopped following (Ctrl-C)"]


def test_ctrl_c_on_a_command_shows_no_client_internals(terminal, sprite):
    _run(terminal, "%load_ext sprites_jupyter")
    _run(terminal, f"%sprite use {sprite}")
    terminal.sendline("%sprite exec for i in 1 2 3 4 5 6 7 8 9; do echo $i; sleep 1; done")
    terminal.expect("2\r\n")
    terminal.sendintr()
    terminal.expect(PROMPT)
    printed = [line.replace("^C", "").strip() for line in terminal.before.splitlines()]
    shown = [line for line in printed if line and not line.isdigit() and "%sprite exec" not in line]
    assert shown == ["KeyboardInterrupt: interrupted: %sprite history says what was stopped"], \
        "one line: no traceback through IPython or magics.py"
    assert "cancelled" in _run(terminal, "%sprite history")


def test_ctrl_c_in_a_python_cell_is_one_line(terminal, sprite):
    _run(terminal, "%load_ext sprites_jupyter")
    _run(terminal, f"%sprite use {sprite}")
    _run(terminal, "%%sprite_python\nprint('ready')\n\n")
    terminal.sendline("%%sprite_python\nimport time\nprint('sleeping', flush=True)\n"
                      "time.sleep(60)\n\n")
    terminal.expect("sleeping\r\n")
    terminal.sendintr()
    terminal.expect(PROMPT)
    printed = [line.replace("^C", "").strip() for line in terminal.before.splitlines()]
    assert [line for line in printed if line] == [
        "KeyboardInterrupt: interrupted: %sprite history says what was stopped"]
