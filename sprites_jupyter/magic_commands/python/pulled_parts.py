"""A value being pulled, read as one stream while the agent writes it in parts.

The agent announces each part as a ``part`` event of the ``dump`` request; this side
reads it straight from the filesystem API into the value's memory, then sends
``took`` (the agent removes the part and may write another: the sprite holds at most
a few parts, not the whole value). The agent's ``done`` follows its last part at once,
so no round trip waits behind the last read; ``end`` (sent once the last part is read,
or when given up) has it remove what is left.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from ...client import NotFound, Sprite
from ...client.bulk_read import BodyReader

if TYPE_CHECKING:
    from .session import PythonSession

__all__ = ["DumpFailed", "PulledParts"]

WAIT_STEP = 0.5  # how long one wait for the agent's next message lasts


class DumpFailed(Exception):
    """The agent could not write the value (its ``done`` message says why)."""

    def __init__(self, done: dict[str, Any]) -> None:
        super().__init__(done.get("evalue") or done.get("ename") or "failed")
        self.done = done


class PulledParts(io.RawIOBase):
    """The parts of ``folder`` as one readable stream, each read once announced."""

    def __init__(self, sprite: Sprite, session: PythonSession, request_id: str,
                 folder: str) -> None:
        self.sprite = sprite
        self.session = session
        self.request_id = request_id
        self.folder = folder
        self.format = ""
        self.type_name = "value"
        self.done: dict[str, Any] | None = None
        self._announced: list[int] = []
        self._last_announced = False
        self._current: BodyReader | None = None
        self._index = -1
        self._ended = False

    def readable(self) -> bool:
        return True

    def first_format(self) -> str:
        """The format of the value, once its first part is announced."""
        if not self._announced and not self._wait():
            raise DumpFailed(self.done or {})
        return self.format

    def readinto(self, buffer: Any) -> int:
        while True:
            current = self._current or self._open_next()
            if current is None:
                return 0
            count = current.readinto(buffer)
            if count:
                return count
            self._took()

    def readall(self) -> bytes:
        """The rest as one ``bytes``: a single part (how the agent sends ``bytes``) is
        filled by the socket in place; several are joined, which costs a copy."""
        pieces = []
        while (current := self._current or self._open_next()) is not None:
            pieces.append(current.readall())
            self._took()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _open_next(self) -> BodyReader | None:
        if not self._announced and (self._last_announced or not self._wait()):
            return None
        self._index = self._announced.pop(0)
        try:
            self._current = self.sprite.open_file(f"{self.folder}/{self._index:06d}")
        except NotFound:  # removed by an agent that failed after announcing it
            while self.done is None:
                self._wait()  # raises DumpFailed with the agent's reason
            raise
        return self._current

    def _took(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        if self._last_announced and not self._announced:
            self.end()
        else:
            self.session.request("took", index=self._index)

    def end(self) -> None:
        """Tell the agent the parts are read or given up (once)."""
        if not self._ended:
            self._ended = True
            self.session.request("end")

    def _wait(self) -> bool:
        """Wait for the next announced part (True) or the ``done`` (False; a failed dump
        raises :class:`DumpFailed`)."""
        while self.done is None:
            message = self.session.next_message(self.request_id, WAIT_STEP)
            if message is None or message.get("id") != self.request_id:
                continue
            if message.get("type") == "part":
                self.format = self.format or str(message.get("format") or "")
                self.type_name = str(message.get("type_name") or self.type_name)
                self._announced.append(int(message["index"]))
                self._last_announced = bool(message.get("last"))
                return True
            if message.get("type") == "done":
                self.done = message
        if self.done.get("status") != "ok":
            raise DumpFailed(self.done)
        return False

    def finish(self) -> dict[str, Any]:
        """Tell the agent the parts are read (or given up) and return its ``done``."""
        self.close()
        self.end()
        while self.done is None:
            self._wait()
        return self.done

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        super().close()
