"""Progress for streamed operations (checkpoint, restore, service streams).

A view receives events one by one (:meth:`update`) and ends in exactly one of
:meth:`succeed`, :meth:`fail` or :meth:`cancel`. :class:`ProgressBar` is the
widget (stage text, step bar, elapsed time; green on success, red on failure or
Ctrl-C); :class:`ProgressText` prints the same stages as plain lines for
terminals and notebooks without widget state.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, TextIO, TypeVar

from .fallback import TextFallback

__all__ = ["ProgressBar", "ProgressText", "ProgressView", "describe_event", "track"]

E = TypeVar("E")

# Service-stream event types that mark a stage (the rest are output or the end).
_STAGES = {"started": "started", "stopping": "stopping", "stopped": "stopped",
           "exit": "exited"}


def describe_event(event: Any) -> str | None:
    """The one-line stage text for a stream event, or None when it is not a stage.

    Works for checkpoint ``StreamMessage``, service ``ServiceLogEvent`` and
    session ``KillEvent`` alike.
    """
    kind = event.type
    data = getattr(event, "data", None)
    message = getattr(event, "message", None)
    if kind in ("info", "complete"):
        return str(data or message or kind)
    if kind == "error":
        return str(getattr(event, "error", None) or data or message or "error")
    if kind in ("stdout", "stderr"):
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data or "")
        return text.rstrip("\n") or None
    if kind in _STAGES:
        code = getattr(event, "exit_code", None)
        suffix = f" (exit code {code})" if code is not None else ""
        return f"{_STAGES[kind]}{suffix}"
    return str(message) if message else None


class ProgressView(Protocol):
    """Where the stages of a streamed operation are shown."""

    def update(self, event: Any) -> None: ...
    def succeed(self, message: str) -> None: ...
    def fail(self, message: str) -> None: ...
    def cancel(self) -> None: ...


def track(events: Iterable[E], view: ProgressView) -> Iterator[E]:
    """Feed every event to ``view`` while passing it on; mark failure and Ctrl-C.

    Success is left to the caller (an operation may span several streams).
    """
    try:
        for event in events:
            view.update(event)
            yield event
    except KeyboardInterrupt:
        view.cancel()
        raise
    except Exception as error:
        view.fail(str(error))
        raise


# The final bar's colour, as the widget's bar styles draw it.
_BAR_COLOUR = {"done": "#388e3c", "failed": "#d32f2f", "cancelled": "#d32f2f"}


class ProgressBar(TextFallback):
    """Stage text, a step bar and elapsed time, composed of stock widgets."""

    def __init__(self, title: str) -> None:
        import ipywidgets as w
        self.title = title
        self.steps = 0
        self.state = "running"
        self._started = time.monotonic()
        self.label = w.HTML(self._label("starting…"))
        self.bar = w.IntProgress(value=0, min=0, max=1, bar_style="info",
                                 layout=w.Layout(width="12em"))
        self.clock = w.HTML("0.0 s")
        self.stages: list[str] = []
        self.widget = w.HBox([self.bar, self.clock, self.label])

    def _label(self, text: str) -> str:
        return f"<b>{html.escape(self.title)}</b>: {html.escape(text)}"

    def _tick(self) -> None:
        self.clock.value = f"{time.monotonic() - self._started:.1f} s"

    def update(self, event: Any) -> None:
        text = describe_event(event)
        if text is None:
            return
        if event.type == "error":
            self.fail(text)
            return
        self.steps += 1
        self.stages.append(text)
        self.bar.max = max(self.bar.max, self.steps + 1)
        self.bar.value = self.steps
        self.label.value = self._label(text)
        self._tick()

    def _end(self, state: str, style: str, text: str) -> None:
        if self.state != "running":
            return
        self.state = state
        self.bar.bar_style = style
        if state == "done":
            self.bar.value = self.bar.max
        self.label.value = self._label(text)
        self._tick()
        ending = {"done": f"{text} ({self.clock.value})", "failed": f"failed: {text}"}
        self.stages.append(ending.get(state, state))
        self._ended()

    def text(self) -> str:
        return "\n".join(f"{self.title}: {stage}" for stage in self.stages) or self.title

    def final_html(self) -> str:
        colour = _BAR_COLOUR.get(self.state, "#9e9e9e")
        return (f'<div class="sprites-progress sprites-progress-{self.state}" '
                'style="display:flex;align-items:center;gap:0.6em">'
                f'<div style="width:12em;height:1.1em;background:{colour}"></div>'
                f"<span>{html.escape(self.clock.value)}</span>"
                f"<span>{self.label.value}</span></div>")

    def succeed(self, message: str) -> None:
        self._end("done", "success", message)

    def fail(self, message: str) -> None:
        self._end("failed", "danger", message)

    def cancel(self) -> None:
        self._end("cancelled", "danger", "cancelled")


class ProgressText:
    """The text fallback: one plain line per stage."""

    def __init__(self, title: str, stream: TextIO | None = None) -> None:
        self.title = title
        self.state = "running"
        self._stream = stream
        self._started = time.monotonic()

    def _print(self, text: str) -> None:
        print(f"{self.title}: {text}", file=self._stream or sys.stdout, flush=True)

    def update(self, event: Any) -> None:
        text = describe_event(event)
        if text is None:
            return
        if event.type == "error":
            self.fail(text)
        else:
            self._print(text)

    def _end(self, state: str, text: str) -> None:
        if self.state != "running":
            return
        self.state = state
        self._print(f"{text} ({time.monotonic() - self._started:.1f} s)")

    def succeed(self, message: str) -> None:
        self._end("done", message)

    def fail(self, message: str) -> None:
        self._end("failed", f"failed: {message}")

    def cancel(self) -> None:
        self._end("cancelled", "cancelled")
