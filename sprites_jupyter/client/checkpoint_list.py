"""A checkpoint listing that stays cheap at ten thousand entries.

:class:`CheckpointList` keeps the server's JSON objects and makes each
:class:`~.models.Checkpoint` only when it is read; a table reads whole columns
instead, each made by one pass over the objects (mostly in C), with the values the
models would have.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import compress, repeat
from operator import itemgetter, ne
from typing import Any, overload

from .errors import ProtocolError
from .json_fields import byte_count, parse_time, strings
from .models import _CHECKPOINT_KEYS, Checkpoint

_SHOWN = 10
_get = dict.get


def decode(content: bytes) -> object:
    """A listing's JSON: orjson reads ten thousand entries in half the time; what it
    refuses (NaN, integers past 64 bits) is left to the standard library."""
    import orjson

    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return json.loads(content)


def _ids(items: list[dict[str, Any]]) -> list[str]:
    ids = list(map(itemgetter("id"), items))
    return ids if set(map(type, ids)) <= {str} else list(map(str, ids))


def _values(items: list[dict[str, Any]], key: str) -> list[Any]:
    return list(map(_get, items, repeat(key)))


def _times(items: list[dict[str, Any]]) -> list[datetime | None]:
    """``parse_time`` of every ``create_time``; plain RFC 3339 text skips its checks."""
    values = _values(items, "create_time")
    try:
        moments = list(map(datetime.fromisoformat, values))
    except (TypeError, ValueError):
        return list(map(parse_time, values))
    if not moments:
        return []
    try:
        naive = min(moments).tzinfo is None
    except TypeError:  # naive and aware ones compared
        naive = True
    # Each value was ISO text starting with its 4-digit year: Go's zero time sorts first.
    if naive or min(values) < "0002":
        return list(map(parse_time, values))
    return [*moments]


def _histories(items: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    values = _values(items, "history")
    if not any(values):  # as listings give them
        return [()] * len(values)
    return [strings(value) if value else () for value in values]


def _byte_counts(items: list[dict[str, Any]]) -> list[int | None]:
    """``byte_count`` of every ``changed_bytes``; checked a column at a time where each is
    absent (the real service) or a count (the local server)."""
    values = _values(items, "changed_bytes")
    if set(map(type, values)) <= {int, type(None)} and min(filter(None, values), default=0) >= 0:
        return values
    return list(map(byte_count, values))


def _extras(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{} if plain else {k: v for k, v in item.items() if k not in _CHECKPOINT_KEYS}
            for plain, item in zip(map(_CHECKPOINT_KEYS.issuperset, items), items,
                                   strict=True)]


_COLUMNS: dict[str, Callable[[list[dict[str, Any]]], list[Any]]] = {
    "id": _ids,
    "create_time": _times,
    "comment": lambda items: [value or "" for value in _values(items, "comment")],
    "source_id": lambda items: _values(items, "source_id"),
    "history": _histories,
    "is_auto": lambda items: list(map(bool, _values(items, "is_auto"))),
    "health": lambda items: [value or "" for value in _values(items, "health")],
    "changed_bytes": _byte_counts,
    "extra": _extras,
}


class CheckpointList(Sequence[Checkpoint]):
    """Checkpoints as a listing gave them, newest first: a sequence of
    :class:`Checkpoint` (each made when first read) that :meth:`column` also reads
    a field at a time. Every object must have an ``id``."""

    __slots__ = ("_columns", "_items", "_models")

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self._items = items
        self._models: list[Checkpoint | None] = [None] * len(items)
        self._columns: dict[str, list[Any]] = {}

    def column(self, field: str) -> list[Any]:
        """Every checkpoint's value of ``field`` (a :class:`Checkpoint` field name)."""
        if field not in self._columns:
            try:
                make = _COLUMNS[field]
            except KeyError:
                raise ValueError(f"Checkpoint has no field {field!r}; fields: "
                                 f"{', '.join(_COLUMNS)}") from None
            self._columns[field] = make(self._items)
        return self._columns[field]

    def values(self, key: str) -> list[Any]:
        """Every checkpoint's JSON value of ``key`` as the server sent it (``None`` where
        absent), for a reader that parses a whole column its own faster way."""
        return _values(self._items, key)

    def where(self, keep: Iterable[bool]) -> CheckpointList:
        """The checkpoints whose ``keep`` flag (one per checkpoint, in order) is true,
        still without making their models."""
        return CheckpointList(list(compress(self._items, keep)))

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Checkpoint: ...

    @overload
    def __getitem__(self, index: slice) -> CheckpointList: ...

    def __getitem__(self, index: int | slice) -> Checkpoint | CheckpointList:
        if isinstance(index, slice):
            return CheckpointList(self._items[index])
        model = self._models[index]
        if model is None:
            model = self._models[index] = Checkpoint.from_json(self._items[index])
        return model

    def __iter__(self) -> Iterator[Checkpoint]:
        for index in range(len(self._items)):
            yield self[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CheckpointList | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, so unhashable like them

    def __repr__(self) -> str:
        shown = ", ".join(map(repr, self[:_SHOWN]))
        more = f", … {len(self) - _SHOWN} more" if len(self) > _SHOWN else ""
        return f"[{shown}{more}]"


def checkpoint_objects(body: object, *, skip: str, what: str) -> list[dict[str, Any]]:
    """The JSON objects of a listing's array but the one whose id is ``skip``."""
    if not isinstance(body, list):
        raise ProtocolError(f"{what}: expected a JSON array")
    objects = (body if all(map(isinstance, body, repeat(dict)))
               else [item for item in body if isinstance(item, dict)])
    ids = list(map(_get, objects, repeat("id")))
    if skip not in ids:
        items = objects
    elif ids[0] == skip and ids.count(skip) == 1:  # where servers put it
        items = objects[1:]
    else:
        items = list(compress(objects, map(ne, ids, repeat(skip))))
    if None in ids and not all(map(dict.__contains__, items, repeat("id"))):
        nameless = next(item for item in items if "id" not in item)
        raise ProtocolError(f"{what}: a checkpoint without an id: {nameless!r:.120}")
    return items
