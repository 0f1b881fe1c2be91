"""Show a service's log in a view, and when following it, say how the service ended.

The local server's logs stream carries ``started``, ``stopping`` and ``stopped`` as
well as output and ``exit``; the reference promises only output, ``exit`` and
``error``. So an ``exit`` is explained by asking for the service's state (crashed
and restarting, or failed for good), and a slow state poll ends the view when the
service stops without a word on the stream. The backlog marks where the current
run starts (its ``started_at``), so earlier runs do not run into it.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime, timedelta
from typing import Any

from ..client import NotFound, Service, ServiceLogEvent, Sprite, SpritesError
from ..widgets.logs import LogView

__all__ = ["LogFollower"]

POLL_SECONDS = 3.0
RESTART_GRACE = 2.0  # a restart's start follows its stop at once; a stop stays stopped
_SAME_MOMENT = timedelta(milliseconds=1)  # log stamps are whole milliseconds


def _clock(when: datetime) -> str:
    return when.astimezone().strftime("%H:%M:%S")


class LogFollower:
    """Pumps one logs stream into ``view`` and ends the view in the service's end state.

    :attr:`ending` is the final ``(state, message)`` once the view has ended.
    """

    def __init__(self, handle: Sprite, name: str, stream: Any, view: LogView, *,
                 follow: bool, poll: float = POLL_SECONDS) -> None:
        self.handle = handle
        self.name = name
        self.stream = stream
        self.view = view
        self.follow = follow
        self.poll = poll
        self.ending: tuple[str, str] | None = None
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._pending_stop: threading.Timer | None = None
        self._run_start = self._current_run_start()
        self._earlier_lines = False
        self._marked = False

    def _state(self) -> Service | None:
        try:
            return self.handle.get_service(self.name)
        except SpritesError:
            return None

    def _current_run_start(self) -> datetime | None:
        service = self._state()
        state = service.state if service is not None else None
        return state.started_at if state is not None else None

    def end(self, state: str, message: str) -> None:
        """End the view (once) and close the stream, from any thread."""
        with self._lock:
            if self._ended.is_set():
                return
            self._ended.set()
            self.ending = (state, message)
            if self._pending_stop is not None:
                self._pending_stop.cancel()
        self.view.finish(state, message)
        with contextlib.suppress(Exception):
            self.stream.close()

    def run(self) -> None:
        """Pump until the stream ends or the service has ended; raises the stream's errors."""
        if self.follow:
            threading.Thread(target=self._watch_state, daemon=True).start()
        for event in self.stream:
            if self._ended.is_set():
                return
            self._handle(event)
        if self.follow and self._pending_stop is None:
            self._end_if_not_running()
        self.end("done", "stopped following" if self.follow else "")

    def _end_if_not_running(self) -> None:
        """A followed stream that ended by itself (a server ends one at once for a stopped
        service): end in the service's state rather than as merely no longer followed."""
        service = self._state()
        state = service.state if service is not None else None
        if state is None or state.status == "stopped":
            self.end("stopped", "the service is not running")
        elif state.status == "failed" and state.next_restart_at is None:
            self.end("failed", state.error or "failed")

    def _handle(self, event: ServiceLogEvent) -> None:
        kind = event.type
        if kind in ("stdout", "stderr"):
            self._mark_run_start(event.timestamp)
            self.view.write(kind, event.data or "")
        elif kind == "error":
            self.view.write("stderr", f"[error: {event.data or 'unknown'}]\n")
        elif kind == "started":
            self._cancel_pending_stop()
            when = f" at {_clock(event.timestamp)}" if event.timestamp else ""
            self.view.write("stdout", f"── {self.name} started{when} ──\n")
            self.view.note("running")
        elif kind == "stopping":
            self.view.note("stopping")
        elif kind == "stopped":
            self._stopped(event.exit_code)
        elif kind == "exit":
            self.view.write("stderr", f"[exited with code {event.exit_code}]\n")
            if self.follow:
                self._exited(event.exit_code)

    def _mark_run_start(self, stamp: datetime | None) -> None:
        """Before the current run's first backlog line, a marker (if earlier runs show)."""
        if self._marked or self._run_start is None or stamp is None:
            return
        if stamp + _SAME_MOMENT < self._run_start:
            self._earlier_lines = True
            return
        self._marked = True
        if self._earlier_lines:
            self.view.write("stdout", f"── current run, started at {_clock(self._run_start)} ──\n")

    def _stopped(self, exit_code: int | None) -> None:
        """End as stopped, unless a ``started`` soon follows (a restart, an update)."""
        code = f" (exit code {exit_code})" if exit_code is not None else ""
        self.view.note("stopped", f"stopped by request{code}")
        with self._lock:
            if self._pending_stop is not None or self._ended.is_set():
                return
            self._pending_stop = threading.Timer(
                RESTART_GRACE, self.end, args=("stopped", f"stopped by request{code}"))
            self._pending_stop.daemon = True
            self._pending_stop.start()

    def _cancel_pending_stop(self) -> None:
        with self._lock:
            if self._pending_stop is not None:
                self._pending_stop.cancel()
                self._pending_stop = None

    def _exited(self, exit_code: int | None) -> None:
        service = self._state()
        state = service.state if service is not None else None
        status = state.status if state is not None else ""
        if status in ("stopping", "stopped"):
            self._stopped(exit_code)
        elif state is not None and (state.next_restart_at is not None
                                    or status in ("starting", "running")):
            self.view.note("restarting", f"crashed with exit code {exit_code}; restarting "
                                         f"(restart {state.restart_count + 1})")
        else:
            why = f": {state.error}" if state is not None and state.error and \
                "exited with code" not in state.error else ""
            self.end("failed", f"exited with code {exit_code}{why}")

    def _watch_state(self) -> None:
        """End the view when the service is seen stopped twice in a row (a restart passes
        through stopped for a moment), for servers whose logs stream does not say so."""
        seen = ""
        while not self._ended.wait(self.poll):
            try:
                service = self.handle.get_service(self.name)
            except NotFound:
                self.end("stopped", "the service was deleted")
                return
            except SpritesError:
                continue
            state = service.state
            status = state.status if state is not None else "stopped"
            if state is not None and status == "failed" and state.next_restart_at is None:
                status = "failed for good"
            if status == seen == "stopped":
                self.end("stopped", "stopped")
                return
            if status == seen == "failed for good":
                self.end("failed", (state.error if state is not None else "") or "failed")
                return
            seen = status
