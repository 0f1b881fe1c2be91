"""%sprite panel: the timeline's buttons driven with Button.click() on the local server."""

from __future__ import annotations

import pytest

from sprites_jupyter.widgets.timeline import TimelinePanel


def _exists(ip, path: str) -> bool:
    ip.ok(f"%sprite exec -o probe --no-raise test -e {path}")
    return ip.shell.user_ns["probe"].exit_code == 0


@pytest.fixture
def timeline(ip, current):
    ip.ok("%sprite checkpoint -m mine")
    ip.ok("%sprite undo on")
    ip.ok("%%sprite_exec\ntouch /home/sprite/first")
    ip.ok("%%sprite_exec\ntouch /home/sprite/second")
    ip.ok("%config SpriteMagics.widgets = 'on'")
    panel = ip.ok("%sprite panel --inline")
    assert isinstance(panel, TimelinePanel)
    panel.wait(60)  # the refresh after the panel's own cell
    yield panel
    panel.close()


def test_rows_are_newest_first_with_undo_to_here_only_on_cells(timeline):
    comments = [c.comment for c in timeline.browser.checkpoints if not c.is_auto]
    assert comments[0].endswith(": touch /home/sprite/second")
    assert comments[1].endswith(": touch /home/sprite/first")
    assert "mine" in comments
    cells = [c.id for c in timeline.browser.checkpoints if c.comment.startswith("cell [")]
    assert list(timeline.undo_buttons) == cells
    assert "<b>Services</b>" in timeline.services.value


def test_undo_to_here_takes_back_both_cells_and_redo_returns(ip, timeline):
    first = next(c.id for c in timeline.browser.checkpoints
                 if c.comment.endswith("touch /home/sprite/first"))

    timeline.undo_buttons[first].click()
    timeline.wait(60)

    assert "Undid 2 cells" in timeline.browser.message.value
    assert not _exists(ip, "/home/sprite/first") and not _exists(ip, "/home/sprite/second")
    ip.ok("%sprite redo")
    assert _exists(ip, "/home/sprite/second")


def test_restore_asks_first_as_the_browser_does(ip, timeline):
    mine = next(c.id for c in timeline.browser.checkpoints if c.comment == "mine")
    timeline.browser.restore_buttons[mine].click()
    assert timeline.browser.confirm_box.layout.display == "flex"
    assert "stops every running process" in timeline.browser.confirm_text.value
    assert _exists(ip, "/home/sprite/first")
    timeline.wait(60)  # the refresh after that cell

    timeline.browser.confirm_button.click()
    timeline.wait(60)

    assert not _exists(ip, "/home/sprite/first")


def _texts(widget) -> str:
    own = getattr(widget, "value", "")
    return " ".join([own if isinstance(own, str) else "",
                     *map(_texts, getattr(widget, "children", ()))])


def test_each_row_says_the_size_of_its_change(ip, timeline):
    ip.ok("%%sprite_exec\nhead -c 3000 /dev/zero > /home/sprite/zeros")
    ip.ok("%sprite checkpoint -m 'after the zeros'")
    timeline.wait(60)
    rows = {c.comment: _texts(row) for c, row in zip(
        timeline.browser.checkpoints,
        [r for r in timeline.browser.rows.children if "sprites-checkpoint-row" in r._dom_classes],
        strict=True)}
    assert "+3.0 kB" in rows["after the zeros"]
    assert "+0 B" in rows["mine"]
    assert "—" in rows["Base (clean) state"]


def test_the_panel_refreshes_after_a_cell(ip, timeline):
    before = len(timeline.browser.checkpoints)
    ip.ok("%%sprite_exec\ntouch /home/sprite/third")
    timeline.wait(60)
    assert len(timeline.browser.checkpoints) == before + 1
    assert timeline.browser.checkpoints[0].comment.endswith("touch /home/sprite/third")


def test_in_a_terminal_the_timeline_is_text(ip, current, capsys):
    ip.ok("%sprite undo on")
    ip.ok("%%sprite_exec\ntrue")
    capsys.readouterr()
    assert ip.ok("%sprite panel") is None
    out = capsys.readouterr().out
    assert out.startswith("No widget frontend here: the timeline as text")
    assert ": true" in out and "services:" in out
