"""%%sprite_python against the real local server: state, rich output, errors, Ctrl-C,
ended sessions and attach, all checked through the display data IPython publishes."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from sprites_jupyter.magic_commands.python import session as python_session
from sprites_jupyter.magic_commands.python.cells import RemotePythonError
from sprites_jupyter.magic_commands.python.lifecycle import sessions_of
from sprites_jupyter.widgets.logs import LogPanel

from .python_helpers import run_captured


def test_state_survives_between_cells_and_the_last_expression_is_shown(ip, current):
    ip.ok("%%sprite_python\nimport os\ncounter = 41\n")
    result, shown, _, _ = run_captured(ip, "%%sprite_python\ncounter += 1\ncounter\n")
    assert result.success
    assert shown == [{"text/plain": "42"}]
    _, shown, _, _ = run_captured(ip, "%%sprite_python\ncounter;\n")
    assert shown == []
    _, shown, _, _ = run_captured(ip, "%%sprite_python\nos.getpid() == __import__('os')"
                                      ".getpid(), counter\n")
    assert shown == [{"text/plain": "(True, 42)"}]


def test_rich_reprs_and_display_of_two_objects_arrive_as_mime_bundles(ip, current):
    _check_rich_reprs(ip)


def test_without_ipython_on_the_sprite_the_agent_formats_reprs_itself(ip, current,
                                                                     stdlib_python):
    _check_rich_reprs(ip)
    _, shown, _, _ = run_captured(ip, "%%sprite_python\nimport sys\n"
                                      "sys.executable, list(range(3))\n")
    assert shown == [{"text/plain": f"('{stdlib_python}', [0, 1, 2])"}]


def _check_rich_reprs(ip):
    result, shown, _, _ = run_captured(ip, (
        "%%sprite_python\n"
        "class Card:\n"
        "    def _repr_html_(self): return '<b>card</b>'\n"
        "    def _repr_markdown_(self): return '*card*'\n"
        "class Data:\n"
        "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
        "        return {'application/json': {'a': 1}, 'text/plain': 'Data(a=1)'}\n"
        "display(Card(), Data())\n"
        "Card()\n"))
    assert result.success
    first, second, last = shown
    assert first["text/html"] == "<b>card</b>" and first["text/markdown"] == "*card*"
    assert "text/plain" in first
    assert second["application/json"] == {"a": 1} and second["text/plain"] == "Data(a=1)"
    assert last["text/html"] == "<b>card</b>"


def test_modules_in_the_working_directory_import_as_in_a_notebook(ip, current):
    ip.ok("%%sprite_exec\necho 'ANSWER = 42' > helpers_for_test.py\n")
    _, shown, _, _ = run_captured(ip, "%%sprite_python\nimport helpers_for_test\n"
                                      "helpers_for_test.ANSWER\n")
    assert shown == [{"text/plain": "42"}]


def test_output_streams_live_including_subprocesses(ip, current):
    result, shown, out, err = run_captured(ip, (
        "%%sprite_python\n"
        "import os, sys\n"
        "print('from print')\n"
        "print('to stderr', file=sys.stderr)\n"
        "os.system('echo from a subprocess')\n"
        "None\n"))
    assert result.success and shown == []
    assert "from print\n" in out and "from a subprocess\n" in out
    assert "to stderr\n" in err and "to stderr" not in out


def test_output_reaches_the_log_panel_while_the_cell_still_runs(ip, current, http,
                                                                monkeypatch):
    ip.ok("%config SpriteMagics.widgets = 'on'")
    shown = []
    monkeypatch.setattr(ip.magics.context, "show", lambda obj, **kw: shown.append(obj))

    def answer_once_printed() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            panels = [obj for obj in shown if isinstance(obj, LogPanel)]
            if panels and ("stdout", "waiting") in panels[0].lines:
                http.put(f"/v1/sprites/{current}/fs/write", content=b"go",
                         params={"path": "/home/sprite/answer", "workingDir": "/"})
                return
            time.sleep(0.05)

    responder = threading.Thread(target=answer_once_printed)
    responder.start()
    ip.ok("%%sprite_python\nimport os, time\nprint('waiting')\n"
          "deadline = time.monotonic() + 60\n"
          "while not os.path.exists('answer'):\n"
          "    assert time.monotonic() < deadline, 'the output never reached the kernel'\n"
          "    time.sleep(0.05)\nprint('answered')\n")
    responder.join()
    (panel,) = [obj for obj in shown if isinstance(obj, LogPanel)]
    assert panel.lines == [("stdout", "waiting"), ("stdout", "answered")]
    assert panel.state == "done"


def test_a_dataframe_shows_as_html(library_ip):
    _, shown, _, _ = run_captured(library_ip, "%%sprite_python\nimport pandas as pd\n"
                                      "pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\n")
    (bundle,) = shown
    assert "<table" in bundle["text/html"] and "text/plain" in bundle


def test_a_matplotlib_figure_comes_back_as_png(library_ip):
    _, shown, _, _ = run_captured(library_ip, "%%sprite_python\nimport matplotlib.pyplot as plt\n"
                                      "plt.plot([1, 2, 3])\nplt.title('t');\n")
    import base64

    (bundle,) = [b for b in shown if "image/png" in b]
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")


def test_an_exception_fails_the_cell_with_remote_frames_and_keeps_state(ip, current):
    ip.ok("%%sprite_python\nkept = 'still here'\ndef divide(n):\n    return n / 0\n")
    result = ip.shell.run_cell("%%sprite_python\nx = 1\ndivide(x)\n")
    assert not result.success
    error = result.error_in_exec
    assert isinstance(error, RemotePythonError)
    assert str(error) == "ZeroDivisionError: division by zero"
    rendered = "\n".join(error._render_traceback_())
    assert "divide(x)" in rendered and "return n / 0" in rendered
    assert "python_agent" not in rendered and "sprites_jupyter" not in rendered
    _, shown, _, _ = run_captured(ip, "%%sprite_python\nkept\n")
    assert shown == [{"text/plain": "'still here'"}]
    assert ip.ok("%%sprite_python --no-raise\nraise ValueError('shown, not raised')\n") is None
    assert ip.magics.journal.entries[-1].outcome == "failed: ValueError: shown, not raised"


def test_a_syntax_error_fails_the_cell(ip, current):
    result = ip.shell.run_cell("%%sprite_python\ndef broken(:\n")
    assert isinstance(result.error_in_exec, RemotePythonError)
    assert result.error_in_exec.ename == "SyntaxError"


@pytest.mark.timeout(120)
def test_real_sigint_stops_a_busy_loop_and_keeps_state(ip, current, http):
    ip.ok("%%sprite_python\nbefore = 'kept'\n")

    def interrupt_once_looping() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = http.get(f"/v1/sprites/{current}/fs/read",
                                params={"path": "/home/sprite/looping", "workingDir": "/"})
            if response.status_code == 200:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.1)

    for body in ("    pass\n", "    print('x' * 200)\n"):
        sender = threading.Thread(target=interrupt_once_looping)
        sender.start()
        result, _, _, _ = run_captured(ip, "%%sprite_python\nopen('looping', 'w').close()\n"
                                           f"while True:\n{body}")
        sender.join()
        assert isinstance(result.error_in_exec, KeyboardInterrupt), body
        _, shown, _, _ = run_captured(ip, "%%sprite_python\nimport os\nos.remove('looping')\n"
                                          "before\n")
        assert shown == [{"text/plain": "'kept'"}]
        outcomes = [e.outcome for e in ip.magics.journal.entries if e.operation == "python"]
        assert outcomes[-2:] == ["cancelled", "ok"]


def test_timeout_interrupts_the_cell_and_keeps_state(ip, current):
    ip.ok("%%sprite_python\nvalue = 7\n")
    message = ip.fails("%%sprite_python --timeout 1\nimport time\nwhile True:\n"
                       "    time.sleep(0.05)\n")
    assert message == (f"Cell timed out after 1 s on sprite {current}: interrupted; the "
                       "session and its variables remain")
    _, shown, _, _ = run_captured(ip, "%%sprite_python\nvalue\n")
    assert shown == [{"text/plain": "7"}]


def test_a_restore_ends_the_session_with_one_line_then_a_fresh_one_starts(ip, current):
    checkpoint = ip.ok("%sprite checkpoint -m before-python")
    ip.ok("%%sprite_python\nloaded = [1, 2, 3]\n")
    ip.ok(f"%sprite restore {checkpoint.id} --yes")
    message = ip.fails("%%sprite_python\nloaded\n")
    assert message == (f"The Python session on sprite {current} ended (the sprite was "
                       f"restored to {checkpoint.id}): its variables are gone; run the cell "
                       "again to start a fresh one")
    result = ip.shell.run_cell("%%sprite_python\nloaded\n")
    assert isinstance(result.error_in_exec, RemotePythonError)
    assert result.error_in_exec.ename == "NameError"


def test_a_restore_made_elsewhere_is_named_too(ip, current, http):
    checkpoint = ip.ok("%sprite checkpoint -m elsewhere")
    ip.ok("%%sprite_python\nloaded = 1\n")
    response = http.post(f"/v1/sprites/{current}/checkpoints/{checkpoint.id}/restore")
    assert response.status_code == 200, response.text
    message = ip.fails("%%sprite_python\nloaded\n")
    assert f"ended (the sprite was restored to {checkpoint.id})" in message


def test_a_killed_session_is_reported_not_silently_replaced(ip, current, http):
    ip.ok("%%sprite_python\nx = 1\n")
    session = sessions_of(ip.magics.context)[current]
    killed = http.post(f"/v1/sprites/{current}/exec/{session.session_id}/kill",
                       params={"signal": "SIGKILL", "timeout": "0s"})
    assert killed.status_code == 200
    deadline = time.monotonic() + 30
    while session.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    message = ip.fails("%%sprite_python\nx\n")
    assert message.startswith(f"The Python session on sprite {current} ended (its process "
                              "was killed (exit code 137))")
    ip.ok("%%sprite_python\nx = 2\n")


def test_stop_says_when_no_session_was_running(ip, current, http, capsys):
    ip.ok("%sprite python stop")
    assert capsys.readouterr().out == (f"No Python session on sprite {current} in this "
                                       "kernel: nothing to stop\n")
    ip.ok("%%sprite_python\nx = 1\n")
    session = sessions_of(ip.magics.context)[current]
    killed = http.post(f"/v1/sprites/{current}/exec/{session.session_id}/kill",
                       params={"signal": "SIGKILL", "timeout": "0s"})
    assert killed.status_code == 200
    session.wait_ended(30)
    capsys.readouterr()

    ip.ok("%sprite python stop")

    assert capsys.readouterr().out == (f"No Python session was running on sprite {current}: "
                                       "its process had already ended, so there was nothing "
                                       "to stop\n")
    assert current not in sessions_of(ip.magics.context)


def test_an_interpreter_that_dies_in_a_cell_fails_it_with_one_line(ip, current):
    ip.ok("%%sprite_python\nx = 1\n")
    message = ip.fails("%%sprite_python\nimport os\nos._exit(3)\n")
    assert message == (f"The Python session on sprite {current} ended (its process exited "
                       "with code 3): its variables are gone; run the cell again to start a "
                       "fresh one")
    _, shown, _, _ = run_captured(ip, "%%sprite_python\n'fresh'\n")
    assert shown == [{"text/plain": "'fresh'"}]


def test_new_starts_fresh_on_purpose(ip, current):
    ip.ok("%%sprite_python\nold = 1\n")
    result = ip.shell.run_cell("%%sprite_python --new\nold\n")
    assert isinstance(result.error_in_exec, RemotePythonError)
    assert result.error_in_exec.ename == "NameError"


def test_attach_after_a_new_shell_finds_the_running_session(ip, current):
    ip.ok("%%sprite_python\nsurvivor = 'from the first kernel'\n")
    pid = sessions_of(ip.magics.context)[current].info["pid"]
    ip.ok("%unload_ext sprites_jupyter")
    ip.ok("%load_ext sprites_jupyter")
    ip.ok(f"%sprite use {current}")
    ip.ok("%sprite python attach")
    assert sessions_of(ip.magics.context)[current].info["pid"] == pid
    _, shown, _, _ = run_captured(ip, "%%sprite_python\nsurvivor\n")
    assert shown == [{"text/plain": "'from the first kernel'"}]
    assert "already attached" in ip.fails("%sprite python attach")


def test_a_new_kernel_starting_its_own_session_is_told_about_the_running_one(ip, current):
    ip.ok("%%sprite_python\nleft = 'behind'\n")
    first = sessions_of(ip.magics.context)[current].session_id
    ip.ok("%unload_ext sprites_jupyter")
    ip.ok("%load_ext sprites_jupyter")
    ip.ok(f"%sprite use {current}")
    result, _, _, err = run_captured(ip, "%%sprite_python\n'new'\n")
    assert result.success
    assert (f"1 other session is running there (session {first} is the newest): %sprite "
            "python stop this one and %sprite python attach") in err


def test_status_vars_reset_and_stop(ip, current):
    assert "No Python session" in ip.fails("%sprite python")
    ip.ok("%%sprite_python\nnumbers = [1, 2, 3]\ntext = 'abc'\n")
    status = ip.ok("%sprite python")
    assert status["sprite"] == current and status["alive"] and status["memory"] > 0
    frame = ip.ok("%sprite python vars")
    assert frame.loc["numbers", "type"] == "list" and frame.loc["numbers", "size"] == "3 items"
    assert frame.loc["text", "type"] == "str"
    ip.ok("%sprite python reset")
    assert "numbers" not in ip.ok("%sprite python vars").index
    ip.ok("%sprite python stop")
    assert "No Python session" in ip.fails("%sprite python")


def test_a_sprite_without_the_interpreter_gets_one_line(ip, current, monkeypatch):
    monkeypatch.setattr(python_session, "PYTHON", "python3-absent-here")
    message = ip.fails("%%sprite_python\n1 + 1\n")
    assert message.startswith(f"Sprite {current} has no python3-absent-here: install Python")


def test_a_changed_agent_is_uploaded_beside_the_old_one(ip, current, http, monkeypatch):
    ip.ok("%%sprite_python\npass\n")
    original = python_session._agent_sources()
    old_dir = python_session.agent_dir()
    changed = {**original, "python_agent.py": original["python_agent.py"] + b"\n# v2\n"}
    monkeypatch.setattr(python_session, "_agent_sources", lambda: changed)
    new_dir = python_session.agent_dir()
    assert new_dir != old_dir
    ip.ok("%%sprite_python --new\nimport sys\nagent = sys.argv[0]\n")
    _, shown, _, _ = run_captured(ip, "%%sprite_python\nagent\n")
    assert shown == [{"text/plain": repr(f"{new_dir}/python_agent.py")}]
    listing = http.get(f"/v1/sprites/{current}/fs/list",
                       params={"path": f"/home/sprite/{new_dir}", "workingDir": "/"}).json()
    uploaded = sorted(e["name"] for e in listing["entries"] if e["name"].endswith(".py"))
    assert uploaded == sorted(python_session.AGENT_FILES)


def test_cells_are_journaled_with_outcome(ip, current):
    ip.ok("%%sprite_python\n1 + 1\n")
    ip.shell.run_cell("%%sprite_python\nraise KeyError('k')\n")
    journal = ip.ok("%sprite history")
    rows = journal[journal.operation == "python"]
    assert rows.outcome.tolist()[-2:] == ["ok", "error: KeyError: 'k'"]
    assert rows.target.tolist()[-2:] == ["1 + 1", "raise KeyError('k')"]
    assert (rows.duration >= 0).all()


def test_bad_options_are_one_line(ip, current):
    assert "did you mean '--timeout'?" in ip.fails("%%sprite_python --timout 3\n1\n")
    assert "--as renames one variable" in ip.fails("%sprite push a b --as c")
    assert "invalid choice: 'frobnicate'" in ip.fails("%sprite python frobnicate")


def test_completion_of_options_actions_and_kernel_variables(ip, current):
    from IPython.core.completer import provisionalcompleter

    def complete(line: str) -> list[str]:
        with provisionalcompleter():
            return [c.text for c in ip.shell.Completer.completions(line, len(line))]

    assert "--pull" in complete("%%sprite_python --pu")
    assert "--rollback-on-error" not in complete("%%sprite_python --ro")
    assert "attach" in complete("%sprite python att")
    ip.shell.user_ns["frame_to_send"] = 1
    assert "frame_to_send" in complete("%sprite push frame_to")


def test_a_cell_ending_in_a_figure_shows_the_image_without_a_figure_text_line(library_ip):
    """Only the picture, as the inline backend shows it, not ``<Figure size …>`` first."""
    _, shown, out, _ = run_captured(library_ip, "%%sprite_python\nimport matplotlib.pyplot "
                                    "as plt\nfig, ax = plt.subplots()\nax.plot([1, 2])\nfig\n")
    assert len(shown) == 1 and "image/png" in shown[0], shown
    assert "<Figure" not in out
