"""This kernel's port forwards: they all end when the extension is unloaded and when the
kernel exits (``atexit``)."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator

from ..client import PortForward, Sprite

__all__ = ["Forwards"]


class Forwards:
    """This kernel's port forwards, newest last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forwards: list[PortForward] = []
        self._at_exit = False

    def __iter__(self) -> Iterator[PortForward]:
        with self._lock:
            return iter([f for f in self._forwards if not f.stopped])

    def start(self, sprite: Sprite, port: int, local_port: int = 0) -> PortForward:
        """Forward ``local_port`` (0: a free one) to ``port`` in ``sprite``.

        Raises ``OSError`` when the local port cannot be listened on.
        """
        started = PortForward(sprite, port, local_port)
        with self._lock:
            self._forwards.append(started)
            if not self._at_exit:
                atexit.register(self.close)
                self._at_exit = True
        return started

    def find(self, sprite: str, port: int) -> PortForward | None:
        """A running forward to ``port`` in ``sprite``, if there is one."""
        return next((f for f in self if f.sprite.name == sprite and f.port == port), None)

    def stop(self, forward: PortForward) -> None:
        forward.stop()
        with self._lock:
            self._forwards = [f for f in self._forwards if f is not forward]

    def close(self) -> None:
        """Stop every forward (on unload and at exit)."""
        with self._lock:
            ending, self._forwards = self._forwards, []
            if self._at_exit:
                atexit.unregister(self.close)
                self._at_exit = False
        for each in ending:
            each.stop()
