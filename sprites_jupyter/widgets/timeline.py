"""The timeline panel: the sprite's checkpoints newest first (the browser's rows, with
Changes and a confirmed Restore), an Undo to here button on each cell's checkpoint,
and the services with their state; refreshed whenever a cell has run.

Like the browser it never talks HTTP: the magics hand it callables. ``%sprite panel``
puts it in a JupyterLab side panel (``sidecar``); :func:`timeline_text` is the text
fallback.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .browser import CheckpointActions, CheckpointBrowser, describe_age
from .progress import ProgressView

if TYPE_CHECKING:
    import ipywidgets as w

__all__ = ["TimelinePanel", "timeline_text"]


def _services_html(services: Iterable[tuple[str, str]]) -> str:
    rows = [f"<code>{html.escape(name)}</code> {html.escape(state or 'unknown')}"
            for name, state in services]
    return "<b>Services</b><br>" + ("<br>".join(rows) if rows else "none")


def timeline_text(checkpoints: Iterable[Any], services: Iterable[tuple[str, str]]) -> str:
    """The panel as text: checkpoints newest first, then the services."""
    lines = [f"{c.id:<16} {describe_age(c.create_time):<10} {c.comment or ''}".rstrip()
             for c in checkpoints]
    lines = lines or ["no checkpoints yet"]
    named = [f"  {name}: {state or 'unknown'}" for name, state in services]
    return "\n".join([*lines, "services:", *(named or ["  none"]),
                      "Undo a cell: %sprite undo · restore: %sprite restore ID"])


class TimelinePanel:
    """The browser's checkpoint rows plus Undo to here and the services."""

    def __init__(self, title: str, actions: CheckpointActions, *,
                 is_cell: Callable[[Any], bool],
                 undo_to: Callable[[str, ProgressView], str],
                 services: Callable[[], list[tuple[str, str]]],
                 side_panel: bool = False) -> None:
        import ipywidgets as w
        self.is_cell = is_cell
        self.undo_to_action = undo_to
        self.list_services = services
        self.undo_buttons: dict[str, w.Button] = {}
        self.browser = CheckpointBrowser(title, actions, row_buttons=self._undo_button,
                                         narrow=side_panel)
        self.services = w.HTML()
        self.widget = w.VBox([self.browser.widget, self.services])
        self._show_services()

    def _undo_button(self, checkpoint: Any) -> list[w.Button]:
        import ipywidgets as w
        if not self.is_cell(checkpoint):
            return []
        button = w.Button(description="Undo to here", icon="step-backward",
                          tooltip=f"Undo every cell back to {checkpoint.id}",
                          layout=w.Layout(width="auto", flex="0 0 auto"))
        button.on_click(lambda _, cp=checkpoint.id: self.browser.start(
            lambda: self._undo_to(cp)))
        self.undo_buttons[checkpoint.id] = button
        return [button]

    def _undo_to(self, checkpoint_id: str) -> str:
        bar = self.browser.progress(f"Undo to {checkpoint_id}")
        message = self.undo_to_action(checkpoint_id, bar)
        self._show_services()
        return html.escape(message)

    def _show_services(self) -> None:
        try:
            self.services.value = _services_html(self.list_services())
        except Exception as error:
            self.services.value = ("<b>Services</b><br>"
                                   f"{html.escape(self.browser.actions.explain(error))}")

    def refresh(self) -> None:
        """Re-read checkpoints and services in the background (after a cell has run)."""
        def job() -> str:
            self._show_services()
            return ""

        self.browser.refresh(job)

    def wait(self, timeout: float | None = None) -> None:
        self.browser.wait(timeout)

    def close(self) -> None:
        self.browser.close()
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
