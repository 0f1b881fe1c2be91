"""Cells that outlive their kernel: a kernel process SIGKILLed mid-cell, a new one attaches."""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from sprites_jupyter.config import NO_WIDGETS_ENV
from sprites_jupyter.magic_commands.kept_output import follow_to_end
from sprites_jupyter.magic_commands.python.cells import RemotePythonError
from tests.waiting import eventually, threads_running

from .python_helpers import run_captured

_KERNEL = textwrap.dedent("""
    import sys
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "sprites_jupyter")
    shell.run_line_magic("config", "SpriteMagics.cells_outlive_kernel = True")
    shell.run_line_magic("config", "SpriteMagics.cell_output_kept = " + sys.argv[3])
    shell.run_line_magic("sprite", "use " + sys.argv[1])
    shell.run_cell(sys.argv[2])
""")

GATE = "/home/sprite/go-on"  # the kept cells wait for it after their fifth line (both)

_CELL = ("%%sprite_exec\n"
         "for i in $(seq 1 30); do echo line-$i; echo warn-$i >&2; sleep 0.1\n"
         f"  if [ $i = 5 ]; then until [ -e {GATE} ]; do sleep 0.05; done; fi; done\n"
         "exit 4")


_PYTHON_CELL = textwrap.dedent("""\
    %%sprite_python
    import sys, time
    import os
    class Card:
        def _repr_html_(self):
            return '<b>card</b>'
        def __repr__(self):
            return 'Card()'
    class Picture:
        def _repr_png_(self):
            return b'\\x89PNG\\r\\n\\x1a\\npixels'
        def __repr__(self):
            return 'Picture()'
    for i in range(1, 11):
        print(f'before-{i}')
        time.sleep(0.1)
        while i == 5 and not os.path.exists('/home/sprite/go-on'):
            time.sleep(0.05)
    display(Card(), Picture())
    for i in range(1, 21):
        print(f'after-{i}')
        print(f'warn-{i}', file=sys.stderr)
        time.sleep(0.1)
    kept = i
    raise ValueError('the end')
""")


def _kill_mid_cell(server, sprite: str, cell: str, marker: str,
                   kept: int = 16 * 1024 * 1024) -> None:
    """Run ``cell`` in a kernel process of its own (keeping ``kept`` bytes of its output)
    and SIGKILL it once it printed ``marker``."""
    env = {**os.environ, "SPRITES_API_URL": server.url, "SPRITES_TOKEN": server.token,
           NO_WIDGETS_ENV: "1"}
    kernel = subprocess.Popen([sys.executable, "-c", _KERNEL, sprite, cell, str(kept)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        seen = []
        for line in kernel.stdout:
            seen.append(line.strip())
            if marker in line:
                break
        assert marker in seen, seen
        kernel.send_signal(signal.SIGKILL)
        kernel.wait(timeout=30)
    finally:
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait()
        kernel.stdout.close()


def _open_gate(http, sprite: str) -> None:
    response = http.put(f"/v1/sprites/{sprite}/fs/write", content=b"",
                        params={"path": GATE, "workingDir": "/"})
    assert response.status_code == 200, response.text


def _open_gate_once_following(http, sprite: str) -> threading.Thread:
    """Let the kept cell go on once this kernel follows it live (past the replay), so
    that the follow, not only the replay, is what the test sees."""
    main = threading.main_thread().ident

    def open_gate() -> None:
        with contextlib.suppress(AssertionError):  # then the test fails on what it sees
            eventually(lambda: main in threads_running(follow_to_end.__code__),
                       "the attach to follow the cell", limit=60)
        _open_gate(http, sprite)
    opener = threading.Thread(target=open_gate, name="open-gate")
    opener.start()
    return opener


@pytest.fixture
def killed_mid_cell(server, current):
    """A kernel process that ran ``_CELL`` and was SIGKILLed after its fifth line; the
    cell waits there until the test opens the gate."""
    _kill_mid_cell(server, current, _CELL, "line-5")
    return current


@pytest.fixture
def killed_mid_python_cell(server, current):
    """A kernel process that ran ``_PYTHON_CELL`` and was SIGKILLed after its fifth line,
    before the cell displayed anything; the cell waits there until the test opens the gate."""
    _kill_mid_cell(server, current, _PYTHON_CELL, "before-5")
    return current


def test_a_new_kernel_replays_the_whole_cell_then_follows_it_to_its_status(
        ip, http, killed_mid_cell, capsys):
    opener = _open_gate_once_following(http, killed_mid_cell)
    message = ip.fails("%sprite attach")
    opener.join()

    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("line-")]
    assert lines == [f"line-{i}" for i in range(1, 31)]
    warnings = [line for line in err.splitlines() + out.splitlines()
                if line.startswith("warn-")]
    assert warnings == [f"warn-{i}" for i in range(1, 31)]
    assert message.startswith("Cell ") and message.endswith(
        f"on sprite {killed_mid_cell} exited with code 4")


def test_running_lists_the_kept_cell_and_attach_by_its_id_replays_it_again(
        ip, http, killed_mid_cell, capsys):
    frame = ip.ok("%sprite running")
    assert list(frame.columns) == ["kind", "started", "first_line", "running", "exit_code"]
    assert len(frame) == 1 and frame["kind"].iloc[0] == "exec"
    assert frame["first_line"].iloc[0].startswith("for i in $(seq 1 30)")
    assert bool(frame["running"].iloc[0]) is True
    opener = _open_gate_once_following(http, killed_mid_cell)
    ip.fails("%sprite attach")
    opener.join()
    frame = ip.ok("%sprite running")
    assert (bool(frame["running"].iloc[0]), frame["exit_code"].iloc[0]) == (False, 4)
    capsys.readouterr()

    ip.fails(f"%sprite attach {frame.index[0]}")

    assert "line-1\n" in capsys.readouterr().out


def test_attach_without_a_kept_cell_says_how_to_keep_one(ip, current):
    message = ip.fails("%sprite attach")
    assert message == (f"No cell has been kept on sprite {current}: turn "
                       "SpriteMagics.cells_outlive_kernel on, or give a session id")


@pytest.mark.parametrize("cell", [
    "%%sprite_exec\nfor i in $(seq 1 2000); do echo row-$i; done",
    "%%sprite_python\nfor i in range(1, 2001):\n    print(f'row-{i}')\n",
], ids=["exec", "python"])
def test_kept_output_is_bounded_and_the_replay_says_what_was_dropped(ip, current, capsys,
                                                                     cell):
    ip.ok("%config SpriteMagics.cells_outlive_kernel = True")
    ip.ok("%config SpriteMagics.cell_output_kept = 4096")
    ip.ok(cell)
    capsys.readouterr()

    ip.ok("%sprite attach")

    out, err = capsys.readouterr()
    rows = [line for line in out.splitlines() if line.startswith("row-")]
    assert rows[-1] == "row-2000" and 0 < len(rows) < 2000
    assert rows == [f"row-{i}" for i in range(2001 - len(rows), 2001)]
    assert "bytes of this cell's oldest output were dropped" in err + out


def test_a_kept_cell_stopped_by_its_timeout_stops_on_the_sprite(ip, current):
    ip.ok("%config SpriteMagics.cells_outlive_kernel = True")
    ip.ok("%%sprite_exec --timeout 1 --no-raise\nsleep 30; echo never")
    frame = ip.ok("%sprite running")
    assert not bool(frame["running"].iloc[0])


def test_a_long_kept_cell_arrives_on_stdin_and_replays(ip, current, capsys):
    ip.ok("%config SpriteMagics.cells_outlive_kernel = True")
    body = "".join(f"echo long-{i} # {'x' * 60}\n" for i in range(100))
    ip.ok("%%sprite_exec\n" + body)
    capsys.readouterr()
    ip.ok("%sprite attach")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("long-")]
    assert lines == [f"long-{i}" for i in range(100)]


def test_a_new_kernel_replays_a_python_cell_with_its_display_then_follows_it_to_its_error(
        ip, http, killed_mid_python_cell, capsys):
    sprite = killed_mid_python_cell
    opener = _open_gate_once_following(http, sprite)
    result = ip.shell.run_cell("%sprite python attach")
    opener.join()

    error = result.error_in_exec
    assert isinstance(error, RemotePythonError)
    assert (error.ename, error.evalue) == ("ValueError", "the end")
    assert any("raise ValueError('the end')" in line for line in error.traceback)
    out, err = capsys.readouterr()
    shown = [line for line in out.splitlines()
             if line.startswith(("before-", "after-")) or line in ("Card()", "Picture()")]
    assert shown == ([f"before-{i}" for i in range(1, 11)] + ["Card()", "Picture()"]
                     + [f"after-{i}" for i in range(1, 21)])
    assert [line for line in err.splitlines() if line.startswith("warn-")] == [
        f"warn-{i}" for i in range(1, 21)]
    assert f"Attached to the Python session on sprite {sprite}" in out
    _, bundles, _, _ = run_captured(ip, "%%sprite_python\nkept\n")
    assert bundles == [{"text/plain": "20"}]


def test_a_kept_python_cell_is_listed_and_replays_its_rich_output_once_ended(
        ip, http, killed_mid_python_cell, capsys):
    frame = ip.ok("%sprite running")
    assert list(frame["kind"]) == ["python"]
    assert frame["first_line"].iloc[0] == "import sys, time"
    _open_gate(http, killed_mid_python_cell)
    deadline = time.monotonic() + 60
    while bool(frame["running"].iloc[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
        frame = ip.ok("%sprite running")
    assert (bool(frame["running"].iloc[0]), frame["exit_code"].iloc[0]) == (False, 1)

    result, bundles, out, _ = run_captured(ip, "%sprite attach")

    assert isinstance(result.error_in_exec, RemotePythonError)
    assert [bundle.get("text/html") for bundle in bundles] == ["<b>card</b>", None]
    picture = base64.b64decode(bundles[1]["image/png"])
    assert picture == b"\x89PNG\r\n\x1a\npixels"
    assert out.index("before-10") < out.index("after-1\n") and "after-20" in out
    capsys.readouterr()
    ip.ok("%sprite python attach")
    assert "before-1" not in capsys.readouterr().out  # attach replays only a missed cell


def test_a_python_cell_seen_to_its_end_is_not_replayed_by_attach(ip, current, capsys):
    ip.ok("%config SpriteMagics.cells_outlive_kernel = True")
    ip.ok("%%sprite_python\nprint('shown live')\n")
    assert "shown live" in capsys.readouterr().out
    ip.ok("%unload_ext sprites_jupyter")
    ip.ok("%load_ext sprites_jupyter")
    ip.ok(f"%sprite use {current}")

    ip.ok("%sprite python attach")

    out = capsys.readouterr().out
    assert "shown live" not in out and "Attached to the Python session" in out
    assert list(ip.ok("%sprite running")["kind"]) == ["python"]


def test_a_new_kept_cell_deletes_the_oldest_ended_ones_past_fifty(ip, current):
    ip.ok("%config SpriteMagics.cells_outlive_kernel = True")
    ip.ok("%%sprite_exec\necho first")
    first = ip.ok("%sprite running").index[0]
    runner = next(entry.name for entry in ip.magics.context.sprite(current).list_dir(
        "/home/sprite/.sprites_jupyter") if entry.name.startswith("runner-"))
    later = [f"9000000000{i}-00000a" for i in range(100, 151)]  # started after `first`
    ip.ok("%%sprite_exec\ncd ~/.sprites_jupyter\nfor i in $(seq 100 150); do "
          f"python3 {runner} run cells/9000000000$i-00000a 4096 exec x -- true; done")

    frame = ip.ok("%sprite running")

    assert first not in frame.index
    assert set(later) <= set(frame.index)
    looping = frame[frame["first_line"].str.startswith("cd ~")]
    assert len(looping) == 1 and len(frame) == len(later) + 1  # it ran throughout: kept


def test_attach_to_a_cell_id_that_is_not_one_says_what_ids_are(ip, current):
    message = ip.fails("%sprite attach ../../etc")
    assert message == ("'../../etc' is neither an exec session's id (%sprite sessions) nor "
                       "a kept cell's (%sprite running)")
    assert "keeps no cell 1-abcdef" in ip.fails("%sprite attach 1-abcdef")


def test_attach_with_a_timeout_detaches_and_the_python_cell_goes_on(
        ip, http, killed_mid_python_cell, capsys):
    ip.ok("%sprite attach --timeout 0.5")

    assert "detached; it keeps running" in "".join(capsys.readouterr())
    assert bool(ip.ok("%sprite running")["running"].iloc[0])
    opener = _open_gate_once_following(http, killed_mid_python_cell)
    result = ip.shell.run_cell("%sprite python attach")
    opener.join()
    assert isinstance(result.error_in_exec, RemotePythonError)
    assert "after-20" in capsys.readouterr().out


def test_a_python_cell_whose_output_cannot_be_kept_still_runs_and_says_so(
        ip, current, capsys):
    ip.ok("%%sprite_exec\nmkdir -p ~/.sprites_jupyter && touch ~/.sprites_jupyter/cells")
    ip.ok("%config SpriteMagics.cells_outlive_kernel = True")

    ip.ok("%%sprite_python\nprint('ran anyway')\n")

    out, err = capsys.readouterr()
    assert "ran anyway" in out
    assert "[this cell's output is not kept on the sprite: " in err


def test_following_a_cell_that_outruns_its_bound_drops_the_oldest_and_keeps_order(
        ip, server, current, capsys):
    cell = ("%%sprite_exec\necho waiting\n"  # for the new kernel's follower, then a burst
            "until cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -q ' follo[w] /'; do\n"
            "  sleep 0.05\ndone 2>/dev/null\n"
            "seq 1 20000 | sed 's/.*/row-&-end/'\n"
            "sleep 0.5\necho last")
    _kill_mid_cell(server, current, cell, "waiting", kept=4096)
    cell_id = ip.ok("%sprite running").index[0]
    capsys.readouterr()

    ip.ok("%sprite attach")

    out, err = capsys.readouterr()
    rows = [int(found[1]) for line in out.splitlines()
            if (found := re.fullmatch(r"row-([0-9]+)-end", line))]
    assert 0 < len(rows) < 20000 and rows == sorted(set(rows)) and rows[-1] == 20000
    # a line cut by a drop ends there: whole rows are consecutive except once per notice
    breaks = sum(1 for before, after in itertools.pairwise(rows) if after != before + 1)
    assert breaks <= err.count("dropped")
    assert all(re.fullmatch(r"row-[0-9]+-end|row-[0-9]*(-(en?)?)?", line)
               for line in out.splitlines() if line.startswith("row-"))
    assert out.splitlines()[-2:] == ["last", f"{current}: cell {cell_id}: done — exit code 0"]
    assert "dropped while following" in err
