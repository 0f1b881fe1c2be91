"""The changes DataFrame, its summaries, and the browser's Changes driven by Button.click()."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from sprites_jupyter.change_summary import (
    MAX_ROWS,
    describe_size_change,
    package_name,
    summarize_changes,
)
from sprites_jupyter.client import Checkpoint
from sprites_jupyter.frames import changes_frame, describe_changes, describe_undo
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
    assert summarize_changes(frame).empty


def test_summaries_name_each_kind_that_occurs():
    frame = changes_frame(ROWS)
    assert describe_changes(frame) == ("5 files differ: 1 added, 1 removed, 1 modified, "
                                       "1 changed type, 1 changed mode")
    assert describe_changes(frame.head(1)) == "1 file differs: 1 modified"
    assert describe_undo("v1", frame.head(1)) == \
        "Restoring v1 will undo 1 change: 1 modified."


def test_a_small_summary_names_single_changes_by_their_path():
    frame = changes_frame(ROWS)
    summary = summarize_changes(frame)
    assert list(summary.index) == ["/etc/hosts", "/home/sprite"]
    assert summary.loc["/home/sprite", "total"] == 4
    assert summary.loc["/etc/hosts", "size_change"] == 2
    below = summarize_changes(frame[frame["path"].str.startswith("/home")], ["/home/sprite/"])
    assert list(below.index) == ["/home/sprite"]
    assert list(below.columns) == ["added", "removed", "modified", "type-changed",
                                   "mode-changed", "total", "size_change"]
    assert str(below["total"].dtype) == "Int64"
    assert below.loc["/home/sprite", "size_change"] == 3 - 4 - 7
    assert describe_size_change(frame) == "-6 bytes"


SITE = "/home/sprite/env/lib/python3.11/site-packages"


def _venv_rows() -> list[list]:
    """A pip install into a venv (10,000 files in five packages) beside two results."""
    rows = [["/home/sprite/env", "added", None, None, None, NS]]
    for package, files in (("numpy", 2000), ("scipy", 4000), ("sklearn", 2500),
                           ("pandas", 1400), ("six.py", 1)):
        for index in range(files if package != "six.py" else 0):
            rows.append([f"{SITE}/{package}/part{index % 9}/m{index}.py", "added", None, 1000,
                         None, NS])
        name = package.removesuffix(".py")
        rows.append([f"{SITE}/{package}", "added", None, 5, None, NS])
        rows.append([f"{SITE}/{name}-1.0.dist-info/RECORD", "added", None, 100, None, NS])
    rows += [[f"/home/sprite/env/bin/tool{index}", "added", None, 10, None, NS]
             for index in range(90)]
    rows += [["/home/sprite/results/a.csv", "added", None, 20, None, NS],
             ["/home/sprite/train.py", "modified", 10, 30, NS, NS]]
    return rows


def test_a_big_install_is_summarised_by_package_and_directory():
    frame = changes_frame(_venv_rows())
    assert len(frame) > 10_000
    summary = summarize_changes(frame)
    assert len(summary) <= MAX_ROWS
    assert int(summary["total"].sum()) == len(frame)
    assert summary.loc[f"{SITE}/scipy", "added"] == 4002
    assert summary.loc[f"{SITE}/scipy", "size_change"] == 4000 * 1000 + 5 + 100
    assert summary.loc[f"{SITE}/six", "total"] == 2, "a module and its dist-info"
    assert summary.loc["/home/sprite/env/bin", "total"] == 90
    assert summary.loc["/home/sprite/train.py", "modified"] == 1
    assert "/home/sprite/results/a.csv" in summary.index
    assert describe_size_change(frame) == "+9.9 MB"


def test_a_table_with_no_room_keeps_the_rest_in_the_directory_row():
    rows = [[f"/data/d{index}/f{inner}", "added", None, 1, None, NS]
            for index in range(30) for inner in range(index + 1)]
    summary = summarize_changes(changes_frame(rows))
    assert len(summary) == MAX_ROWS
    assert "/data/d29" in summary.index and "/data/d0/f0" not in summary.index
    assert summary.loc["/data", "total"] == sum(range(1, 31)) - sum(
        int(summary.loc[f"/data/d{index}", "total"]) for index in range(19, 30))


def test_package_names_join_a_package_with_its_metadata():
    assert {package_name(entry) for entry in (
        "numpy", "numpy-2.1.0.dist-info", "numpy.libs", "NumPy-2.0.egg-info")} == {"numpy"}
    assert package_name("typing_extensions.py") == "typing_extensions"
    assert package_name("scikit_learn-1.5.2.dist-info") == "scikit_learn"


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
