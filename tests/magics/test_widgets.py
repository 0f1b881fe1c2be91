"""The widgets and their text fallbacks, driven with real models and real ipywidgets."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import pytest

from sprites_jupyter.client import (
    Checkpoint,
    KillEvent,
    ServiceLogEvent,
    StreamError,
    StreamMessage,
)
from sprites_jupyter.widgets.browser import (
    CheckpointActions,
    CheckpointBrowser,
    checkpoint_table_text,
    describe_age,
)
from sprites_jupyter.widgets.logs import LogPanel, LogText
from sprites_jupyter.widgets.progress import ProgressBar, ProgressText, describe_event, track

STAGES = [StreamMessage("info", "Creating checkpoint..."),
          StreamMessage("info", "Saving filesystem state..."),
          StreamMessage("complete", "Checkpoint v3 created")]


def _failing(events, error):
    yield from events
    raise error


def test_progress_bar_steps_and_turns_green():
    bar = ProgressBar("Checkpoint demo")
    assert list(track(STAGES, bar)) == STAGES
    assert bar.steps == 3 and bar.bar.value == 3
    assert bar.bar.bar_style == "info"
    bar.succeed("v3 created")
    assert bar.bar.bar_style == "success" and bar.state == "done"
    assert "v3 created" in bar.label.value and bar.clock.value.endswith(" s")


def test_progress_bar_turns_red_with_the_error():
    bar = ProgressBar("Restore demo")
    error_event = StreamMessage("error", error="disk full")
    with pytest.raises(StreamError):
        list(track(_failing([STAGES[0], error_event], StreamError("disk full")), bar))
    assert bar.state == "failed" and bar.bar.bar_style == "danger"
    assert "disk full" in bar.label.value


def test_progress_bar_ctrl_c_is_red_cancelled():
    bar = ProgressBar("Restore demo")
    with pytest.raises(KeyboardInterrupt):
        list(track(_failing(STAGES[:1], KeyboardInterrupt()), bar))
    assert bar.state == "cancelled" and bar.bar.bar_style == "danger"
    assert "cancelled" in bar.label.value


def test_progress_text_prints_the_same_stages():
    out = io.StringIO()
    view = ProgressText("Checkpoint demo", stream=out)
    list(track(STAGES, view))
    view.succeed("v3 created")
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["Checkpoint demo: Creating checkpoint...",
                         "Checkpoint demo: Saving filesystem state...",
                         "Checkpoint demo: Checkpoint v3 created"]
    assert lines[3].startswith("Checkpoint demo: v3 created (")


def test_describe_event_covers_service_and_kill_events():
    assert describe_event(ServiceLogEvent("exit", exit_code=1)) == "exited (exit code 1)"
    assert describe_event(ServiceLogEvent("stdout", data="hello\n")) == "hello"
    assert describe_event(KillEvent("signal", message="sent SIGTERM")) == "sent SIGTERM"
    assert describe_event(ServiceLogEvent("complete")) == "complete"


def test_log_panel_keeps_a_bounded_buffer_and_colours_stderr():
    panel = LogPanel("demo", max_lines=5, min_interval=0)
    panel.write("stdout", b"".join(b"line %d\n" % i for i in range(100)))
    panel.write("stderr", b"bad <tag>\n")
    assert panel.lines[-1] == ("stderr", "bad <tag>")
    assert [text for _, text in panel.lines[:4]] == ["line 96", "line 97", "line 98", "line 99"]
    assert len(panel.lines) == 5
    assert "96 earlier lines not shown" in panel.output.value
    assert '<span title="stderr" style="color:#5d4037">bad &lt;tag&gt;</span>' in panel.output.value


def test_log_panel_coalesces_redraws():
    panel = LogPanel("demo", max_lines=50, min_interval=60)
    for i in range(1000):
        panel.write("stdout", f"{i}\n".encode())
    assert panel.redraws == 1
    panel.finish("done")
    assert panel.redraws == 2
    assert panel.lines[-1] == ("stdout", "999")
    assert "done" in panel.status.value


def test_log_panel_shows_late_lines_after_the_interval():
    # an interval long enough that no pause of a loaded machine between the two writes
    # outlasts it (the second would then be drawn at once)
    panel = LogPanel("demo", min_interval=1.0)
    panel.write("stdout", b"first\n")
    panel.write("stdout", b"second\n")
    assert "second" not in panel.output.value
    deadline = time.monotonic() + 30
    while "second" not in panel.output.value and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "second" in panel.output.value


def test_log_panel_decodes_utf8_split_across_chunks_and_partial_lines():
    panel = LogPanel("demo", min_interval=0)
    data = "naïve\n".encode()
    panel.write("stdout", data[:3])
    panel.write("stdout", data[3:])
    panel.write("stdout", b"no newline")
    assert panel.lines == [("stdout", "naïve"), ("stdout", "no newline")]


def test_log_panel_stop_button_calls_back_and_finish_turns_red():
    stopped = []
    panel = LogPanel("demo", on_stop=lambda: stopped.append(True))
    panel.stop_button.click()
    assert stopped == [True] and panel.stop_button.disabled
    panel.finish("cancelled", "stopped by Ctrl-C")
    assert "cancelled" in panel.status.value and "#c62828" in panel.status.value


def test_log_text_writes_streams_through_and_prefixes_lines():
    out, err = io.StringIO(), io.StringIO()
    view = LogText("demo", prefix="[demo] ", stdout=out, stderr=err)
    view.write("stdout", b"a\nb")
    view.write("stderr", b"oops\n")
    view.write("stdout", b"c\n")
    assert out.getvalue() == "[demo] a\n[demo] bc\n"
    assert err.getvalue() == "[demo] oops\n"


def _checkpoints(now):
    return [Checkpoint("v2", now - timedelta(minutes=3), "tuned"),
            Checkpoint("v1", now - timedelta(hours=2), "baseline"),
            Checkpoint("v0", now - timedelta(days=1), "Base (clean) state")]


def test_text_fallback_table_and_ages():
    now = datetime.now(UTC)
    text = checkpoint_table_text(_checkpoints(now))
    assert text.splitlines()[0].split() == ["v2", "3", "min", "ago", "tuned"]
    assert text.endswith("Restore with: %sprite restore ID")
    assert describe_age(now - timedelta(seconds=5), now) == "5 s ago"
    assert checkpoint_table_text([]).startswith("No checkpoints yet")


class Recorder:
    """Actions that record calls instead of talking to a server (unit test of the UI)."""

    def __init__(self):
        self.listed = _checkpoints(datetime.now(UTC))
        self.calls = []

    def actions(self):
        def get(cp):
            if cp not in {c.id for c in self.listed}:
                raise LookupError(f"Checkpoint {cp} not found")
            return next(c for c in self.listed if c.id == cp)

        def restore(cp, view):
            self.calls.append(("restore", cp))
            for event in track(STAGES, view):
                assert all(b.disabled for b in self.browser.buttons), "buttons enabled"
                del event
            view.succeed("restored")
            return "auto-1"

        def create(comment, view):
            self.calls.append(("create", comment))
            self.listed.insert(0, Checkpoint("v3", datetime.now(UTC), comment))
            view.succeed("v3 created")
            return "v3"

        return CheckpointActions(list=lambda: list(self.listed), get=get, restore=restore,
                                 create=create)


def test_browser_confirms_then_restores_in_the_background():
    recorder = Recorder()
    browser = recorder.browser = CheckpointBrowser("demo", recorder.actions())
    assert list(browser.restore_buttons) == ["v2", "v1", "v0"]
    browser.restore_buttons["v1"].click()
    assert recorder.calls == []
    assert browser.confirm_box.layout.display == "flex"
    assert "v1" in browser.confirm_text.value and "baseline" in browser.confirm_text.value
    assert "2 h ago" in browser.confirm_text.value and "stops every running process" in \
        browser.confirm_text.value
    browser.confirm_button.click()
    browser.wait(10)
    assert recorder.calls == [("restore", "v1")]
    assert "auto-1" in browser.message.value
    assert browser.confirm_box.layout.display == "none"
    assert not any(b.disabled for b in browser.buttons)
    assert browser.progress_box.children[0].children[0].bar_style == "success"


def test_browser_cancel_and_stale_listing():
    recorder = Recorder()
    browser = recorder.browser = CheckpointBrowser("demo", recorder.actions())
    browser.restore_buttons["v2"].click()
    browser.cancel_button.click()
    assert browser.confirm_box.layout.display == "none" and browser.pending is None

    browser.restore_buttons["v2"].click()
    recorder.listed.pop(0)
    browser.confirm_button.click()
    browser.wait(10)
    assert recorder.calls == []
    assert "Checkpoint v2 not found" in browser.message.value
    assert list(browser.restore_buttons) == ["v1", "v0"]


def test_browser_new_checkpoint_and_refresh():
    recorder = Recorder()
    browser = recorder.browser = CheckpointBrowser("demo", recorder.actions())
    browser.comment.value = "after tuning"
    browser.new_button.click()
    browser.wait(10)
    assert recorder.calls == [("create", "after tuning")]
    assert next(iter(browser.restore_buttons)) == "v3"
    assert "Created" in browser.message.value and browser.comment.value == ""
    recorder.listed.pop(0)
    browser.refresh_button.click()
    browser.wait(10)
    assert list(browser.restore_buttons) == ["v2", "v1", "v0"]


def test_saved_notebooks_get_the_state_as_text_not_the_widget_repr():
    bar = ProgressBar("Checkpoint demo")
    list(track(STAGES[:2], bar))
    bar.succeed("v3 created")
    bundle = bar._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].splitlines() == [
        "Checkpoint demo: Creating checkpoint...",
        "Checkpoint demo: Saving filesystem state...",
        f"Checkpoint demo: v3 created ({bar.clock.value})"]

    ended = []
    panel = LogPanel("demo", min_interval=0)
    panel.on_end = lambda: ended.append(panel._repr_mimebundle_()["text/plain"])
    panel.write("stdout", b"one\ntwo\n")
    panel.finish("failed", "exit code 2")
    assert ended == ["one\ntwo\ndemo: failed — exit code 2"]


def test_browser_ages_tick_and_auto_ids_do_not_wrap():
    recorder = Recorder()
    recorder.listed = [Checkpoint("auto-1764625200000", datetime.now(UTC) - timedelta(seconds=3),
                                  "before restore", is_auto=True)]
    browser = CheckpointBrowser("demo", recorder.actions(), age_tick=0.05)
    try:
        label, _ = browser.ages[0]
        first = label.value
        assert first.endswith(" s ago")
        deadline = time.monotonic() + 30
        while label.value == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert label.value != first and label.value.endswith(" s ago")
        id_cell = browser.rows.children[0].children[0]
        assert "white-space:nowrap" in id_cell.value and "auto-1764625200000" in id_cell.value
    finally:
        browser.close()


def test_finished_log_panel_hides_its_stop_button():
    panel = LogPanel("demo", min_interval=0)
    assert panel.stop_button.layout.display != "none"
    panel.finish("done", "exit code 0 in 0.1 s")
    assert panel.stop_button.layout.display == "none"


def test_a_view_that_ends_in_its_cell_is_left_as_html_without_widget_state(ip, current):
    """A checkpoint's progress bar ends while its cell runs: its display is re-published as
    static HTML and its widgets are closed, so a saved notebook keeps no state for them.
    A followed log ends after its cell and stays a live widget."""
    from IPython.utils.capture import capture_output

    ip.ok("%config SpriteMagics.widgets = 'on'")
    shown = []
    original = ip.magics.context.show
    ip.magics.context.show = lambda obj, **kw: (shown.append(obj), original(obj, **kw))
    with capture_output() as captured:
        assert ip.shell.run_cell("%sprite checkpoint -m frozen", store_history=True).success
    (bar,) = [obj for obj in shown if isinstance(obj, ProgressBar)]
    assert bar.frozen and bar.widget.comm is None and bar.bar.comm is None
    assert bar.bar.layout.comm is None and bar.label.style.comm is None
    final = captured.outputs[-1].data
    assert "application/vnd.jupyter.widget-view+json" not in final
    assert "sprites-progress-done" in final["text/html"] and "v1 created" in final["text/html"]
    ip.ok("%sprite service create ticker -- sh -c 'while true; do echo tick; sleep 0.2; done'")
    assert ip.shell.run_cell("%sprite logs ticker --follow", store_history=True).success
    (panel,) = [obj for obj in shown if isinstance(obj, LogPanel)]
    ip.ok("%sprite service stop ticker")
    deadline = time.monotonic() + 30
    while panel.state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert panel.state == "stopped" and not panel.frozen and panel.widget.comm is not None
    ip.ok("%sprite service delete ticker")
