"""Waiting for an observable state instead of for time: a loaded 2-core CI machine makes
any fixed sleep or timer too short some day. Deadlines here only bound a failure."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

DEADLINE = 30.0


def eventually(check: Callable[[], Any], what: str, limit: float = DEADLINE) -> Any:
    """Poll ``check`` until it is truthy; fail naming ``what`` when it never is."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def threads_running(code: CodeType) -> list[int]:
    """The idents of the threads with ``code`` somewhere on their stack right now."""
    return [ident for ident, frame in sys._current_frames().items() if _runs(frame, code)]


def interrupt_once_running(code: CodeType, *, threads: int = 1) -> threading.Thread:
    """SIGINT this process (Ctrl-C) once ``threads`` threads run ``code`` (the main thread
    among them when ``threads`` is 1), from a thread of its own; join it after.

    A Ctrl-C that lands before the code under test waits where the test means it to (say,
    while an exec is still being opened) takes another path, which a timer makes likely
    on a loaded machine. After 60 s it interrupts anyway, so a failure is seen, not a hang.
    """
    main = threading.main_thread().ident

    def ready() -> bool:
        running = threads_running(code)
        return len(running) >= threads and (threads > 1 or main in running)

    def interrupt() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ready():
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt, name="interrupt-once-running")
    thread.start()
    return thread


def _runs(frame: FrameType | None, code: CodeType) -> bool:
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False
