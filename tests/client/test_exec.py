"""Exec over WebSocket through the client: run, streaming commands, sessions, interrupts."""

from __future__ import annotations

import os
import threading

import pytest

from sprites_jupyter.client import (
    Command,
    ExecError,
    ExecTimeout,
    InvalidRequest,
    NotFound,
    OutputChunk,
    Sprite,
)
from tests.waiting import eventually, interrupt_once_running


def test_run_collects_stdout_stderr_and_exit_code(sp: Sprite) -> None:
    result = sp.run("sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 3)
    assert result.duration > 0 and not result.ok


def test_run_feeds_stdin_and_honours_env_and_dir(sp: Sprite) -> None:
    assert sp.run("cat", stdin="é" * 3).stdout == "ééé"
    big = os.urandom(300_000).hex()
    assert sp.run("wc", "-c", stdin=big).stdout.strip() == str(len(big))
    result = sp.run("sh", "-c", 'echo "$GREETING"; pwd',
                    env={"GREETING": "hi", "PATH": "/usr/bin:/bin"}, dir="/tmp")
    assert result.stdout.splitlines()[0] == "hi"
    assert result.stdout.splitlines()[1].endswith("/tmp")


def test_a_command_without_stdin_sees_end_of_input(sp: Sprite) -> None:
    assert sp.run("cat").stdout == ""


def test_check_raises_exec_error_with_tails(sp: Sprite) -> None:
    with pytest.raises(ExecError) as caught:
        sp.run("sh", "-c", "echo partial; echo boom >&2; exit 7", check=True)
    error = caught.value
    assert error.exit_code == 7 and error.stdout_tail == "partial\n"
    assert error.stderr_tail == "boom\n" and "boom" in str(error) and "7" in str(error)


def test_timeout_kills_the_command(sp: Sprite) -> None:
    with pytest.raises(ExecTimeout, match="killed"):
        sp.run("sleep", "30", timeout=0.5)
    eventually(lambda: sp.list_sessions() == [], "the killed command's session to end")


def test_bad_argv_is_refused_before_any_request(sp: Sprite) -> None:
    with pytest.raises(ValueError, match="strings"):
        sp.run()


def test_missing_executable_reports_a_failure_not_a_hang(sp: Sprite) -> None:
    try:
        result = sp.run("definitely-not-a-command-xyz")
    except InvalidRequest:
        return
    assert result.exit_code != 0


def test_command_streams_output_before_it_ends(sp: Sprite) -> None:
    """The first line arrives while the process still waits for our input."""
    with sp.command("sh", "-c", "echo first; read line; echo got $line; echo oops >&2") as cmd:
        chunks = iter(cmd)
        assert next(chunks) == OutputChunk("stdout", b"first\n")
        assert cmd.exit_code is None
        cmd.write("abc\n")
        rest = list(chunks)
    assert b"".join(c.data for c in rest if c.stream == "stdout") == b"got abc\n"
    assert b"".join(c.data for c in rest if c.stream == "stderr") == b"oops\n"
    assert cmd.exit_code == 0


def test_close_stdin_ends_input(sp: Sprite) -> None:
    cmd = sp.command("cat")
    cmd.write(b"abc")
    cmd.close_stdin()
    assert b"".join(chunk.data for chunk in cmd) == b"abc"
    assert cmd.wait() == 0
    cmd.close()


def test_signal_and_kill(sp: Sprite) -> None:
    cmd = sp.command("sh", "-c", "trap 'echo term; exit 5' TERM; echo ready; "
                                 "while true; do sleep 0.1; done", stdin=False)
    assert next(iter(cmd)).data == b"ready\n"
    cmd.signal("SIGTERM")
    assert cmd.wait(timeout=20) == 5
    killed = sp.command("sleep", "30")
    assert killed.session_id
    killed.kill()
    assert killed.wait(timeout=20) == 137


def test_tty_command(sp: Sprite) -> None:
    with sp.command("sh", "-c", "tty >/dev/null && echo is-a-tty; exit 4", tty=True) as cmd:
        output = b"".join(chunk.data for chunk in cmd)
    assert b"is-a-tty" in output and cmd.exit_code == 4 and cmd.tty


def test_sessions_list_attach_and_kill(sp: Sprite) -> None:
    cmd = sp.command("sh", "-c", "echo before-attach; sleep 30", stdin=False)
    assert next(iter(cmd)).data == b"before-attach\n"
    sid = cmd.session_id
    sessions = {s.id: s for s in sp.list_sessions()}
    assert sid in sessions and not sessions[sid].tty and sessions[sid].created.tzinfo

    attached = sp.attach(sid)
    assert attached.session_id == sid
    replay = next(iter(attached))
    assert replay.data == b"before-attach\n"

    events = list(sp.kill_session(sid, signal="TERM", timeout=5))
    assert events[0].type == "signal" and events[-1].type == "complete"
    assert events[0].signal == "SIGTERM" and events[-1].exit_code == 143
    assert attached.wait(timeout=20) == 143 and cmd.wait(timeout=20) == 143
    attached.close()
    cmd.close()
    assert sid not in {s.id for s in sp.list_sessions()}
    with pytest.raises(NotFound):
        sp.attach(sid)
    with pytest.raises(NotFound):
        sp.kill_session("999999")


def test_close_kills_a_command_it_started_but_detach_leaves_it(sp: Sprite) -> None:
    owned = sp.command("sleep", "30")
    sid = owned.session_id
    owned.close()
    assert owned.exit_code == 137
    assert sid not in {s.id for s in sp.list_sessions()}

    detached = sp.command("sh", "-c", "sleep 30", tty=True)
    sid = detached.session_id
    detached.detach()
    assert sid in {s.id for s in sp.list_sessions()}
    list(sp.kill_session(sid, signal="KILL", timeout=5))


def _interrupt_once_waiting() -> threading.Thread:
    """Ctrl-C once the main thread waits for a command's output: one that lands earlier
    (while the exec is still being opened) has no handle to stop the process with."""
    return interrupt_once_running(Command._receive.__code__)


def test_keyboard_interrupt_while_iterating_stops_the_remote_process(sp: Sprite) -> None:
    cmd = sp.command("sh", "-c", "echo ready; sleep 30", stdin=False)
    chunks = iter(cmd)
    assert next(chunks).data == b"ready\n"
    sid = cmd.session_id
    timer = _interrupt_once_waiting()
    with pytest.raises(KeyboardInterrupt):
        next(chunks)
    timer.join()
    assert cmd.exit_code == 130
    assert sid not in {s.id for s in sp.list_sessions()}


def test_keyboard_interrupt_escalates_to_sigkill_when_sigint_is_ignored(sp: Sprite) -> None:
    cmd = sp.command("sh", "-c", "trap '' INT; echo ready; sleep 30", stdin=False)
    assert next(iter(cmd)).data == b"ready\n"
    timer = _interrupt_once_waiting()
    with pytest.raises(KeyboardInterrupt):
        cmd.wait()
    timer.join()
    assert cmd.exit_code == 137


def test_keyboard_interrupt_during_run_stops_the_remote_process(sp: Sprite) -> None:
    timer = _interrupt_once_waiting()
    with pytest.raises(KeyboardInterrupt):
        sp.run("sleep", "30")
    timer.join()
    eventually(lambda: sp.list_sessions() == [], "the interrupted command's session to end")


def test_keyboard_interrupt_in_a_with_block_stops_the_remote_process(sp: Sprite) -> None:
    with pytest.raises(KeyboardInterrupt), sp.command("sleep", "30") as cmd:
        assert isinstance(cmd, Command)
        raise KeyboardInterrupt
    assert cmd.exit_code in (130, 137)
    assert sp.list_sessions() == []


def _writer_threads() -> int:
    return sum(t.name == "sprites-websocket-writer" for t in threading.enumerate())


def test_a_short_interactive_command_starts_no_writer_thread(sp: Sprite) -> None:
    """Writes the socket takes at once go straight to it; the writer thread (for a peer
    that stops reading) is only started once a write would block."""
    before = _writer_threads()
    with sp.command("head", "-n", "2", stdin=True) as cmd:
        cmd.write("one\n")
        cmd.write(b"two\n")
        output = b"".join(chunk.data for chunk in cmd)
        assert _writer_threads() == before
    assert (output, cmd.exit_code) == (b"one\ntwo\n", 0)
