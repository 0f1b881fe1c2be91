"""Cells of any size run: a long cell goes on stdin, not in the WebSocket URL."""

from __future__ import annotations

import pytest

from sprites_jupyter.magic_commands.cell_command import INLINE_LIMIT

MEGABYTE = 1024 * 1024


def _lines(total: int) -> str:
    """About ``total`` bytes of distinct text lines (shell- and Python-safe)."""
    line = "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ {:08d}\n"
    return "".join(line.format(n) for n in range(total // len(line.format(0)) + 1))


def test_a_one_megabyte_bash_cell_runs_whole(ip, current):
    data = _lines(MEGABYTE)
    ip.ok("%%sprite_exec -o r\n"
          "cat > big.txt <<'END_OF_DATA'\n" + data + "END_OF_DATA\n"
          "wc -c < big.txt\n"
          "read -r line || echo stdin-is-empty\n"
          "echo last-line-ran\n")
    result = ip.shell.user_ns["r"]
    assert result.stdout.split() == [str(len(data)), "stdin-is-empty", "last-line-ran"]


@pytest.mark.parametrize("shell", ["sh", "python3"])
def test_long_cells_in_other_shells(ip, current, shell):
    data = _lines(200_000)
    if shell == "sh":
        code = f"cat > big.txt <<'END'\n{data}END\nwc -c < big.txt\nexit 3\n"
    else:
        code = (f'data = """{data}"""\nimport sys\nprint(len(data), __name__)\n'
                "sys.exit(3)\n")
    assert len(code) > INLINE_LIMIT
    ip.ok(f"%%sprite_exec --shell {shell} --no-raise -o r\n{code}")
    result = ip.shell.user_ns["r"]
    assert result.exit_code == 3
    expected = str(len(data)) if shell == "sh" else f"{len(data)} __main__"
    assert result.stdout.strip() == expected


def test_a_long_cell_fails_the_way_a_short_one_does(ip, current):
    message = ip.fails("%%sprite_exec\n" + "# filler\n" * 2000 + "echo broken >&2\nexit 7\n")
    assert message == f"Command failed on sprite {current}: exit code 7: broken"
