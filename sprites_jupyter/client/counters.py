"""The organisation's sprite counters that come with a sprite listing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

_COUNTERS = ("running", "warm", "cold", "running_limit", "warm_limit")


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class SpriteCounts:
    """How many sprites are running, warm and cold, and the limits, when the service says
    (``None`` for a counter it does not report).

    sprites-go reads an ``org`` object ``{name, running, warm, cold, running_limit,
    warm_limit}``, sprites-py top-level ``running``/``warm``/``cold``: both are read,
    the ``org`` object first.
    """

    organization: str = ""
    running: int | None = None
    warm: int | None = None
    cold: int | None = None
    running_limit: int | None = None
    warm_limit: int | None = None

    @property
    def total(self) -> int | None:
        """Running, warm and cold together; ``None`` unless all three are known."""
        parts = (self.running, self.warm, self.cold)
        return None if None in parts else sum(p for p in parts if p is not None)

    def __repr__(self) -> str:
        known = ", ".join(f"{name}={getattr(self, name)}" for name in _COUNTERS
                          if getattr(self, name) is not None)
        return f"SpriteCounts({self.organization or 'organisation'}: {known or 'not reported'})"

    @classmethod
    def from_listing(cls, body: Mapping[str, Any]) -> Self:
        org = body.get("org")
        org = org if isinstance(org, Mapping) else {}
        values = {name: _count(org.get(name, body.get(name))) for name in _COUNTERS}
        name = org.get("name") or body.get("org_slug") or ""
        return cls(organization=str(name), **values)
