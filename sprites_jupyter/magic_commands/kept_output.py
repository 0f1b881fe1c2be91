"""A kept cell's output read back in a new kernel, in the order it was written.

The finished segments come whole through the file API (no process on the sprite, so
no interpreter to start); only while the cell still runs does one follower
(:mod:`sprites_jupyter.remote.cell_runner`) copy the newest segment's records as they
are written. Records are parsed here whole (one per read the cell made, up to 64 KiB
of output each), never line by line.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..client import Command, NotFound, OutputChunk, Sprite, SpritesError
from ..widgets.logs import LogView

__all__ = ["CellEnd", "Records", "ReplaySink", "read_kept", "segment_number"]

_HEADER = 10  # letter, 8 hex digits of length, newline
_STREAMS = {b"o": "stdout", b"e": "stderr"}
DROPPED_NOTICE = ("[{} bytes of this cell's oldest output were dropped: "
                  "SpriteMagics.cell_output_kept keeps more]\n")
DROPPED_WHILE_FOLLOWING = ("[output was dropped while following: the cell wrote faster "
                           "than this kernel read; SpriteMagics.cell_output_kept keeps "
                           "more]\n")


@dataclass(frozen=True)
class CellEnd:
    """How a followed cell ended: its exit code (``None`` once detached: it goes on) and
    its final record (a Python cell's ``status``, ``ename``, ``evalue``, ``traceback``)."""

    exit_code: int | None
    final: dict[str, Any] = field(default_factory=dict)


class Records:
    """Whole records out of a byte stream; a partial one waits for the next chunk."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        buffer = self.pending + data if self.pending else data
        start, end = 0, len(buffer)
        while end - start >= _HEADER:
            size = int(buffer[start + 1:start + 9], 16)
            stop = start + _HEADER + size
            if stop > end:
                break
            yield buffer[start:start + 1], buffer[start + _HEADER:stop]
            start = stop
        self.pending = buffer[start:]


class ReplaySink:
    """Where records go: text to the log view, displays to IPython, the final record kept."""

    def __init__(self, view: LogView, display: Callable[[dict[str, Any], dict[str, Any]], None]
                 ) -> None:
        self.view = view
        self.display = display
        self.final: dict[str, Any] = {}
        self.open_line = {"stdout": False, "stderr": False}

    def record(self, letter: bytes, data: bytes) -> None:
        stream = _STREAMS.get(letter)
        if stream is not None:
            self.view.write(stream, data)
            if data:
                self.open_line[stream] = not data.endswith(b"\n")
        elif letter == b"d":
            shown = json.loads(data)
            self.display(shown.get("data") or {}, shown.get("metadata") or {})
        elif letter == b"x":
            self.final = json.loads(data)
        elif letter == b"g":
            self.gap(None)

    def gap(self, size: int | None) -> None:
        """Output dropped here: end the lines it cut (the halves around it are not one
        line), then say so."""
        for stream, cut in self.open_line.items():
            if cut:
                self.view.write(stream, b"\n")
                self.open_line[stream] = False
        self.view.write("stderr", DROPPED_NOTICE.format(size) if size is not None
                        else DROPPED_WHILE_FOLLOWING)

    def feed(self, records: Records, data: bytes) -> None:
        for letter, payload in records.feed(data):
            self.record(letter, payload)


def segment_number(name: str) -> int | None:
    head, _, digits = name.partition(".")
    return int(digits) if head == "output" and digits.isdigit() else None


def read_kept(handle: Sprite, folder: str, sink: ReplaySink) -> tuple[bool, int, int]:
    """Replay what the folder holds now: whether the cell had ended (then everything was
    there), and the segment and byte a follower continues from."""
    entries = {entry.name: entry for entry in handle.list_dir(folder)}
    ended = "exit" in entries
    if "dropped" in entries:
        sink.view.write("stderr", DROPPED_NOTICE.format(
            int(handle.read_file(f"{folder}/dropped") or b"0")))
    segments = sorted((number, entry.size or 0) for name, entry in entries.items()
                      if (number := segment_number(name)) is not None)
    number, offset = (segments[0][0] if segments else 1), 0
    for number, size in segments:
        records = Records()
        read = 0
        try:
            for chunk in handle.iter_file(f"{folder}/output.{number:06d}"):
                read += len(chunk)
                sink.feed(records, chunk)
        except NotFound:  # the writer dropped it since the listing
            sink.gap(size)
        offset = read - len(records.pending)
    return ended, number, offset


def follow_to_end(command: Command, timeout: float | None, write: Callable[[OutputChunk], None],
                  stop: Callable[[], None], detached: threading.Event) -> int | None:
    """Hand ``command``'s chunks to ``write`` until it ends (its exit code) or this kernel
    detaches (``None``, ``stop`` called if it still runs); Ctrl-C stops and re-raises."""
    try:
        for chunk in command.follow(timeout):
            write(chunk)
    except KeyboardInterrupt:
        stop()
        raise
    except SpritesError:
        if not detached.is_set():
            raise
    if command.exit_code is None or detached.is_set():
        if command.exit_code is None:
            stop()
        return None
    return command.exit_code


def follow_kept(command: Command, sink: ReplaySink, timeout: float | None,
                stop: Callable[[], None], detached: threading.Event) -> int | None:
    """The follower's records into ``sink`` until the cell ends (its exit code) or this
    kernel detaches (``None``)."""
    records = Records()

    def write(chunk: OutputChunk) -> None:
        if chunk.stream == "stdout":
            sink.feed(records, chunk.data)
        else:
            sink.view.write("stderr", chunk.data)

    return follow_to_end(command, timeout, write, stop, detached)
