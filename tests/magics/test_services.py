"""%sprite services, service …, logs — through a real shell and server."""

from __future__ import annotations

import time

import pandas as pd

from sprites_jupyter.widgets.logs import LogPanel

TICKER = "-- sh -c 'while true; do echo tick; sleep 0.2; done'"


def _wait_for(predicate, timeout=15.0):
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
    assert "404" in ip.fails("%sprite service start nope")
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
