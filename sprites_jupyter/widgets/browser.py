"""The checkpoint browser: one row per checkpoint with a Restore button.

The browser never talks HTTP: it is given :class:`CheckpointActions` (plain
callables made by the magics). A restore asks for confirmation first, re-checks
that the checkpoint still exists, disables every button and shows progress
while it runs in a background thread (the kernel keeps answering), then
refreshes the table and shows the undo id. :func:`checkpoint_table_text` is the
text fallback.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .changes import CheckpointChanges
from .progress import ProgressBar, ProgressView

if TYPE_CHECKING:
    import ipywidgets as w

__all__ = ["CheckpointActions", "CheckpointBrowser", "checkpoint_table_text", "describe_age",
           "describe_size"]

AGE_TICK = 5.0  # seconds between updates of the ages shown ("18 s ago")

SIZE_MEANING = "bytes of the files new or changed since the checkpoint before it"
RESTORE_EFFECT = ("replaces the sprite's filesystem, service definitions and network policy "
                  "with the checkpoint's, and stops every running process")


@dataclass(frozen=True)
class CheckpointActions:
    """What the browser may do, as callables that report progress to a view.

    ``restore`` returns the id of the checkpoint that undoes the restore;
    ``create`` returns the new checkpoint's id; ``explain`` turns an exception
    into the one line shown to the user; ``changes`` (when given) returns the
    DataFrame of files changed since a checkpoint and ``variables`` that of the
    Python session's variables, for the Changes column; ``preview`` (when given)
    is the restore confirmation's paragraph (else it is made from ``changes``);
    ``gone`` says whether the sprite no longer exists.
    """

    list: Callable[[], Sequence[Any]]
    get: Callable[[str], Any]
    restore: Callable[[str, ProgressView], str]
    create: Callable[[str, ProgressView], str]
    explain: Callable[[BaseException], str] = str
    changes: Callable[[str], Any] | None = None
    variables: Callable[[str], Any] | None = None
    preview: Callable[[str], str] | None = None
    gone: Callable[[], bool] | None = None


def describe_age(when: datetime | None, now: datetime | None = None) -> str:
    """A short human age such as ``3 min ago``."""
    if when is None:
        return ""
    seconds = max(0, int(((now or datetime.now(UTC)) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def describe_size(changed_bytes: int | None) -> str:
    """What a checkpoint stored anew, such as ``+1.2 MB``; ``—`` where the server does
    not say (the Sprites service)."""
    if changed_bytes is None:
        return "—"
    if changed_bytes < 1000:
        return f"+{changed_bytes} B"
    size = changed_bytes / 1000
    for unit in ("kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            break
        size /= 1000
    return f"+{size:.1f} {unit}"


def checkpoint_table_text(checkpoints: Iterable[Any]) -> str:
    """The text fallback: an aligned table and how to restore."""
    rows = [(c.id, describe_age(c.create_time), c.comment or "") for c in checkpoints]
    if not rows:
        return "No checkpoints yet: take one with %sprite checkpoint -m COMMENT"
    width = max(len(r[0]) for r in rows)
    age_width = max(len(r[1]) for r in rows)
    lines = [f"{i:<{width}}  {a:<{age_width}}  {c}".rstrip() for i, a, c in rows]
    return "\n".join([*lines, "What a restore would undo: %sprite diff ID",
                       "Restore with: %sprite restore ID"])


class CheckpointBrowser:
    """Rows of checkpoints with Restore buttons, plus New checkpoint and Refresh."""

    def __init__(self, title: str, actions: CheckpointActions, *,
                 age_tick: float = AGE_TICK,
                 row_buttons: Callable[[Any], list[w.Button]] | None = None,
                 narrow: bool = False) -> None:
        import ipywidgets as w
        self.title = title
        self.narrow = narrow
        self.row_buttons = row_buttons
        self.extra_buttons: list[w.Button] = []
        self.actions = actions
        self.age_tick = age_tick
        self.ages: list[tuple[w.HTML, datetime | None]] = []
        self._closed = threading.Event()
        self.checkpoints: list[Any] = []
        self.restore_buttons: dict[str, w.Button] = {}
        self.pending: str | None = None
        self.worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = False
        self._queued: Callable[[], str] | None = None
        self.previewer: threading.Thread | None = None
        self.gone = False
        self.changes = (CheckpointChanges(actions.changes, actions.explain, actions.variables)
                        if actions.changes is not None else None)
        self.changes_rows: dict[str, Any] = {}
        self.heading = w.HTML(f"<b>Checkpoints of {html.escape(title)}</b>")
        self.rows = w.VBox()
        self.comment = w.Text(placeholder="comment for a new checkpoint")
        self.new_button = w.Button(description="New checkpoint", icon="camera")
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.confirm_text = w.HTML()
        self.undo_text = w.HTML()
        self.confirm_button = w.Button(description="Restore", button_style="danger")
        self.cancel_button = w.Button(description="Cancel")
        self.confirm_box = w.VBox([self.undo_text, self.confirm_text,
                                   w.HBox([self.confirm_button, self.cancel_button])],
                                  layout=w.Layout(display="none"))
        self.progress_box = w.VBox()
        self.message = w.HTML()
        self.new_button.on_click(lambda _: self._start(self._create))
        self.refresh_button.on_click(lambda _: self._start(self._refresh))
        self.confirm_button.on_click(lambda _: self._start(self._restore))
        self.cancel_button.on_click(lambda _: self._hide_confirmation())
        self.widget = w.VBox([
            self.heading, self.rows,
            w.HBox([self.comment, self.new_button, self.refresh_button],
                   layout=w.Layout(flex_flow="row wrap" if narrow else "row")),
            self.confirm_box, self.progress_box, self.message,
        ])
        self._render(self.actions.list())
        threading.Thread(target=self._tick_ages, daemon=True).start()

    def close(self) -> None:
        """Close the widget and stop its clock."""
        self._closed.set()
        self.widget.close()

    def _tick_ages(self) -> None:
        """Keep the ages true ("3 min ago") while the browser is shown."""
        while not self._closed.wait(self.age_tick) and self.widget.comm is not None:
            for label, when in list(self.ages):
                text = describe_age(when)
                if label.value != text:
                    label.value = text

    @property
    def buttons(self) -> list[w.Button]:
        return [*self.restore_buttons.values(), *self.extra_buttons, self.new_button,
                self.refresh_button, self.confirm_button, self.cancel_button]

    def _render(self, checkpoints: Sequence[Any]) -> None:
        import ipywidgets as w
        self.checkpoints = list(checkpoints)
        self.restore_buttons = {}
        self.changes_rows = {}
        self.extra_buttons = []
        if self.changes is not None:
            self.changes.forget()
        rows: list[w.Widget] = []
        ages = []
        for checkpoint in self.checkpoints:
            button = w.Button(description="Restore", icon="undo",
                              tooltip=f"Restore {checkpoint.id}",
                              layout=w.Layout(width="auto", flex="0 0 auto"))
            button.on_click(lambda _, cp=checkpoint: self._ask(cp))
            self.restore_buttons[checkpoint.id] = button
            age = w.HTML(describe_age(checkpoint.create_time), layout=w.Layout(width="8em"))
            ages.append((age, checkpoint.create_time))
            buttons = [button]
            if self.row_buttons is not None:
                extra = self.row_buttons(checkpoint)
                self.extra_buttons.extend(extra)
                buttons.extend(extra)
            detail = None
            if self.changes is not None:
                changes = self.changes_rows[checkpoint.id] = self.changes.row(checkpoint.id)
                buttons.append(changes.button)
                detail = changes.detail
            row = self._row(checkpoint, age, buttons)
            row.add_class("sprites-checkpoint-row")
            rows.append(row)
            if detail is not None:
                rows.append(detail)
        self.rows.children = rows
        self.ages = ages

    def _row(self, checkpoint: Any, age: w.HTML, buttons: list[w.Button]) -> w.Box:
        """A checkpoint's row: columns in a cell; in a narrow side panel the id, age and
        size above the comment, the buttons below, so nothing is cut off."""
        import ipywidgets as w
        checkpoint_id = html.escape(checkpoint.id)
        comment = html.escape(checkpoint.comment or "")
        size = w.HTML(f'<span title="{SIZE_MEANING}">'
                      f'{describe_size(getattr(checkpoint, "changed_bytes", None))}</span>',
                      layout=w.Layout(width="6em", flex="0 0 auto"))
        if self.narrow:
            return w.VBox([
                w.HBox([w.HTML(f"<code>{checkpoint_id}</code>",
                               layout=w.Layout(flex="1 1 auto")), age, size]),
                w.HTML(f'<span style="overflow-wrap:anywhere">{comment}</span>'),
                w.HBox(buttons, layout=w.Layout(flex_flow="row wrap")),
            ], layout=w.Layout(border_bottom="1px solid var(--jp-border-color2, #e0e0e0)",
                               padding="2px 0 4px 0"))
        return w.HBox([
            w.HTML(f'<code style="white-space:nowrap">{checkpoint_id}</code>',
                   layout=w.Layout(width="14em", flex="0 1 auto", min_width="5em")),
            age, size,
            w.HTML(comment, layout=w.Layout(width="20em", flex="0 1 auto", min_width="6em")),
            *buttons,
        ])

    def _check_gone(self) -> bool:
        """When the sprite no longer exists: say so in one line, disable every button."""
        if self.gone or self.actions.gone is None or not self.actions.gone():
            return self.gone
        self.gone = True
        self._hide_confirmation()
        self.message.value = (f"Sprite <code>{html.escape(self.title)}</code> is gone (it was "
                              "destroyed): its checkpoints went with it.")
        for button in self.buttons:
            button.disabled = True
        for row in self.changes_rows.values():
            row.button.disabled = True
        return True

    def _ask(self, checkpoint: Any) -> None:
        if self._check_gone():
            return
        self.pending = checkpoint.id
        comment = f" “{html.escape(checkpoint.comment)}”" if checkpoint.comment else ""
        self.confirm_text.value = (
            f"Restore <code>{html.escape(checkpoint.id)}</code>{comment}, taken "
            f"{describe_age(checkpoint.create_time)}? This {RESTORE_EFFECT}. "
            "A checkpoint of the current state is taken first so you can undo.")
        self.confirm_button.description = f"Restore {checkpoint.id}"
        self.confirm_box.layout.display = "flex"
        self.undo_text.value = ""
        if self.actions.preview is not None:
            self.undo_text.value = f"Working out what restoring {html.escape(checkpoint.id)} " \
                                   "would undo…"
            self.previewer = threading.Thread(target=self._preview, args=(checkpoint.id,),
                                              daemon=True)
            self.previewer.start()
        elif self.changes is not None:
            self.undo_text.value = f"Working out what restoring {html.escape(checkpoint.id)} " \
                                   "would undo…"
            self.changes.undo_sentence(checkpoint.id,
                                       lambda sentence: self._show_undo(checkpoint.id, sentence))

    def _preview(self, checkpoint_id: str) -> None:
        assert self.actions.preview is not None
        try:
            paragraph = self.actions.preview(checkpoint_id)
        except Exception as error:
            paragraph = f"What it would undo is unknown: {self.actions.explain(error)}"
        self._show_undo(checkpoint_id, paragraph)

    def _show_undo(self, checkpoint_id: str, sentence: str) -> None:
        if self.pending == checkpoint_id:
            self.undo_text.value = f"<b>{html.escape(sentence)}</b>"

    def _hide_confirmation(self) -> None:
        self.pending = None
        self.confirm_box.layout.display = "none"

    def start(self, job: Callable[[], str]) -> None:
        """Run ``job`` in the background as the browser's own buttons do (buttons off,
        its returned HTML as the message, the table refreshed)."""
        self._start(job)

    def refresh(self, job: Callable[[], str] = lambda: "") -> None:
        """Run ``job`` and re-read the checkpoints in the background, keeping the message
        shown; asked while something runs, it runs right after, so no change is missed."""
        self._start(job, queue=True)

    def _start(self, job: Callable[[], str], *, queue: bool = False) -> None:
        with self._lock:
            if self._busy:
                if queue:
                    self._queued = job
                return
            self._busy = True
            self.worker = threading.Thread(target=self._run_all, args=(job, queue),
                                           daemon=True)
            self.worker.start()

    def _run_all(self, job: Callable[[], str], quiet: bool) -> None:
        """Run ``job``, then each refresh asked for meanwhile (the last one asked)."""
        queued: Callable[[], str] | None = job
        while queued is not None:
            try:
                self._run(queued, quiet=quiet)
            finally:
                with self._lock:
                    queued, self._queued = self._queued, None
                    self._busy = queued is not None
            quiet = True

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current background job (if any) has finished."""
        if self.worker is not None:
            self.worker.join(timeout)
        if self.previewer is not None:
            self.previewer.join(timeout)
        if self.changes is not None:
            self.changes.wait(timeout)

    def _run(self, job: Callable[[], str], *, quiet: bool = False) -> None:
        for button in self.buttons:
            button.disabled = True
        if not quiet:
            self.message.value = ""
        try:
            note = job()
        except Exception as error:
            if self._check_gone():
                return
            note = f'<span style="color:#c62828">{html.escape(self.actions.explain(error))}</span>'
        try:
            self._render(self.actions.list())
        except Exception as error:
            note += f"<br>Refresh failed: {html.escape(self.actions.explain(error))}"
        if note or not quiet:
            self.message.value = note
        for button in self.buttons:
            button.disabled = False

    def progress(self, title: str) -> ProgressBar:
        """A progress bar in the browser's progress area, for a job given to start()."""
        return self._progress(title)

    def _progress(self, title: str) -> ProgressBar:
        bar = ProgressBar(title)
        self.progress_box.children = [bar.widget]
        return bar

    def _refresh(self) -> str:
        return ""

    def _restore(self) -> str:
        target = self.pending
        self._hide_confirmation()
        if target is None:
            return ""
        self.actions.get(target)
        bar = self._progress(f"Restore {target}")
        undo = self.actions.restore(target, bar)
        return (f"Restored <code>{html.escape(target)}</code>. Undo by restoring "
                f"<code>{html.escape(undo)}</code>.")

    def _create(self) -> str:
        bar = self._progress("Checkpoint")
        new_id = self.actions.create(self.comment.value, bar)
        self.comment.value = ""
        return f"Created <code>{html.escape(new_id)}</code>."

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
