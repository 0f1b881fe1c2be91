"""How models show themselves to people: short reprs and small HTML tables for Jupyter."""

from __future__ import annotations

import html
from datetime import UTC, datetime

__all__ = ["html_table", "short", "when"]


def when(moment: datetime | None) -> str:
    """A moment as people read it in a repr: ``2026-06-02 17:11:14 UTC``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "never"


def short(text: str, limit: int = 60) -> str:
    """The repr of ``text``, cut to ``limit`` characters with an ellipsis."""
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return repr(text)


def html_table(title: str, rows: list[tuple[str, object]]) -> str:
    """A small two-column table (what Jupyter shows for a model as a cell's result)."""
    cells = "".join(f"<tr><th style='text-align:left'>{html.escape(key)}</th>"
                    f"<td style='text-align:left'>{html.escape(str(value))}</td></tr>"
                    for key, value in rows if value not in (None, "", ()))
    return f"<table><caption>{html.escape(title)}</caption>{cells}</table>"
