"""The checkpoint browser's **Changes**: what restoring each checkpoint would undo.

Each row gets a button that works out, in the background, what changed since
that checkpoint; the button then reads as the summary (``3 files differ: …``,
and how many of the Python session's variables differ) and expands into the
table of paths and the table of variables. The restore confirmation asks the same
question and shows its answer (``Restoring v1 will undo 3 changes: …``).
Results are kept until the sprite may have changed (a restore, a new
checkpoint, a refresh). The computation is a callable given by the magics.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from ..frames import describe_changes, describe_undo

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ChangesRow", "CheckpointChanges"]

TABLE_ROWS = 200


class CheckpointChanges:
    """Changes since each checkpoint, computed one at a time off the kernel's thread.

    ``compute(id)`` returns the DataFrame of changes between checkpoint ``id``
    and now, or raises with a message ``explain`` turns into one line;
    ``variables(id)`` (when given) the DataFrame of variables that differ.
    """

    def __init__(self, compute: Callable[[str], pd.DataFrame],
                 explain: Callable[[BaseException], str] = str,
                 variables: Callable[[str], pd.DataFrame] | None = None) -> None:
        self.compute = compute
        self.explain = explain
        self.variables = variables
        self.known: dict[str, pd.DataFrame | str] = {}
        self.known_variables: dict[str, pd.DataFrame | str] = {}
        self.generation = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sprites-changes")
        self.pending: list[Future[None]] = []

    def forget(self) -> None:
        """Drop what is known (and what is being worked out): the sprite may have changed."""
        self.known.clear()
        self.known_variables.clear()
        self.generation += 1

    def ask(self, checkpoint_id: str,
            then: Callable[[pd.DataFrame | None, str], None]) -> None:
        """Call ``then(frame, summary)`` once known (``frame`` is None when it failed)."""
        generation = self.generation

        def job() -> None:
            found = self.known.get(checkpoint_id)
            if found is None:
                try:
                    found = self.compute(checkpoint_id)
                except Exception as error:
                    found = self.explain(error)
                if generation == self.generation:
                    self.known[checkpoint_id] = found
            if isinstance(found, str):
                then(None, found)
            else:
                then(found, describe_changes(found))

        self.pending = [f for f in self.pending if not f.done()]
        self.pending.append(self.executor.submit(job))

    def ask_variables(self, checkpoint_id: str,
                      then: Callable[[pd.DataFrame | None, str], None]) -> None:
        """Call ``then(frame, summary)`` with the variables that differ (when asked for)."""
        if self.variables is None:
            return
        compute = self.variables
        generation = self.generation

        def job() -> None:
            found = self.known_variables.get(checkpoint_id)
            if found is None:
                try:
                    found = compute(checkpoint_id)
                except Exception as error:
                    found = self.explain(error)
                if generation == self.generation:
                    self.known_variables[checkpoint_id] = found
            if isinstance(found, str):
                then(None, f"variables unknown: {found}")
            else:
                count = len(found)
                then(found, f"{count} variable{'s' if count != 1 else ''} differ"
                            f"{'s' if count == 1 else ''}")

        self.pending = [f for f in self.pending if not f.done()]
        self.pending.append(self.executor.submit(job))

    def undo_sentence(self, checkpoint_id: str, then: Callable[[str], None]) -> None:
        """Call ``then`` with what restoring ``checkpoint_id`` would undo."""
        self.ask(checkpoint_id, lambda frame, summary: then(
            describe_undo(checkpoint_id, frame) if frame is not None
            else f"What it would undo is unknown: {summary}"))

    def wait(self, timeout: float | None = None) -> None:
        """Block until every requested answer is in."""
        wait(list(self.pending), timeout)

    def row(self, checkpoint_id: str) -> ChangesRow:
        return ChangesRow(checkpoint_id, self)


class ChangesRow:
    """A row's Changes button and the table it expands into."""

    def __init__(self, checkpoint_id: str, changes: CheckpointChanges) -> None:
        import ipywidgets as w
        self.checkpoint_id = checkpoint_id
        self.changes = changes
        self.button = w.Button(description="Changes", icon="list",
                               tooltip=f"What changed since {checkpoint_id}",
                               layout=w.Layout(width="auto", flex="0 0 auto"))
        self.table = w.HTML(layout=w.Layout(max_height="20em", overflow="auto"))
        self.variables = w.HTML(layout=w.Layout(max_height="20em", overflow="auto"))
        self.detail = w.VBox([self.table, self.variables], layout=w.Layout(display="none"))
        self.asked = False
        self.button.on_click(lambda _: self.toggle())

    def toggle(self) -> None:
        if self.asked:
            shown = self.detail.layout.display != "none"
            self.detail.layout.display = "none" if shown else "flex"
            return
        self.asked = True
        self.button.description = f"Comparing {self.checkpoint_id} with now…"
        self.changes.ask(self.checkpoint_id, self._show)
        self.changes.ask_variables(self.checkpoint_id, self._show_variables)

    def _show_variables(self, frame: pd.DataFrame | None, summary: str) -> None:
        if frame is None or frame.empty:
            self.variables.value = f"<p>Python session: {html.escape(summary)}</p>"
            return
        self.variables.value = (f"<p>Python session: {html.escape(summary)}</p>"
                                + frame.to_html(index=False, na_rep="", border=0))
        self.detail.layout.display = "flex"

    def _show(self, frame: pd.DataFrame | None, summary: str) -> None:
        self.button.description = summary
        self.button.tooltip = summary
        if frame is None:
            self.button.button_style = "warning"
            return
        if frame.empty:
            self.table.value = ""
            return
        shown = frame.head(TABLE_ROWS)
        more = len(frame) - len(shown)
        note = f"<p>… and {more} more: %sprite diff {html.escape(self.checkpoint_id)}</p>" \
            if more else ""
        self.table.value = shown.to_html(index=False, na_rep="", border=0) + note
        self.detail.layout.display = "flex"
