"""%config settings, the widgets switch, completion, and backend errors."""

from __future__ import annotations

import uuid

import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell

from sprites_jupyter.config import widget_frontend
from sprites_jupyter.widgets.browser import CheckpointBrowser
from sprites_jupyter.widgets.progress import ProgressBar, ProgressText


def test_config_sets_the_current_sprite(ip, sprite, capsys):
    ip.ok(f"%config SpriteMagics.sprite = '{sprite}'")
    assert ip.ok("%sprite checkpoints").index.tolist() == ["v0"]
    ip.ok("%config SpriteMagics")
    out = capsys.readouterr().out
    for trait in ("sprite", "api_url", "timeout", "max_log_lines", "confirm_restore", "widgets"):
        assert f"SpriteMagics.{trait}" in out


def test_bad_config_values_are_refused(ip):
    ip.shell.run_cell("%config SpriteMagics.widgets = 'sometimes'")
    assert ip.magics.widgets == "auto"
    ip.ok("%config SpriteMagics.widgets = 'OFF'")
    assert ip.magics.widgets == "off"


def test_widget_switch(monkeypatch):
    class Kernel:
        kernel = object()

    monkeypatch.delenv("SPRITES_JUPYTER_NO_WIDGETS", raising=False)
    assert widget_frontend(Kernel(), "auto")
    assert not widget_frontend(InteractiveShell.instance(), "auto")
    assert widget_frontend(InteractiveShell.instance(), "on")
    assert not widget_frontend(Kernel(), "off")
    monkeypatch.setenv("SPRITES_JUPYTER_NO_WIDGETS", "1")
    assert not widget_frontend(Kernel(), "auto")


def test_progress_view_follows_the_switch(ip, current):
    assert isinstance(ip.magics.context.progress("x"), ProgressText)
    ip.ok("%config SpriteMagics.widgets = 'on'")
    assert isinstance(ip.magics.context.progress("x"), ProgressBar)


def test_browse_with_widgets_restores_through_the_server(ip, current, http):
    ip.ok("%sprite checkpoint -m baseline")
    http.put(f"/v1/sprites/{current}/fs/write", params={"path": "/home/sprite/x"}, content=b"1")
    ip.ok("%config SpriteMagics.widgets = 'on'")
    browser = ip.ok("%sprite browse")
    assert isinstance(browser, CheckpointBrowser)
    assert list(browser.restore_buttons) == ["v1", "v0"]
    browser.restore_buttons["v1"].click()
    assert "baseline" in browser.confirm_text.value
    browser.confirm_button.click()
    browser.wait(60)
    assert "Restored <code>v1</code>" in browser.message.value, browser.message.value
    undo = browser.message.value.rsplit("<code>", 1)[1].split("</code>")[0]
    assert undo in browser.restore_buttons
    assert http.get(f"/v1/sprites/{current}/fs/read",
                    params={"path": "/home/sprite/x"}).status_code == 404
    assert ip.magics.journal.entries[-1].operation == "restore"


def test_browse_text_fallback(ip, current, capsys):
    ip.ok("%sprite checkpoint -m baseline")
    assert ip.ok("%sprite browse") is None
    out = capsys.readouterr().out
    assert "baseline" in out and "Restore with: %sprite restore ID" in out


def _complete(ip, line):
    with provisionalcompleter():
        return [c.text for c in ip.shell.Completer.completions(line, len(line))]


def test_completion_of_subcommands_options_and_names(ip, current):
    assert "checkpoint" in _complete(ip, "%sprite chec")
    assert "checkpoints" in _complete(ip, "%sprite chec")
    assert current in _complete(ip, f"%sprite use {current[:4]}")
    ip.ok("%sprite checkpoint")
    assert set(_complete(ip, "%sprite restore v")) == {"v0", "v1"}
    assert "--follow" in _complete(ip, "%sprite logs web --fo")
    assert "--rollback-on-error" in _complete(ip, "%%sprite_exec --roll")
    assert current in _complete(ip, "%%sprite_exec -s t-")
    assert "restart" in _complete(ip, "%sprite service res")


def test_wrong_token_is_one_line(ip, sprite, monkeypatch):
    monkeypatch.setenv("SPRITES_TOKEN", "wrong")
    ip.magics.close()
    assert ip.fails(f"%sprite use {sprite}") == "Not authorized: check SPRITES_TOKEN"


def test_wrong_token_names_the_variable_that_is_set(ip, sprite, monkeypatch):
    monkeypatch.delenv("SPRITES_TOKEN", raising=False)
    monkeypatch.setenv("SPRITE_TOKEN", "wrong")
    ip.magics.close()
    assert ip.fails(f"%sprite use {sprite}") == "Not authorized: check SPRITE_TOKEN"


@pytest.mark.timeout(60)
def test_unreachable_backend_is_one_line(ip, monkeypatch):
    monkeypatch.setenv("SPRITES_API_URL", f"http://127.0.0.1:9/{uuid.uuid4().hex}")
    ip.magics.close()
    message = ip.fails("%sprite list")
    assert "127.0.0.1:9" in message
