"""The changes DataFrame, its summaries, and the browser's Changes driven by Button.click()."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from sprites_jupyter.client import Checkpoint
from sprites_jupyter.frames import (
    changes_by_directory,
    changes_frame,
    describe_changes,
    describe_undo,
)
from sprites_jupyter.widgets.browser import CheckpointActions, CheckpointBrowser

NS = 1_700_000_000_000_000_000
ROWS = [
    ["/home/sprite/z.txt", "removed", 4, None, NS, None],
    ["/home/sprite/a.txt", "added", None, 3, None, NS + 5],
    ["/etc/hosts", "modified", 10, 12, NS, NS + 1],
    ["/home/sprite/run.sh", "mode-changed", 8, 8, NS, NS],
    ["/home/sprite/dir", "type-changed", 7, None, NS, NS],
]


def test_changes_frame_is_typed_and_sorted_by_path():
    frame = changes_frame(ROWS)
    assert list(frame.columns) == ["path", "change", "size_a", "size_b", "mtime_a", "mtime_b"]
    assert list(frame["path"]) == sorted(r[0] for r in ROWS)
    assert str(frame["size_a"].dtype) == "Int64" and str(frame["size_b"].dtype) == "Int64"
    assert str(frame["mtime_a"].dtype) == "datetime64[ns, UTC]"
    added = frame.set_index("path").loc["/home/sprite/a.txt"]
    assert pd.isna(added["size_a"]) and added["size_b"] == 3 and pd.isna(added["mtime_a"])
    assert added["mtime_b"] == pd.Timestamp(NS + 5, unit="ns", tz="UTC")
    assert (frame["change"] == "added").sum() == 1


def test_empty_changes_keep_their_columns_and_types():
    frame = changes_frame([])
    assert frame.empty and list(frame.columns)[:2] == ["path", "change"]
    assert str(frame["mtime_b"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["size_a"].dtype) == "Int64"
    assert describe_changes(frame) == "no files differ"
    assert describe_undo("v1", frame) == "Restoring v1 changes no files (they match it)."
    assert changes_by_directory(frame).empty


def test_summaries_name_each_kind_that_occurs():
    frame = changes_frame(ROWS)
    assert describe_changes(frame) == ("5 files differ: 1 added, 1 removed, 1 modified, "
                                       "1 changed type, 1 changed mode")
    assert describe_changes(frame.head(1)) == "1 file differs: 1 modified"
    assert describe_undo("v1", frame.head(1)) == \
        "Restoring v1 will undo 1 change: 1 modified."


def test_counts_by_top_level_directory_below_the_given_paths():
    frame = changes_frame(ROWS)
    top = changes_by_directory(frame)
    assert list(top.index) == ["/etc", "/home"]
    assert top.loc["/home", "total"] == 4 and top.loc["/etc", "modified"] == 1
    below = changes_by_directory(frame[frame["path"].str.startswith("/home")],
                                 ["/home/sprite/"])
    assert list(below.index) == ["/home/sprite/a.txt", "/home/sprite/dir",
                                 "/home/sprite/run.sh", "/home/sprite/z.txt"]
    assert list(below.columns) == ["added", "removed", "modified", "type-changed",
                                   "mode-changed", "total"]
    assert str(below["total"].dtype) == "Int64"


class Sprite:
    """Checkpoints and what changed since each (a unit test of the browser UI)."""

    def __init__(self):
        now = datetime.now(UTC)
        self.listed = [Checkpoint("v2", now - timedelta(minutes=3), "tuned"),
                       Checkpoint("v1", now - timedelta(hours=2), "baseline")]
        self.asked = []
        self.restored = []

    def changes(self, checkpoint_id):
        self.asked.append(checkpoint_id)
        if checkpoint_id == "v2":
            raise LookupError("Checkpoint v2 is not mounted; these can be compared: v1")
        return changes_frame(ROWS)

    def actions(self):
        def restore(cp, view):
            self.restored.append(cp)
            view.succeed("restored")
            return "auto-1"

        return CheckpointActions(list=lambda: list(self.listed),
                                 get=lambda cp: next(c for c in self.listed if c.id == cp),
                                 restore=restore, create=lambda comment, view: "v3",
                                 changes=self.changes)


def test_changes_button_summarises_then_expands_and_collapses_the_table():
    sprite = Sprite()
    browser = CheckpointBrowser("demo", sprite.actions())
    row = browser.changes_rows["v1"]
    assert sprite.asked == [], "nothing is computed before it is asked for"
    row.button.click()
    browser.wait(60)
    assert row.button.description == describe_changes(changes_frame(ROWS))
    assert row.detail.layout.display == "flex"
    assert "/home/sprite/run.sh" in row.table.value and "mode-changed" in row.table.value
    row.button.click()
    assert row.detail.layout.display == "none"
    row.button.click()
    assert row.detail.layout.display == "flex" and sprite.asked == ["v1"]

    other = browser.changes_rows["v2"]
    other.button.click()
    browser.wait(60)
    assert other.button.description.startswith("Checkpoint v2 is not mounted")
    assert other.detail.layout.display == "none"


def test_restore_confirmation_says_what_it_would_undo():
    sprite = Sprite()
    browser = CheckpointBrowser("demo", sprite.actions())
    browser.restore_buttons["v1"].click()
    browser.wait(60)
    assert browser.undo_text.value == (
        "<b>Restoring v1 will undo 5 changes: 1 added, 1 removed, 1 modified, "
        "1 changed type, 1 changed mode.</b>")
    assert "stops every running process" in browser.confirm_text.value
    browser.restore_buttons["v2"].click()
    browser.wait(60)
    assert "What it would undo is unknown: Checkpoint v2 is not mounted" in \
        browser.undo_text.value
    browser.restore_buttons["v1"].click()
    browser.wait(60)
    assert browser.undo_text.value.startswith("<b>Restoring v1 will undo 5 changes")
    browser.confirm_button.click()
    browser.wait(60)
    assert sprite.restored == ["v1"] and sprite.asked == ["v1", "v2"]
    browser.restore_buttons["v1"].click()
    browser.wait(60)
    assert sprite.asked == ["v1", "v2", "v1"], "a restore forgets what changed before it"
