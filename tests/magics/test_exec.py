"""%%sprite_exec and %sprite exec against the real local server."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from sprites_jupyter.client import Command
from sprites_jupyter.widgets.logs import LogPanel
from tests.waiting import eventually, interrupt_once_running


def test_stdout_and_stderr_stream_to_their_own_streams(ip, current, capsys):
    assert ip.ok("%%sprite_exec\necho hello\necho oops >&2\n") is None
    captured = capsys.readouterr()
    assert "hello\n" in captured.out and "oops" not in captured.out
    assert "oops\n" in captured.err


def test_nonzero_exit_fails_the_cell_naming_the_code(ip, current):
    message = ip.fails("%%sprite_exec\necho broken >&2\nexit 3\n")
    assert message == f"Command failed on sprite {current}: exit code 3: broken"


def test_no_raise_and_out_variable(ip, current):
    ip.ok("%%sprite_exec --no-raise -o result\necho out; echo err >&2; exit 4\n")
    result = ip.shell.user_ns["result"]
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 4)
    assert result.duration >= 0


def test_shell_dir_and_env_options(ip, current, capsys):
    ip.ok("%%sprite_exec --shell python3 --dir /tmp --env GREETING=hi -o r\n"
          "import os\nprint(os.getcwd(), os.environ['GREETING'])\n")
    assert ip.shell.user_ns["r"].stdout.endswith("/tmp hi\n")
    assert "--env expects K=V" in ip.fails("%%sprite_exec --env NOEQUALS\ntrue\n")
    assert "did you mean '--shell'?" in ip.fails("%%sprite_exec --shelll sh\ntrue\n")


def test_one_line_form_keeps_shell_syntax(ip, current, capsys):
    ip.ok("%sprite exec -o r echo a b | tr a-z A-Z && echo \"$((40 + 2))\"")
    assert ip.shell.user_ns["r"].stdout == "A B\n42\n"
    assert "give a command" in ip.fails("%sprite exec")


def test_timeout_stops_the_command(ip, current):
    message = ip.fails("%%sprite_exec --timeout 0.5\nsleep 30\n")
    assert message == f"Command failed on sprite {current}: timed out after 0.5 s (stopped)"


def test_several_sprites_run_in_parallel_into_a_dataframe(ip, current, http, capsys):
    other = f"t-{uuid.uuid4().hex[:10]}"
    assert http.post("/v1/sprites", json={"name": other}).status_code == 201
    try:
        frame = ip.ok(f"%%sprite_exec -s {current},{other}\necho on $(hostname) ok\n")
        assert isinstance(frame, pd.DataFrame)
        assert frame.index.tolist() == [current, other]
        assert frame["exit_code"].tolist() == [0, 0]
        assert str(frame["exit_code"].dtype) == "Int64"
        out = capsys.readouterr().out
        assert f"[{current}] on " in out and f"[{other}] on " in out

        http.put(f"/v1/sprites/{current}/fs/write", params={"path": "/home/sprite/flag"},
                 content=b"x")
        message = ip.fails(f"%%sprite_exec -s {current},{other}\ncat flag\n")
        assert message.startswith(f"Command failed on 1 of 2 sprites: {other} (exit code 1")
        frame = ip.ok(f"%%sprite_exec --no-raise -s {current},{other}\ncat flag\n")
        assert frame["exit_code"].tolist() == [0, 1]
    finally:
        http.delete(f"/v1/sprites/{other}")


def test_checkpoint_before_and_rollback_on_error(ip, current, http):
    message = ip.fails("%%sprite_exec --checkpoint-before 'before risky' --rollback-on-error\n"
                       "echo junk > junk.txt\nexit 1\n")
    assert message.endswith("rolled back to v1")
    listed = http.get(f"/v1/sprites/{current}/checkpoints").json()
    assert any(c["id"] == "v1" and c["comment"] == "before risky" for c in listed)
    gone = http.get(f"/v1/sprites/{current}/fs/read", params={"path": "/home/sprite/junk.txt"})
    assert gone.status_code == 404


def test_rollback_is_not_done_when_the_command_succeeds(ip, current, http):
    ip.ok("%%sprite_exec --rollback-on-error\necho kept > kept.txt\n")
    kept = http.get(f"/v1/sprites/{current}/fs/read", params={"path": "/home/sprite/kept.txt"})
    assert kept.content == b"kept\n"


@pytest.mark.timeout(60)
def test_ctrl_c_stops_the_remote_process_and_the_panel_turns_red(ip, current, http,
                                                                  monkeypatch):
    marker = f"sleep-{uuid.uuid4().hex[:6]}"
    ip.ok("%config SpriteMagics.widgets = 'on'")
    shown = []
    monkeypatch.setattr(ip.magics.context, "show", lambda obj, **kw: shown.append(obj))
    interrupter = interrupt_once_running(Command._receive.__code__)
    result = ip.shell.run_cell(f"%%sprite_exec\nexec -a {marker} sleep 30\n")
    interrupter.join()
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    eventually(lambda: http.get(f"/v1/sprites/{current}/exec").json()["sessions"] == [],
               "the interrupted command's session to end")
    panel = next(obj for obj in shown if isinstance(obj, LogPanel))
    assert panel.state == "cancelled" and "#c62828" in panel.status.value
    journal = ip.ok("%sprite history")
    assert journal[["operation", "outcome"]].iloc[-1].tolist() == ["exec", "cancelled"]


def test_widget_output_is_republished_as_text_when_it_ends(ip, current, capsys):
    ip.ok("%config SpriteMagics.widgets = 'on'")
    ip.ok("%%sprite_exec\necho from-the-sprite\n")
    out = capsys.readouterr().out
    assert "from-the-sprite\n" in out
    assert f"{current}: done — exit code 0 in" in out
    assert "HBox(" not in out and "VBox(" not in out


@pytest.mark.timeout(60)
def test_ctrl_c_stops_every_sprite_of_a_parallel_run(ip, current, http):
    other = f"t-{uuid.uuid4().hex[:10]}"
    assert http.post("/v1/sprites", json={"name": other}).status_code == 201
    try:
        interrupter = interrupt_once_running(Command._receive.__code__, threads=2)
        result = ip.shell.run_cell(f"%%sprite_exec -s {current},{other}\nsleep 30\n")
        interrupter.join()
        assert isinstance(result.error_in_exec, KeyboardInterrupt)
        for name in (current, other):
            eventually(lambda name=name: not http.get(
                f"/v1/sprites/{name}/exec").json()["sessions"], f"{name}'s command to end")
        eventually(lambda: len([e for e in ip.magics.journal.entries
                                if e.operation == "exec"]) >= 2, "both runs to be journaled")
        outcomes = {e.sprite: e.outcome for e in ip.magics.journal.entries
                    if e.operation == "exec"}
        assert outcomes == {current: "cancelled", other: "cancelled"}
    finally:
        http.delete(f"/v1/sprites/{other}")


def test_journal_tells_the_real_outcome_of_a_failed_run_and_its_rollback(ip, current):
    ip.ok("%%sprite_exec --checkpoint-before 'before risky' --rollback-on-error --no-raise\n"
          "echo partial > partial.txt; exit 1\n")
    ip.ok("%sprite exec --no-raise cat no-such-file.txt")
    ip.ok("%sprite exec true")
    journal = ip.ok("%sprite history")
    rows = journal[journal["sprite"] == current]
    assert rows["operation"].tolist() == ["use", "exec", "checkpoint", "restore", "exec",
                                          "exec"]
    run, checkpoint, restore, cat, fine = (rows["outcome"].iloc[i] for i in range(1, 6))
    checkpoint_id = checkpoint.removeprefix("ok: ")
    assert rows["target"].iloc[2] == "before risky" and checkpoint_id.startswith("v")
    assert rows["target"].iloc[3] == checkpoint_id and restore.startswith("ok")
    assert run == f"failed: exit code 1; rolled back to {checkpoint_id}"
    assert cat.startswith("failed: exit code 1: cat:") and "no-such-file.txt" in cat
    assert fine == "ok"
