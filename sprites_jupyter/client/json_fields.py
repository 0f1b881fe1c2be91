"""Reading the protocol's JSON into models: times in either of its forms, lists and objects
that may be absent or malformed, and unknown keys kept rather than dropped."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from .errors import ProtocolError

M = TypeVar("M")


def parse_time(value: object) -> datetime | None:
    """An aware UTC datetime from RFC 3339 text or Unix seconds; ``None`` when absent.

    Go's zero time (year 1) means "never" and also becomes ``None``.
    """
    if not isinstance(value, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    if moment.year <= 1:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_millis(value: object) -> datetime | None:
    """An aware datetime from Unix milliseconds (service log events)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    return parse_time(value)


def absent(_key: str) -> None:
    """What ``get`` answers for every key of a value that is not a JSON object."""
    return None


def strings(value: object) -> tuple[str, ...]:
    """A JSON list as a tuple of strings; anything else as empty."""
    if isinstance(value, list | tuple):
        items = tuple(value)  # a checkpoint's history can hold thousands of ids
        return items if set(map(type, items)) <= {str} else tuple(map(str, items))
    return ()


def byte_count(value: object) -> int | None:
    """A count of bytes as sent; ``None`` for anything that is not one."""
    return value if type(value) is int and value >= 0 else None


def json_object(value: object) -> dict[str, Any]:
    """A JSON object as a dict; anything else (``null``, a stray list) as empty."""
    return dict(value) if isinstance(value, dict) else {}


_FIELD_NAMES: dict[type[Any], frozenset[str]] = {}


def _field_names(cls: type[Any]) -> frozenset[str]:
    """A model's fields but ``extra`` (remembered: a listing builds thousands of models)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in dataclasses.fields(cls)) - {"extra"}
    return names


def build(cls: type[M], data: object, renames: Mapping[str, str] | None = None,
           **converted: Any) -> M:
    """Instantiate ``cls`` from a JSON object; unknown keys go to ``extra``."""
    if not isinstance(data, dict):
        raise ProtocolError(f"expected a JSON object for {cls.__name__}, got {data!r:.80}")
    known = _field_names(cls)
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        name = renames.get(key, key) if renames else key
        if name in known:
            values[name] = value
        else:
            extra[key] = value
    values.update(converted)
    try:
        make: Callable[..., M] = cls  # every model is a dataclass with an ``extra`` field
        return make(**values, extra=extra)
    except TypeError:
        raise ProtocolError(f"{cls.__name__} is missing a required field in "
                            f"{dict(data)!r:.120}") from None
