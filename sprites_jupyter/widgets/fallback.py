"""The text a widget leaves behind where no widget frontend renders it.

A notebook saved without widget state (nbconvert, papermill, GitHub) shows an
output's ``text/plain``; for a stock widget that is ``HBox(children=…)``. Views
using :class:`TextFallback` put their own state there instead, and call
``on_end`` when they finish so the display can be re-published with the final
text (``DisplayHandle.update``). A finished view can also :meth:`~TextFallback.freeze`:
it is then shown as static HTML, and once re-published its widgets can be closed, so a
saved notebook carries no widget state for it (a dozen models, about 1 KB each).
"""

from __future__ import annotations

import html
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ipywidgets as w


__all__ = ["TextFallback"]


class TextFallback(ABC):
    """Mixin for a view that has a ``widget`` and can describe itself as text."""

    widget: w.DOMWidget
    on_end: Callable[[], None] | None = None
    frozen = False

    @abstractmethod
    def text(self) -> str:
        """The view's current state as plain text."""

    def final_html(self) -> str:
        """The finished view as static HTML (subclasses draw it like their widget)."""
        return f"<pre>{html.escape(self.text())}</pre>"

    def freeze(self) -> None:
        """Show the finished view as static HTML from now on."""
        self.frozen = True

    def close_widgets(self) -> None:
        """Close the widget's models (once the display no longer shows them)."""
        _close_tree(self.widget)

    def _ended(self) -> None:
        if self.on_end is not None:
            self.on_end()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        if self.frozen:
            return {"text/plain": self.text(), "text/html": self.final_html()}
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = self.text()
        return bundle


def _close_tree(widget: Any) -> None:
    """Close a widget, its children and their layout and style models."""
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    for part in (getattr(widget, "layout", None), getattr(widget, "style", None)):
        if part is not None:
            part.close()
    widget.close()
