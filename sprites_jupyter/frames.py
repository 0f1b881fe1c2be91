"""Typed pandas DataFrames built from the client's models.

Each function takes plain models (anything with the model's attributes) and
returns a DataFrame with stable columns and dtypes, even when empty: times are
``datetime64[ns, UTC]``, counts are nullable ``Int64``, flags are ``bool``.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


__all__ = [
    "changes_frame",
    "checkpoints_frame",
    "describe_changes",
    "describe_undo",
    "exit_codes_frame",
    "files_frame",
    "forwards_frame",
    "policy_frame",
    "services_frame",
    "sessions_frame",
    "sprites_frame",
]


def _times(values: list[datetime | None]) -> pd.Series:
    """A time outside what nanoseconds hold (years 1678-2261) is shown as none, not an
    error."""
    import pandas as pd
    held = [None if value is None or not 1678 <= value.year <= 2261 else value
            for value in values]
    return pd.Series(pd.to_datetime(held, utc=True), dtype="datetime64[ns, UTC]")


def _frame(index: str, index_values: list[Any], columns: Mapping[str, pd.Series]) -> pd.DataFrame:
    import pandas as pd
    frame = pd.DataFrame(dict(columns), copy=False)  # the Series are ours alone
    frame.index = pd.Index(index_values, name=index, dtype="object")
    return frame


# The columns %sprite list shows unless asked for all: what tells sprites apart.
SPRITE_SUMMARY_COLUMNS = ["status", "url", "created_at", "labels"]


def sprites_frame(sprites: Iterable[Any]) -> pd.DataFrame:
    """One row per sprite, indexed by name (:data:`SPRITE_SUMMARY_COLUMNS` is the short
    selection)."""
    import pandas as pd
    rows = list(sprites)
    return _frame("name", [s.name for s in rows], {
        "status": pd.Series([s.status or "" for s in rows], dtype="object"),
        "id": pd.Series([s.id or "" for s in rows], dtype="object"),
        "url": pd.Series([s.url or "" for s in rows], dtype="object"),
        "organization": pd.Series([s.organization or "" for s in rows], dtype="object"),
        "created_at": _times([s.created_at for s in rows]),
        "updated_at": _times([s.updated_at for s in rows]),
        "labels": pd.Series([", ".join(s.labels or ()) for s in rows], dtype="object"),
    })


def _lineage(history: Sequence[str], source_id: str | None, checkpoint_id: str) -> str:
    if history:
        return " → ".join((*history, checkpoint_id))
    return f"{source_id} → {checkpoint_id}" if source_id else ""


def _utc_times(values: list[datetime | None]) -> pd.Series:
    """:func:`_times`, faster for times all in UTC (as listings give them)."""
    import pandas as pd
    try:
        index = pd.DatetimeIndex(values)
        if str(index.tz) == "UTC":
            return pd.Series(index.astype("datetime64[ns, UTC]"))
    except (TypeError, ValueError):  # offsets of more than one zone, years past 2262
        pass
    return _times(values)


# RFC 3339 UTC text that numpy's datetime64[ns] holds exactly (its range is 1677-2262).
_NUMPY_YEARS = ("1678", "2262")


def _utc_texts(texts: list[Any]) -> pd.api.extensions.ExtensionArray | None:
    """RFC 3339 times all in UTC (``...Z``, as listings give them) parsed by numpy in one
    pass; ``None`` for anything else, left to :func:`_utc_times`."""
    import numpy as np
    import pandas as pd
    try:  # a date and a time (numpy would also read a bare date, or "now")
        bare = [text[:-1] for text in texts if text[-1:] == "Z" and text[10:11] == "T"]
    except TypeError:  # not all text
        return None
    if not bare or len(bare) != len(texts) or not (
            _NUMPY_YEARS[0] <= min(bare) and max(bare) < _NUMPY_YEARS[1]):
        return None
    try:  # microseconds, the digits beyond cut off as the models' datetimes do
        parsed = np.array(bare, dtype="datetime64[us]").astype("datetime64[ns]")
    except ValueError:
        return None
    return pd.array(parsed).tz_localize("UTC")


def _counts(values: list[int | None], index: pd.Index) -> pd.Series:
    """Nullable ``Int64``, made with numpy from the values and where they are absent (a
    fifth of the time pandas takes to find that out itself)."""
    import numpy as np
    import pandas as pd
    sent = np.array(values, dtype="object")
    absent = sent == None  # noqa: E711 (numpy compares each element)
    try:
        counts = pd.arrays.IntegerArray(np.where(absent, 0, sent).astype("int64"), absent)
    except (OverflowError, TypeError, ValueError):  # not all 64-bit integers
        counts = pd.array(values, dtype="Int64")
    return pd.Series(counts, index=index)


def _texts(values: list[str | None], index: pd.Index | None = None) -> pd.Series:
    """Text with ``None`` shown as ``""``."""
    import pandas as pd
    if None in values:
        values = ["" if value is None else value for value in values]
    return pd.Series(values, dtype="object", index=index)


def checkpoints_frame(checkpoints: Iterable[Any]) -> pd.DataFrame:
    """One row per checkpoint, newest first as listed, indexed by id; built a column at
    a time, read from a :class:`~sprites_jupyter.client.checkpoint_list.CheckpointList`
    without making its models."""
    import pandas as pd
    column = getattr(checkpoints, "column", None)
    sent = getattr(checkpoints, "values", None)  # the JSON values, where a listing has them
    times = _utc_texts(sent("create_time")) if sent is not None else None
    if column is None:
        rows = list(checkpoints)

        def column(field: str) -> list[Any]:
            return [getattr(c, field) for c in rows]

    ids, sources, histories = column("id"), column("source_id"), column("history")
    if any(histories):
        lineage = list(map(_lineage, histories, sources, ids))
    else:
        lineage = [f"{source} → {checkpoint_id}" if source else ""
                   for source, checkpoint_id in zip(sources, ids, strict=True)]
    if times is None:
        times = _utc_times(column("create_time")).array
    # Every column on the one index: the frame is put together without aligning them.
    index = pd.Index(ids, name="id", dtype="object")
    return pd.DataFrame({
        "create_time": pd.Series(times, index=index),
        "comment": _texts(column("comment"), index),
        "source_id": _texts(sources, index),
        "is_auto": pd.Series(column("is_auto"), dtype="bool", index=index),
        "changed_bytes": _counts(column("changed_bytes"), index),
        "lineage": pd.Series(lineage, dtype="object", index=index),
    }, copy=False)


def services_frame(services: Iterable[Any], url: str = "") -> pd.DataFrame:
    """One row per service with its state, indexed by name; ``url`` (the sprite's URL)
    is shown for the service it routes to, the one with an ``http_port``."""
    import pandas as pd
    rows = list(services)
    states = [s.state for s in rows]
    return _frame("name", [s.name for s in rows], {
        "status": pd.Series([st.status if st else "" for st in states], dtype="object"),
        "pid": pd.Series([st.pid if st else None for st in states], dtype="Int64"),
        "command": pd.Series([shlex.join((s.cmd, *(s.args or ()))) for s in rows],
                             dtype="object"),
        "needs": pd.Series([", ".join(s.needs or ()) for s in rows], dtype="object"),
        "http_port": pd.Series([s.http_port for s in rows], dtype="Int64"),
        "url": pd.Series([url if s.http_port else "" for s in rows], dtype="object"),
        "started_at": _times([st.started_at if st else None for st in states]),
        "restart_count": pd.Series([st.restart_count if st else None for st in states],
                                   dtype="Int64"),
        "error": pd.Series([(st.error or "") if st else "" for st in states],
                           dtype="object"),
    })


def sessions_frame(sessions: Iterable[Any]) -> pd.DataFrame:
    """One row per exec session, indexed by session id."""
    import pandas as pd
    rows = list(sessions)
    return _frame("id", [str(s.id) for s in rows], {
        "command": pd.Series([s.command or "" for s in rows], dtype="object"),
        "workdir": pd.Series([s.workdir or "" for s in rows], dtype="object"),
        "created": _times([s.created for s in rows]),
        "is_active": pd.Series([bool(s.is_active) for s in rows], dtype="bool"),
        "tty": pd.Series([bool(s.tty) for s in rows], dtype="bool"),
        "last_activity": _times([s.last_activity for s in rows]),
        "bytes_per_second": pd.Series([s.bytes_per_second for s in rows], dtype="Float64"),
    })


def files_frame(entries: Iterable[Any]) -> pd.DataFrame:
    """One row per directory entry, indexed by name."""
    import pandas as pd
    rows = list(entries)
    return _frame("name", [e.name for e in rows], {
        "type": pd.Series([e.type or "" for e in rows], dtype="object"),
        "size": pd.Series([e.size for e in rows], dtype="Int64"),
        "mode": pd.Series([e.mode or "" for e in rows], dtype="object"),
        "mod_time": _times([e.mod_time for e in rows]),
        "is_dir": pd.Series([bool(e.is_dir) for e in rows], dtype="bool"),
        "path": pd.Series([e.path or "" for e in rows], dtype="object"),
    })


def forwards_frame(forwards: Iterable[Any]) -> pd.DataFrame:
    """One row per port forward, indexed by the local port: where it goes, the connections
    open now, the bytes carried both ways and the last connection error."""
    import pandas as pd
    rows = list(forwards)
    frame = _frame("local", [f.local_port for f in rows], {
        "sprite": pd.Series([f.sprite.name for f in rows], dtype="object"),
        "remote": pd.Series([f.port for f in rows], dtype="Int64"),
        "connections": pd.Series([f.connections for f in rows], dtype="Int64"),
        "bytes": pd.Series([f.bytes_sent + f.bytes_received for f in rows], dtype="Int64"),
        "error": pd.Series([f.last_error for f in rows], dtype="object"),
    })
    frame.index = frame.index.astype("Int64")
    return frame


def policy_frame(rules: Iterable[Any]) -> pd.DataFrame:
    """One row per network-policy rule, in evaluation order."""
    import pandas as pd
    rows = list(rules)
    frame = pd.DataFrame({
        "domain": pd.Series([r.domain or "" for r in rows], dtype="object"),
        "action": pd.Series([r.action or "" for r in rows], dtype="object"),
        "include": pd.Series([r.include or "" for r in rows], dtype="object"),
    })
    frame.index.name = "position"
    return frame


def exit_codes_frame(outcomes: Iterable[Any]) -> pd.DataFrame:
    """Exit code, duration and error per sprite of a multi-sprite exec.

    Each outcome has ``sprite``, ``exit_code`` and ``duration`` (None when the
    command never finished) and ``error`` (empty when it ran).
    """
    import pandas as pd
    rows = list(outcomes)
    return _frame("sprite", [o.sprite for o in rows], {
        "exit_code": pd.Series([o.exit_code for o in rows], dtype="Int64"),
        "duration": pd.Series([None if o.duration is None else round(o.duration, 3)
                               for o in rows], dtype="Float64"),
        "error": pd.Series([o.error for o in rows], dtype="object"),
    })


CHANGE_KINDS = ("added", "removed", "modified", "type-changed", "mode-changed")
_CHANGE_WORDS = {"type-changed": "changed type", "mode-changed": "changed mode"}


def changes_frame(rows: Iterable[Sequence[Any]]) -> pd.DataFrame:
    """One row per differing path, sorted by path.

    Each row is ``(path, change, size_a, size_b, mtime_a_ns, mtime_b_ns)`` as the
    in-sprite diff helper writes it; sizes are ``None`` for directories and for
    the side where the path is absent.
    """
    import pandas as pd
    listed = sorted((tuple(r) for r in rows), key=lambda r: r[0])
    columns = list(zip(*listed, strict=True)) or [()] * 6

    def times(values: Sequence[Any]) -> pd.Series:
        import pandas as pd
        return pd.Series(pd.to_datetime(pd.array(values, dtype="Int64"), unit="ns", utc=True),
                         dtype="datetime64[ns, UTC]")

    return pd.DataFrame({
        "path": pd.Series(columns[0], dtype="object"),
        "change": pd.Series(pd.Categorical(columns[1], categories=CHANGE_KINDS)),
        "size_a": pd.Series(columns[2], dtype="Int64"),
        "size_b": pd.Series(columns[3], dtype="Int64"),
        "mtime_a": times(columns[4]),
        "mtime_b": times(columns[5]),
    })


def describe_changes(changes: pd.DataFrame) -> str:
    """``12 files differ: 3 added, 2 removed, 7 modified`` (kinds that occur, in order)."""
    if changes.empty:
        return "no files differ"
    counts = changes["change"].value_counts()
    parts = [f"{counts[kind]} {_CHANGE_WORDS.get(kind, kind)}"
             for kind in CHANGE_KINDS if counts.get(kind, 0)]
    total = len(changes)
    return f"{total} file{'s' if total != 1 else ''} differ{'' if total != 1 else 's'}: " \
           + ", ".join(parts)


def describe_undo(checkpoint_id: str, changes: pd.DataFrame) -> str:
    """What restoring ``checkpoint_id`` undoes, given the changes made since it."""
    if changes.empty:
        return f"Restoring {checkpoint_id} changes no files (they match it)."
    total = len(changes)
    detail = describe_changes(changes).split(": ", 1)[1]
    return f"Restoring {checkpoint_id} will undo {total} change{'s' if total != 1 else ''}: " \
           f"{detail}."
