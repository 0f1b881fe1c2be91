"""%sprite services, service …, logs — through a real shell and server."""

from __future__ import annotations

import threading
import time

import pandas as pd

from sprites_jupyter.magic_commands.log_follow import LogFollower
from sprites_jupyter.widgets.logs import LogPanel
from tests.waiting import threads_running

TICKER = "-- sh -c 'while true; do echo tick; sleep 0.2; done'"


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_service_lifecycle(ip, current, http, capsys):
    ip.ok("%sprite service create web --duration 0.5 -- python3 -u -m http.server 0")
    assert "Service web: started" in capsys.readouterr().out
    frame = ip.ok("%sprite services")
    assert isinstance(frame, pd.DataFrame) and frame.index.tolist() == ["web"]
    assert frame.loc["web", "status"] == "running"
    assert str(frame["pid"].dtype) == "Int64" and str(frame["http_port"].dtype) == "Int64"
    assert frame.loc["web", "command"] == "python3 -u -m http.server 0"

    ip.ok("%sprite service stop web")
    assert "stopped" in capsys.readouterr().out
    assert ip.ok("%sprite services").loc["web", "status"] == "stopped"
    ip.ok("%sprite service start web --duration 0.2")
    ip.ok("%sprite service restart web --duration 0.2")
    ip.ok("%sprite service signal web SIGTERM")
    assert "Sent SIGTERM to service web" in capsys.readouterr().out
    ip.ok("%sprite service delete web")
    assert ip.ok("%sprite services").empty
    assert http.get(f"/v1/sprites/{current}/services/web").status_code == 404


def test_service_create_needs_a_command_and_reports_errors(ip, current):
    assert "give the command after --" in ip.fails("%sprite service create web python3")
    assert ip.fails("%sprite service start nope").endswith("service not found: nope (%sprite "
                                                        "services lists this sprite's services)")
    message = ip.fails("%sprite service create bad --needs ghost -- true")
    assert "ghost" in message


def test_service_that_exits_at_once_fails_the_cell(ip, current):
    message = ip.fails("%sprite service create crash --duration 2 -- sh -c 'exit 3'")
    assert message == "Service crash exited with code 3: see %sprite logs crash"


def test_logs_print_the_service_output(ip, current, capsys):
    ip.ok(f"%sprite service create ticker --duration 0.5 {TICKER}")
    capsys.readouterr()
    ip.ok("%sprite logs ticker --lines 2")
    out = capsys.readouterr().out
    assert out.count("tick\n") >= 1


def test_logs_follow_runs_in_the_background_with_widgets(ip, current):
    ip.ok(f"%sprite service create ticker --duration 0.2 {TICKER}")
    ip.ok("%config SpriteMagics.widgets = 'on'")
    shown = []
    original = ip.magics.context.show
    ip.magics.context.show = lambda obj, **kw: (shown.append(obj), original(obj, **kw))
    assert ip.ok("%sprite logs ticker --follow") is None
    panel = next(obj for obj in shown if isinstance(obj, LogPanel))
    assert _wait_for(lambda: len(panel.lines) >= 3)
    ip.ok("1 + 1")
    assert panel.state == "running"
    panel.stop_button.click()
    assert _wait_for(lambda: panel.state != "running")
    assert panel.state == "done" and "stopped" in panel.status.value
    assert _wait_for(lambda: ip.magics.journal.entries[-1].operation == "logs --follow")
    ip.ok("%sprite service delete ticker")


def _followed_panel(ip, name):
    """Open ``%sprite logs NAME --follow`` as a widget panel; the panel."""
    ip.ok("%config SpriteMagics.widgets = 'on'")
    shown = []
    original = ip.magics.context.show
    ip.magics.context.show = lambda obj, **kw: (shown.append(obj), original(obj, **kw))
    ip.ok(f"%sprite logs {name} --follow")
    return next(obj for obj in shown if isinstance(obj, LogPanel))


def test_log_panel_ends_stopped_by_request_when_the_service_is_stopped(ip, current):
    ip.ok(f"%sprite service create ticker {TICKER}")
    panel = _followed_panel(ip, "ticker")
    assert _wait_for(lambda: any(line == "tick" for _, line in panel.lines))
    ip.ok("%sprite service stop ticker")
    assert _wait_for(lambda: panel.state != "running")
    assert panel.state == "stopped"
    assert "stopped by request (exit code" in panel.status.value
    assert panel.stop_button.layout.display == "none"
    assert _wait_for(lambda: _journaled(ip, "logs --follow"))
    assert _journaled(ip, "logs --follow")[0].outcome.startswith("stopped: stopped by request")


def test_log_panel_says_crashed_and_restarting_then_marks_the_new_run(ip, current, http):
    script = "echo run; while [ ! -f crash ]; do sleep 0.05; done; rm crash; exit 3"
    ip.ok(f'%sprite service create flaky -- sh -c "{script}"')
    panel = _followed_panel(ip, "flaky")
    assert _wait_for(lambda: any(line == "run" for _, line in panel.lines))
    http.put(f"/v1/sprites/{current}/fs/write", params={"path": "/home/sprite/crash"},
             content=b"").raise_for_status()
    assert _wait_for(lambda: "restarting" in panel.status.value)
    assert "crashed with exit code 3; restarting (restart 1)" in panel.status.value
    assert _wait_for(lambda: any("flaky started" in line for _, line in panel.lines))
    assert panel.state == "running" and ("stderr", "[exited with code 3]") in panel.lines
    ip.ok("%sprite service delete flaky")
    assert _wait_for(lambda: panel.state != "running", timeout=30)
    assert panel.state == "stopped"


def test_followed_backlog_marks_where_the_current_run_starts(ip, current, capsys):
    ip.ok("%sprite service create once -- sh -c 'echo one; exec sleep 600'")
    ip.ok("%sprite service restart once")
    capsys.readouterr()
    ip.ok("%sprite logs once")
    out = capsys.readouterr().out.splitlines()
    marks = [n for n, line in enumerate(out) if line.startswith("── current run, started at")]
    assert len(marks) == 1 and "one" in out[:marks[0]]
    ip.ok("%sprite service delete once")


def test_terminal_follow_ends_with_one_line_saying_how_the_service_ended(ip, current, http,
                                                                         capsys):
    ip.ok(f"%sprite service create ticker {TICKER}")
    following = LogFollower.run.__code__  # stop only once the main thread follows the log
    stopper = threading.Thread(target=lambda: (
        _wait_for(lambda: threading.main_thread().ident in threads_running(following)),
        http.post(f"/v1/sprites/{current}/services/ticker/stop").read()))
    capsys.readouterr()
    stopper.start()
    ip.ok("%sprite logs ticker --follow")
    stopper.join()
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith(f"{current}: ticker: stopped — stopped by request")
    assert sum(line.startswith(f"{current}: ticker: ") for line in out.splitlines()) == 1, out


def _journaled(ip, operation):
    return [e for e in ip.magics.journal.entries if e.operation == operation]


def _state(http, sprite, name):
    return http.get(f"/v1/sprites/{sprite}/services/{name}").json()["state"]["status"]


def test_stopping_a_stopped_service_says_so_in_one_line(ip, current, capsys):
    ip.ok(f"%sprite service create ticker {TICKER}")
    ip.ok("%sprite service stop ticker")
    capsys.readouterr()
    ip.ok("%sprite service stop ticker")
    assert capsys.readouterr().out == "Service ticker is not running (stopped); nothing to stop\n"
    assert ip.magics.journal.entries[-1].outcome == "ok: was not running"
    ip.ok("%sprite service delete ticker")


def test_service_create_returns_once_running_not_after_five_seconds(ip, current, capsys):
    ip.ok("%sprite service create slow -- sh -c 'echo first; sleep 3; echo second; "
          "exec sleep 600'")
    out = capsys.readouterr().out
    assert "Service slow: started" in out and "second" not in out
    assert ip.ok("%sprite services").loc["slow", "status"] == "running"
    ip.ok("%sprite service delete slow")


def test_log_panel_follows_a_restart_and_ends_failed_when_the_service_cannot_start(
        ip, current):
    ip.ok(f"%sprite service create ticker {TICKER}")
    panel = _followed_panel(ip, "ticker")
    assert _wait_for(lambda: any(line == "tick" for _, line in panel.lines))
    ip.ok("%sprite service restart ticker")
    assert _wait_for(lambda: any("ticker started" in line for _, line in panel.lines))
    time.sleep(3)  # longer than a stop's grace for a following start: it must not end
    assert panel.state == "running"
    ip.fails("%sprite service create ticker -- /no/such/command")
    assert _wait_for(lambda: panel.state != "running")
    assert panel.state == "failed"
    assert "exited with code 1: cannot run /no/such/command" in panel.status.value


def test_following_a_stopped_service_shows_its_log_and_ends_at_once(ip, current, capsys):
    """The server ends the stream after the log (no waiting for state polls), so the view
    ends saying the service is not running, in one line."""
    ip.ok("%sprite service create once -- sh -c 'echo last words'")
    assert _wait_for(lambda: ip.magics.context.sprite().get_service("once").state.status
                     in ("stopped", "failed"))
    ip.ok("%sprite service stop once")
    capsys.readouterr()
    ip.ok("%sprite logs once --follow")
    out = capsys.readouterr().out.splitlines()
    assert "last words" in out
    assert [line for line in out if line.startswith(f"{current}: once: ")] == [
        f"{current}: once: stopped — the service is not running"]
    ip.ok("%sprite service delete once")


COLOURED = ("-- sh -c \"printf '\\033[32mGET / 200\\033[0m\\n'; "
            "printf '\\033[1;33mWARNING\\033[0m: dev server\\n' >&2; exec sleep 600\"")


def test_the_log_panel_renders_ansi_colours_and_does_not_paint_stderr_red(ip, current):
    ip.ok(f"%sprite service create web {COLOURED}")
    panel = _followed_panel(ip, "web")
    assert _wait_for(lambda: ("stderr", "WARNING: dev server") in panel.lines)
    assert ("stdout", "GET / 200") in panel.lines
    assert _wait_for(lambda: "dev server" in panel.output.value)
    shown = panel.output.value
    assert "\x1b" not in shown and "[32m" not in shown
    assert '<span style="color:#2e7d32">GET / 200</span>' in shown
    assert '<span style="color:#f9a825;font-weight:bold">WARNING</span>: dev server' in shown
    assert '<span title="stderr"' in shown and "#c62828" not in shown
    assert "\x1b" not in panel.text()
    panel.stop_button.click()
    assert _wait_for(lambda: panel.state != "running")
    ip.ok("%sprite service delete web")
