"""What every subcommand is handed: the client, the settings, the journal and the display."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.display import display

from ..client import NotFound, Sprite, SpritesClient
from ..config import SpriteSettings, widget_frontend
from ..journal import Journal, Outcome
from ..widgets.logs import LogPanel, LogText, LogView
from ..widgets.progress import ProgressBar, ProgressText, ProgressView
from .cell_checkpoints import UndoState
from .errors import user_errors
from .port_forwards import Forwards

__all__ = ["CommandContext"]


class CommandContext:
    """The magics' shared state, passed to each subcommand function."""

    def __init__(self, shell: Any, settings: SpriteSettings, journal: Journal,
                 client: Callable[[], SpritesClient]) -> None:
        self.shell = shell
        self.settings = settings
        self.journal = journal
        self._client = client
        self.servers_with_auto_backup: set[str] = set()
        self.forwards = Forwards()
        self.undo = UndoState()
        self._running_cell: object | None = None
        # The very objects registered, so unregistering finds them (IPython may wrap them).
        self._cell_events: list[tuple[str, Callable[[object], None]]] = [
            ("pre_run_cell", self._cell_started), ("post_run_cell", self._cell_finished)]
        for event, callback in self._cell_events:
            shell.events.register(event, callback)

    def _cell_started(self, info: object) -> None:
        self._running_cell = info

    def _cell_finished(self, result: object) -> None:
        self._running_cell = None

    def stop_tracking_cells(self) -> None:
        """Forget the shell's cell events (the extension is being unloaded)."""
        for event, callback in self._cell_events:
            self.shell.events.unregister(event, callback)
        self._cell_events = []

    @property
    def client(self) -> SpritesClient:
        return self._client()

    @property
    def widgets(self) -> bool:
        return widget_frontend(self.shell, self.settings.widgets)

    def target(self, name: str | None = None) -> str:
        """The sprite to act on: ``-s NAME`` if given, else the current one."""
        chosen = name or self.settings.sprite
        if not chosen:
            raise UsageError("No sprite selected: run %sprite use NAME")
        return chosen

    def sprite(self, name: str | None = None) -> Sprite:
        return self.client.sprite(self.target(name))

    def sprite_exists(self, name: str) -> bool:
        try:
            self.client.get_sprite(name)
        except NotFound:
            return False
        return True

    @contextmanager
    def operation(self, sprite: str, operation: str, target: str = "") -> Iterator[Outcome]:
        """Journal the block and turn its client errors into one-line UsageErrors."""
        with (self.journal.record(sprite, operation, target) as outcome,
              user_errors(sprite, operation=operation, sprite_exists=self.sprite_exists)):
            yield outcome

    def show(self, obj: Any, *, live: bool = False) -> None:
        """Display ``obj``; a ``live`` view re-publishes itself when it ends, so the
        saved notebook keeps its final text even without widget state. One that ends
        while its cell still runs (a progress bar, a command's output) is frozen into
        static HTML first: it has nothing left to do, and its widget state would only
        swell the saved notebook. One that ends later (a followed log) stays a widget."""
        handle = display(obj, display_id=True)
        if live and handle is not None:
            # The shell's cell events, not execution_count: IPython 8 counts a cell when
            # it ends, IPython 9 when it starts.
            cell = self._running_cell

            def ended() -> None:
                finished_in_cell = cell is not None and self._running_cell is cell
                if finished_in_cell:
                    obj.freeze()
                handle.update(obj)
                if finished_in_cell:
                    obj.close_widgets()

            obj.on_end = ended

    def progress(self, title: str) -> ProgressView:
        """A progress view, already displayed when it is a widget."""
        if self.widgets:
            bar = ProgressBar(title)
            self.show(bar, live=True)
            return bar
        return ProgressText(title)

    def log_view(self, title: str, *, on_stop: Callable[[], None] | None = None,
                 prefix: str = "", announce: bool = False) -> LogView:
        """A live log view, already displayed when it is a widget; the text view prints
        its state changes with ``announce`` (or a ``prefix``)."""
        if self.widgets:
            panel = LogPanel(title, max_lines=self.settings.max_log_lines, on_stop=on_stop)
            self.show(panel, live=True)
            return panel
        return LogText(title, prefix=prefix, announce=announce)

    def confirm(self, question: str, *, how_to_skip: str) -> None:
        """Ask a yes/no question; raise ``UsageError`` unless answered yes.

        Where nobody can answer (no terminal, a kernel without stdin such as
        papermill) the error says which flag confirms instead.
        """
        if getattr(self.shell, "kernel", None) is None and not sys.stdin.isatty():
            raise UsageError(f"{question} Nobody can answer here: {how_to_skip}")
        try:
            answer = input(f"{question} [y/N] ")
        except (StdinNotImplementedError, EOFError, OSError):
            raise UsageError(f"{question} Nobody can answer here: {how_to_skip}") from None
        if answer.strip().lower() not in ("y", "yes"):
            raise UsageError("Cancelled: nothing was changed")
