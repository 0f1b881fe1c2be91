"""``%sprite panel``: the sprite's timeline beside the notebook.

In JupyterLab the panel opens in a side panel (``sidecar``, stock widgets, nothing to
build) and refreshes after every cell; VS Code and classic Notebook cannot host a side
panel, so it is drawn in the cell; a terminal gets the text.
"""

from __future__ import annotations

import os
from argparse import Namespace
from typing import Any

from ..client import Sprite
from ..widgets.timeline import TimelinePanel, timeline_text
from .cell_checkpoints import cell_tag
from .checkpoints import browser_actions
from .context import CommandContext
from .registry import argument, subcommand
from .undo import undo_to

__all__ = ["panel"]


def _services(handle: Sprite) -> list[tuple[str, str]]:
    return [(s.name, s.state.status if s.state is not None else "")
            for s in handle.list_services()]


def _side_panel_host(ctx: CommandContext) -> str:
    """Why the panel cannot go beside the notebook here, or ``""`` when it can."""
    if "VSCODE_PID" in os.environ or "__vsc_ipynb_file__" in ctx.shell.user_ns:
        return "VS Code has no side panels for widgets"
    return ""


@subcommand("panel", "the sprite's timeline in a JupyterLab side panel: panel [--inline]",
            argument("--inline", action="store_true",
                     help="draw it in the cell instead of a side panel"))
def panel(ctx: CommandContext, args: Namespace) -> Any:
    """Open the timeline panel; the panel object when drawn in the cell."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "panel"):
        if not ctx.widgets:
            print("No widget frontend here: the timeline as text (%sprite panel in "
                  "JupyterLab opens it beside the notebook)")
            print(timeline_text(handle.list_checkpoints(include_auto=True), _services(handle)))
            return None
        why_not = _side_panel_host(ctx)
        beside = not (args.inline or why_not)
        timeline = TimelinePanel(
            handle.name, browser_actions(ctx, handle),
            is_cell=lambda checkpoint: cell_tag(checkpoint.comment) is not None,
            undo_to=lambda checkpoint_id, view: undo_to(ctx, handle, checkpoint_id, view),
            services=lambda: _services(handle), side_panel=beside)
        _refresh_after_cells(ctx, timeline)
        if not beside:
            if why_not:
                print(f"{why_not}: the timeline is drawn in this cell instead")
            return timeline
        from sidecar import Sidecar

        side = Sidecar(title=f"Sprite {handle.name}")
        with side:
            ctx.show(timeline.widget)
        return None


def _refresh_after_cells(ctx: CommandContext, timeline: TimelinePanel) -> None:
    """Refresh after every cell, until the panel is closed."""
    def refresh(result: Any) -> None:
        if timeline.widget.comm is None:
            ctx.shell.events.unregister("post_run_cell", refresh)
            return
        timeline.refresh()

    ctx.shell.events.register("post_run_cell", refresh)
