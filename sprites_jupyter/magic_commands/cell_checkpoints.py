"""Per-cell checkpoints: how their comment tags a cell, and what this kernel has undone.

The tag is the checkpoint's comment (``cell [12] of analysis.ipynb: rm data.txt``), so
the real service shows it too and a new kernel can tell these checkpoints from the
user's own without any state of ours.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CellTag", "UndoState", "cell_comment", "cell_tag", "notebook_name", "untagged"]

_TAG = re.compile(r"^cell \[(\d+)\](?: of (.+?\.ipynb))?: (.*)$", re.DOTALL)
_FIRST_LINE_CHARS = 60


@dataclass(frozen=True)
class CellTag:
    """What a per-cell checkpoint's comment says about the cell that ran after it."""

    execution_count: int
    notebook: str
    first_line: str

    def describe(self) -> str:
        where = f" of {self.notebook}" if self.notebook else ""
        return f"cell [{self.execution_count}]{where} ({self.first_line or 'empty'})"


def cell_comment(execution_count: int, code: str, notebook: str) -> str:
    """The comment of the checkpoint taken before a cell."""
    lines = code.strip().splitlines()
    first = lines[0].strip() if lines else ""
    if len(first) > _FIRST_LINE_CHARS:
        first = first[:_FIRST_LINE_CHARS - 1] + "…"
    where = f" of {notebook}" if notebook else ""
    return f"cell [{execution_count}]{where}: {first}"


def cell_tag(comment: str) -> CellTag | None:
    """The cell a checkpoint's comment names, or ``None`` for any other checkpoint."""
    found = _TAG.match(comment)
    if found is None:
        return None
    return CellTag(int(found.group(1)), found.group(2) or "", found.group(3))


def untagged(comments: Sequence[str]) -> list[bool]:
    """For each comment, whether it is not a per-cell checkpoint's. A listing's worth at
    once: one scan of them all when none starts like a tag (the usual case)."""
    if "\ncell [" not in "\n" + "\n".join(comments):
        return [True] * len(comments)
    return [found is None for found in map(_TAG.match, comments)]


def notebook_name(shell: Any) -> str:
    """The notebook's file name where the frontend says it: Jupyter Server sets
    ``JPY_SESSION_NAME`` in the kernel, VS Code defines ``__vsc_ipynb_file__``."""
    path = os.environ.get("JPY_SESSION_NAME", "")
    user_ns = getattr(shell, "user_ns", None) or {}
    path = path or str(user_ns.get("__vsc_ipynb_file__", ""))
    name = os.path.basename(path)
    return name if name.endswith(".ipynb") else ""


@dataclass
class UndoState:
    """Per sprite: the cell checkpoints this kernel has undone (a second undo goes
    further back, past them) and the way back from each undo, newest last."""

    undone: dict[str, set[str]] = field(default_factory=dict)
    redo: dict[str, list[tuple[str, list[str]]]] = field(default_factory=dict)

    def undid(self, sprite: str, checkpoint_ids: list[str], way_back: str) -> None:
        self.undone.setdefault(sprite, set()).update(checkpoint_ids)
        self.redo.setdefault(sprite, []).append((way_back, checkpoint_ids))

    def redone(self, sprite: str) -> tuple[str, list[str]] | None:
        """Pop the latest undo of ``sprite`` (its way back and what it undid)."""
        stack = self.redo.get(sprite)
        if not stack:
            return None
        way_back, checkpoint_ids = stack.pop()
        self.undone.get(sprite, set()).difference_update(checkpoint_ids)
        return way_back, checkpoint_ids

    def new_cell(self, sprite: str) -> None:
        """A cell ran after an undo: as in an editor, what was undone can no longer be
        redone."""
        self.redo.pop(sprite, None)
