"""``%sprite diff --stat``: a few rows that say where a change is, however many files.

A pip install touches thousands of files in one corner of the tree; counting by
top-level directory makes that one row (``/home 14804``). Here the directory
holding most of the changes is split into its subdirectories, again and again, while
the table has room (``MAX_ROWS``): a chain of single directories collapses into its
deepest one, and what a split leaves behind (files directly in a directory, the
smaller subdirectories) stays in the directory's own row. A ``site-packages``
directory is split by package, its ``*.dist-info`` and ``*.libs`` counted with it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .frames import CHANGE_KINDS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MAX_ROWS", "describe_size_change", "summarize_changes"]

MAX_ROWS = 12
_PACKAGE_DIRECTORIES = ("site-packages", "dist-packages")
_DISTRIBUTION_SUFFIX = re.compile(r"(-[^-]*)?\.(dist-info|egg-info|libs|data|pth)$|\.py$")


def package_name(entry: str) -> str:
    """``numpy-2.1.0.dist-info``, ``numpy.libs`` and ``numpy`` → ``numpy``."""
    return _DISTRIBUTION_SUFFIX.sub("", entry).lower().replace("-", "_") or entry


class _Group:
    """Changed paths at or below ``path`` that no deeper row holds."""

    def __init__(self, path: str, rows: list[int], splittable: bool = True) -> None:
        self.path = path
        self.rows = rows
        self.splittable = splittable and len(rows) > 1


def _under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def _parts(group: _Group, paths: Sequence[str]) -> tuple[dict[str, list[int]], list[int], bool]:
    """How a group splits: subgroups by name, the rows it keeps, whether they are packages.
    A subdirectory's own row (added, say) goes with what is below it."""
    packages = posixpath.basename(group.path) in _PACKAGE_DIRECTORIES
    prefix = group.path.rstrip("/") + "/"
    below = {index: paths[index][len(prefix):] for index in group.rows
             if paths[index].startswith(prefix)}
    directories = {rest.split("/", 1)[0] for rest in below.values() if "/" in rest}
    parts: dict[str, list[int]] = {}
    kept = [index for index in group.rows if index not in below]
    for index, rest in below.items():
        head = rest.split("/", 1)[0]
        if packages:
            parts.setdefault(package_name(head), []).append(index)
        elif head in directories:
            parts.setdefault(head, []).append(index)
        else:
            kept.append(index)
    return parts, kept, packages


def _split(groups: list[_Group], paths: Sequence[str]) -> None:
    """Split the biggest splittable group while the table has room; in place."""
    while True:
        candidates = [g for g in groups if g.splittable]
        if not candidates:
            return
        group = max(candidates, key=lambda g: len(g.rows))
        group.splittable = False
        parts, kept, packages = _parts(group, paths)
        ranked = sorted(parts.items(), key=lambda item: -len(item[1]))
        room = MAX_ROWS - len(groups)
        whole = not kept and len(ranked) <= room + 1
        taken = ranked if whole else ranked[:room]
        if not taken:
            continue
        for _, rows in ranked[len(taken):]:
            kept.extend(rows)
        prefix = group.path.rstrip("/") + "/"
        groups.extend(_Group(prefix + name, rows, splittable=not packages)
                      for name, rows in taken)
        group.rows = kept
        if not kept:
            groups.remove(group)


def summarize_changes(changes: pd.DataFrame, roots: Sequence[str] = ()) -> pd.DataFrame:
    """Counts of each kind of change, their total and the net change in bytes, one row per
    place the changes concentrate below ``roots`` (or ``/``), indexed by path (a row that
    holds one change is named by its path)."""
    import pandas as pd
    cleaned = sorted({posixpath.normpath("/" + r.lstrip("/")) for r in roots} or {"/"})
    paths = list(changes["path"])
    groups = []
    for root in cleaned:
        rows = [i for i, p in enumerate(paths) if _under(p, root)]
        if rows:
            groups.append(_Group(root, rows))
    _split(groups, paths)
    kinds = changes["change"].astype(str).tolist()
    grown = (changes["size_b"].fillna(0) - changes["size_a"].fillna(0)).astype("int64").tolist()
    for group in groups:
        if len(group.rows) == 1:
            group.path = paths[group.rows[0]]
    groups.sort(key=lambda g: g.path)
    table = []
    for group in groups:
        counts = {kind: 0 for kind in CHANGE_KINDS}
        for index in group.rows:
            counts[kinds[index]] += 1
        table.append({**counts, "total": len(group.rows),
                      "size_change": sum(grown[i] for i in group.rows)})
    frame = pd.DataFrame(table, columns=[*CHANGE_KINDS, "total", "size_change"],
                         index=pd.Index([g.path for g in groups], name="path", dtype="object"))
    return frame.astype("Int64")


def describe_size_change(changes: pd.DataFrame) -> str:
    """The net change in bytes, readable: ``+7.2 MB``, ``-512 bytes``, ``no size change``."""
    grown = int((changes["size_b"].fillna(0) - changes["size_a"].fillna(0)).sum())
    if not grown:
        return "no size change"
    sign, amount = "+" if grown > 0 else "-", float(abs(grown))
    if amount < 1000:
        return f"{sign}{int(amount)} bytes"
    units = ("kB", "MB", "GB", "TB")
    for unit in units:
        amount /= 1000
        if amount < 1000 or unit == units[-1]:
            break
    return f"{sign}{amount:.1f} {unit}"
