"""The Python session's variables in a checkpoint and now: ``%sprite diff A [B] --vars``
and the variables part of the restore confirmation.

Both sides are saved manifests (:mod:`sprites_jupyter.remote.python_state`): a
checkpoint's is read from its mounted tree by the in-sprite diff helper, now's from
the live filesystem after the session saved. A variable changed when its saved
bytes did (their hash is in the manifest).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..client import Sprite
from .session_state import STATE_ROOT, saved_states

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["checkpoint_states", "describe_variable_undo", "pick_state", "variables_frame"]

VARIABLE_CHANGES = ("added", "removed", "changed")
LISTED = 4


def checkpoint_states(handle: Sprite, checkpoint_id: str | None,
                      ask_helper: Callable[[Sprite, dict[str, Any]], list[Any]]
                      ) -> dict[str, dict]:
    """The saved namespaces a checkpoint holds (``None``: the sprite now), by session id;
    ``ask_helper`` runs a request through the in-sprite diff helper."""
    if checkpoint_id is None:
        return saved_states(handle)
    try:
        entries = ask_helper(handle, {"op": "list", "a": checkpoint_id, "path": STATE_ROOT})
    except UsageError as error:
        if "not mounted" in str(error) or "not found" in str(error):
            raise
        return {}
    found = {}
    for entry in entries:
        name = str(entry.get("name", ""))
        try:
            (answer,) = ask_helper(handle, {"op": "read", "a": checkpoint_id,
                                            "path": f"{STATE_ROOT}/{name}/manifest.json"})
            found[name] = json.loads(base64.b64decode(answer["data"]))
        except (UsageError, ValueError, KeyError):
            continue
    return found


def pick_state(states: dict[str, dict], session_id: str | None) -> dict | None:
    """The session's own saved namespace, else the most recently saved one."""
    if session_id and session_id in states:
        return states[session_id]
    if not states:
        return None
    return max(states.values(), key=lambda m: float(m.get("saved_at") or 0))


def _variables(manifest: dict | None) -> dict[str, dict[str, Any]]:
    if manifest is None:
        return {}
    found = {}
    for entry in manifest.get("variables") or []:
        found[entry["name"]] = entry
    for entry in found.values():
        if "alias" in entry:
            target = found.get(entry["alias"], {})
            entry.update({k: target.get(k) for k in ("type", "size", "bytes", "object")},
                         alias_of=entry["alias"])
    for module_name, module in (manifest.get("modules") or {}).items():
        found[module_name] = {"name": module_name, "type": f"module {module}",
                              "object": f"module:{module}"}
    return found


def _size(entry: dict[str, Any] | None) -> str | None:
    if entry is None:
        return None
    parts = [str(entry.get("size") or "")]
    if entry.get("bytes") is not None:
        count = float(entry["bytes"])
        for unit in ("B", "KB", "MB", "GB"):
            if count < 1024 or unit == "GB":
                parts.append(f"{count:.0f} B" if unit == "B" else f"{count:.1f} {unit}")
                break
            count /= 1024
    return ", ".join(p for p in parts if p)


def variables_frame(before: dict | None, after: dict | None) -> pd.DataFrame:
    """One row per variable that differs from ``before`` to ``after``: name, change
    (added / removed / changed), type, size_a, size_b."""
    import pandas as pd
    a, b = _variables(before), _variables(after)
    rows = []
    for name in sorted(set(a) | set(b)):
        old, new = a.get(name), b.get(name)
        if old is not None and new is not None and old.get("object") == new.get("object") \
                and old.get("alias_of") == new.get("alias_of"):
            continue
        change = "added" if old is None else "removed" if new is None else "changed"
        rows.append((name, change, str((new or old or {}).get("type") or ""), _size(old),
                     _size(new)))
    columns = list(zip(*rows, strict=True)) or [()] * 5
    return pd.DataFrame({
        "name": pd.Series(columns[0], dtype="object"),
        "change": pd.Series(pd.Categorical(columns[1], categories=VARIABLE_CHANGES)),
        "type": pd.Series(columns[2], dtype="object"),
        "size_a": pd.Series(columns[3], dtype="object"),
        "size_b": pd.Series(columns[4], dtype="object"),
    })


def _listed(rows: pd.DataFrame) -> str:
    named = [f"{r.name} ({r.type})" for r in rows.head(LISTED).itertuples()]
    more = len(rows) - len(named)
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")


def describe_variable_undo(frame: pd.DataFrame, checkpoint_id: str, *, held: bool,
                           live: bool) -> str:
    """The confirmation's sentence about the Python session's variables."""
    if not held:
        if live:
            return (f"{checkpoint_id} holds no Python session: the session's variables are "
                    "lost (the next cell starts afresh).")
        return ""
    if frame.empty:
        return "The Python session's variables match it."
    parts = []
    for change, verb in (("changed", "go back"), ("added", "are dropped"),
                         ("removed", "come back")):
        rows = frame[frame["change"] == change]
        if len(rows):
            parts.append(f"{len(rows)} {verb}: {_listed(rows)}")
    return "Variables: " + "; ".join(parts) + "."
