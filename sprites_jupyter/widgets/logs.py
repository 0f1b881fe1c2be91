"""Live output of a command or a service: a bounded, coalescing log panel.

:class:`LogPanel` keeps only the last ``max_lines`` lines (memory is bounded by
the buffer, not by how much is printed), redraws at most ``1 / min_interval``
times a second however fast lines come, renders the programs' own ANSI colours, sets
stderr apart without painting it as errors (healthy servers log there), and has a Stop
button.
It is safe to write to from a background thread: widget values set there are
sent by the kernel's comm, so output lands in the cell that displayed the panel.
:class:`LogText` is the text fallback: chunks go straight to stdout/stderr.
"""

from __future__ import annotations

import codecs
import html
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from .ansi import ansi_to_html, strip_ansi
from .fallback import TextFallback

if TYPE_CHECKING:
    import ipywidgets as w

__all__ = ["LogPanel", "LogText", "LogView"]

_STYLE = {"stdout": "", "stderr": ' title="stderr" style="color:#5d4037"'}
# Notes on the way to an end, which the text view leaves to its one closing line.
_ENDING_NOTES = ("stopping", "stopped")
_STATE_COLOUR = {"running": "#1565c0", "done": "#2e7d32", "failed": "#c62828",
                 "cancelled": "#c62828", "stopped": "#555", "stopping": "#ef6c00",
                 "restarting": "#ef6c00"}


class LogView(ABC):
    """What both views share: incremental UTF-8 decoding per stream and the end state."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.state = "running"
        self._on_stop: Callable[[], None] | None = None
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")(errors="replace")
                          for name in ("stdout", "stderr")}

    def stop_with(self, callback: Callable[[], None]) -> None:
        """What the Stop button (where there is one) calls."""
        self._on_stop = callback

    def _decode(self, stream: str, data: bytes | str, final: bool = False) -> str:
        if isinstance(data, str):
            return data
        return self._decoders[stream].decode(data, final)

    @abstractmethod
    def write(self, stream: str, data: bytes | str) -> None:
        """Add a chunk of output; ``stream`` is ``"stdout"`` or ``"stderr"``."""

    @abstractmethod
    def finish(self, state: str, message: str = "") -> None:
        """End as ``done``, ``stopped``, ``failed`` or ``cancelled`` with a short status."""

    @abstractmethod
    def note(self, label: str, message: str = "") -> None:
        """Show a passing state (``restarting``, ``stopping``) while still running."""


class LogPanel(TextFallback, LogView):
    """The widget: a title/status line, a scrolling ``<pre>`` and a Stop button."""

    def __init__(self, title: str, *, max_lines: int = 1000, min_interval: float = 0.1,
                 on_stop: Callable[[], None] | None = None) -> None:
        import ipywidgets as w
        super().__init__(title)
        self.max_lines = max_lines
        self.min_interval = min_interval
        self.redraws = 0
        self._lines: deque[tuple[str, str]] = deque(maxlen=max_lines)
        self._partial = {"stdout": "", "stderr": ""}
        self._dropped = 0
        self._lock = threading.Lock()
        self._last_draw = 0.0
        self._timer: threading.Timer | None = None
        self._on_stop = on_stop
        self._message = ""
        self.status = w.HTML(self._status_html("running", ""))
        self.output = w.HTML("<pre></pre>", layout=w.Layout(max_height="24em",
                                                             overflow="auto"))
        self.stop_button = w.Button(description="Stop", button_style="warning", icon="stop")
        self.stop_button.on_click(self._stop_clicked)
        self.widget = w.VBox([w.HBox([self.status, self.stop_button]), self.output])

    def _status_html(self, state: str, message: str) -> str:
        colour = _STATE_COLOUR.get(state, "#555")
        text = f" — {html.escape(message)}" if message else ""
        return (f'<b>{html.escape(self.title)}</b> '
                f'<span style="color:{colour}">{state}{text}</span>')

    @property
    def lines(self) -> list[tuple[str, str]]:
        """The buffered ``(stream, line)`` pairs, oldest first (partial lines included),
        without colour codes."""
        with self._lock:
            complete = [(s, strip_ansi(t)) for s, t in self._lines]
            partial = [(s, strip_ansi(t)) for s, t in self._partial.items() if t]
        return (complete + partial)[-self.max_lines:]

    def write(self, stream: str, data: bytes | str) -> None:
        text = self._decode(stream, data)
        if not text:
            return
        with self._lock:
            pieces = (self._partial[stream] + text).split("\n")
            self._partial[stream] = pieces.pop()
            pieces = [_overwritten(line) for line in pieces]
            overflow = len(self._lines) + len(pieces) - self.max_lines
            if overflow > 0:
                self._dropped += overflow
            self._lines.extend((stream, line) for line in pieces)
        self._schedule()

    def _schedule(self) -> None:
        with self._lock:
            if self._timer is not None:
                return
            wait = self._last_draw + self.min_interval - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._redraw)
                self._timer.daemon = True
                self._timer.start()
                return
        self._redraw()

    def _redraw(self) -> None:
        with self._lock:
            self._timer = None
            self._last_draw = time.monotonic()
            rows = [f"<span{_STYLE[s]}>{ansi_to_html(t)}</span>" for s, t in self._lines]
            rows += [f"<span{_STYLE[s]}>{ansi_to_html(_overwritten(t))}</span>"
                     for s, t in self._partial.items() if t]
            dropped = self._dropped
            self.redraws += 1
        head = f"<i>… {dropped} earlier lines not shown</i>\n" if dropped else ""
        self.output.value = f"<pre>{head}{chr(10).join(rows)}</pre>"

    def finish(self, state: str, message: str = "") -> None:
        with self._lock:
            if self.state != "running":
                return
            self.state = state
            if self._timer is not None:
                self._timer.cancel()
        for stream in ("stdout", "stderr"):
            tail = self._decode(stream, b"", final=True)
            if tail:
                self.write(stream, tail)
        self._redraw()
        self.stop_button.disabled = True
        self.stop_button.layout.display = "none"
        self.status.value = self._status_html(state, message)
        self._message = message
        self._ended()

    def note(self, label: str, message: str = "") -> None:
        if self.state == "running":
            self.status.value = self._status_html(label, message)

    def final_html(self) -> str:
        return (f'<div class="sprites-log">{self.status.value}'
                f'<div style="max-height:24em;overflow:auto">{self.output.value}</div></div>')

    def text(self) -> str:
        status = f"{self.title}: {self.state}"
        if self.state != "running" and self._message:
            status += f" — {self._message}"
        return "\n".join([*(line for _, line in self.lines), status])

    def _stop_clicked(self, _button: w.Button) -> None:
        self.stop_button.disabled = True
        if self._on_stop is not None:
            self._on_stop()



def _overwritten(line: str) -> str:
    """What a terminal shows of a line that a carriage return rewrote (a progress bar)."""
    kept = line.rstrip("\r")
    return kept.rsplit("\r", 1)[-1]


class LogText(LogView):
    """The text fallback: each chunk goes to stdout or stderr as it arrives.

    With a ``prefix`` (several sprites at once) whole lines are prefixed so
    interleaved output stays attributable, and the end state is printed.
    """

    def __init__(self, title: str, *, prefix: str = "", announce: bool = False,
                 stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        super().__init__(title)
        self.prefix = prefix
        self.announce = announce or bool(prefix)
        self._targets = {"stdout": stdout, "stderr": stderr}
        self._partial = {"stdout": "", "stderr": ""}
        self._lock = threading.Lock()

    def _target(self, stream: str) -> TextIO:
        return self._targets[stream] or (sys.stderr if stream == "stderr" else sys.stdout)

    def write(self, stream: str, data: bytes | str) -> None:
        text = self._decode(stream, data)
        if not text:
            return
        if self.prefix:
            with self._lock:
                pieces = (self._partial[stream] + text).split("\n")
                self._partial[stream] = pieces.pop()
            if not pieces:
                return
            text = "".join(f"{self.prefix}{line}\n" for line in pieces)
        target = self._target(stream)
        target.write(text)
        target.flush()

    def finish(self, state: str, message: str = "") -> None:
        if self.state != "running":
            return
        self.state = state
        for stream in ("stdout", "stderr"):
            self.write(stream, self._decode(stream, b"", final=True))
            with self._lock:
                rest, self._partial[stream] = self._partial[stream], ""
            if rest:
                self._target(stream).write(f"{self.prefix}{rest}\n")
        if self.announce:
            self._announce(state, message, to_stderr=state not in ("done", "stopped"))

    def note(self, label: str, message: str = "") -> None:
        """Print a passing state (``restarting``), but not the steps of an ending
        (``stopping``, ``stopped``): the end prints one closing line itself."""
        if self.state == "running" and self.announce and label not in _ENDING_NOTES:
            self._announce(label, message, to_stderr=False)

    def _announce(self, label: str, message: str, *, to_stderr: bool) -> None:
        target = self._target("stderr" if to_stderr else "stdout")
        target.write(f"{self.title}: {label}{f' — {message}' if message else ''}\n")
        target.flush()
