"""A value moved in parts through the filesystem API, for the ``%%sprite_python`` agent.

Standard library only, Python 3.8+; uploaded beside ``python_agent.py``. A push is
read while it is uploaded: the client announces each whole part on the request
channel and :class:`Parts` reads them in order as one stream, removing each. A pull
is written while it is read: :class:`PartFiles` fills part after part, and at most
``PARTS_AHEAD`` wait for the client to have read (``took``) the ones before; the
client's ``end`` comes after the reply, once it has read the last.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any, Iterator

PARTS_AHEAD = 2  # pulled parts written before the client has read the earlier ones
NOTICES = ("part", "took", "end", "abort")  # about a transfer; late ones are dropped


class Parts(io.RawIOBase):
    """The parts of a pushed value read in order as one stream, each removed once read.
    ``indices`` yields each part's number once it is whole: all of them at once for
    parts uploaded before the load, one by one as the client announces them for a
    push that is read while it is still being uploaded."""

    def __init__(self, folder: str, indices: Iterator[int]) -> None:
        self.folder = folder
        self.indices = indices
        self.path: Any = None
        self.current: Any = None

    def readable(self) -> bool:
        return True

    def _next_path(self) -> Any:
        index = next(self.indices, None)
        return None if index is None else os.path.join(self.folder, f"{index:06d}")

    def readinto(self, buffer) -> int:
        while True:
            if self.current is None:
                self.path = self._next_path()
                if self.path is None:
                    return 0
                self.current = open(self.path, "rb", buffering=0)  # noqa: SIM115
            count = self.current.readinto(buffer)
            if count:
                return count
            self.current.close()
            self.current = None
            os.remove(self.path)

    def whole_bytes(self, size: int) -> bytes:
        """The parts as one ``bytes`` of ``size`` (a single part, as this version's client
        sends ``bytes``, is read straight into it and left for the caller to remove
        after its reply; several, from a client that split them, are gathered, which
        costs a copy)."""
        self.path = self._next_path()
        if self.path is None:
            return b""
        if os.path.getsize(self.path) >= size:
            with open(self.path, "rb") as source:
                return source.read()
        self.current = open(self.path, "rb", buffering=0)  # noqa: SIM115
        gathered = bytearray(size)
        view = memoryview(gathered)
        filled = 0
        while filled < size:
            got = self.readinto(view[filled:])
            if not got:
                break
            filled += got
        return bytes(view[:filled])

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
        super().close()


class PartFiles:
    """A write-only file that fills ``folder/000000``, ``000001``, ... of ``part_size``
    bytes each, calling ``finished(index, last)`` as each one is whole (the last on
    close)."""

    def __init__(self, folder: str, part_size: int, finished: Any) -> None:
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self.part_size = max(1, part_size)
        self.finished = finished
        self.index = 0
        self.filled = 0
        self.size = 0
        self.current: Any = self._open()

    def _open(self) -> Any:
        return open(os.path.join(self.folder, f"{self.index:06d}"), "wb", buffering=0)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        while view:
            if self.filled == self.part_size:
                self.current.close()
                self.finished(self.index, False)
                self.index += 1
                self.filled = 0
                self.current = self._open()
            written = self.current.write(view[:self.part_size - self.filled])
            self.filled += written
            view = view[written:]
        self.size += total
        return total

    def tell(self) -> int:
        return self.size

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        """Every write goes to the part file at once."""

    @property
    def closed(self) -> bool:
        return self.current is None

    def close(self) -> None:
        """Finish the last part (idempotent)."""
        if self.current is not None:
            self.current.close()
            self.current = None
            self.finished(self.index, True)

    def discard(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


class PartNotices:
    """The client's notices about a value in parts, read from the request channel while
    a ``load`` or ``dump`` runs: ``part`` (a pushed part is whole), ``took`` (a pulled
    part was read), ``end``, or ``abort``."""

    def __init__(self, requests) -> None:
        self.requests = requests
        self.format = ""
        self.ended = False
        self.taken = 0

    def parts(self):
        """The index of each part as it is announced, until ``end``."""
        while not self.ended:
            notice = self._next()
            if notice.get("op") == "part":
                self.format = self.format or str(notice.get("format") or "")
                yield int(notice["index"])
            elif notice.get("op") == "end":
                self.ended = True
            else:
                self.ended = True
                raise TransferStopped("the push was stopped before it was whole")

    def wait_taken(self, folder: str, count: int) -> None:
        """Wait until the client has read ``count`` pulled parts, removing each."""
        while self.taken < count:
            notice = self._next()
            if notice.get("op") != "took":
                self.ended = True
                raise TransferStopped("the pull was stopped before it was whole")
            self._remove(folder, notice)

    def _remove(self, folder: str, notice: dict) -> None:
        with contextlib.suppress(OSError, KeyError, TypeError, ValueError):
            os.remove(os.path.join(folder, f"{int(notice['index']):06d}"))
        self.taken += 1

    def drain(self) -> None:
        """Read the notices up to the push's end (the client sends them all)."""
        while not self.ended:
            op = self._next().get("op")
            self.ended = op != "part"

    def _next(self) -> dict:
        for line in self.requests:
            try:
                notice = json.loads(line)
            except ValueError:
                continue
            if isinstance(notice, dict):
                return notice
        self.ended = True
        raise TransferStopped("the client went away during the push")


class TransferStopped(Exception):
    """A push that will not be whole."""
