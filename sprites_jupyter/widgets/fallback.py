"""The text a widget leaves behind where no widget frontend renders it.

A notebook saved without widget state (nbconvert, papermill, GitHub) shows an
output's ``text/plain``; for a stock widget that is ``HBox(children=…)``. Views
using :class:`TextFallback` put their own state there instead, and call
``on_end`` when they finish so the display can be re-published with the final
text (``DisplayHandle.update``).
"""

from __future__ import annotations

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

    @abstractmethod
    def text(self) -> str:
        """The view's current state as plain text."""

    def _ended(self) -> None:
        if self.on_end is not None:
            self.on_end()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = self.text()
        return bundle
