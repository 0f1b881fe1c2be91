"""NDJSON event streams: each event is yielded the moment its line arrives."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import httpx

from .errors import ConnectionFailed, ProtocolError, StreamError, one_line


class Event(Protocol):
    @property
    def type(self) -> str: ...


T = TypeVar("T", bound=Event)

TERMINAL = "complete"


def event_text(event: object) -> str:
    """The human message an ``error`` event carries, whatever its model calls it."""
    for name in ("error", "message", "data"):
        value = getattr(event, name, None)
        if value:
            return str(value)
    return "the server reported an error"


class EventStream(Generic[T]):
    """An iterator over the events of one streaming response, and a context manager.

    As the official SDKs do, it reads to the end of the body, skipping blank lines; a
    ``complete`` event is remembered (``complete``) but not required, and events after it
    are still yielded. An ``error`` event is yielded and then raises :class:`StreamError`,
    unless ``raise_on_error=False``; either way :meth:`wait` fails after one. A line that
    is not a JSON object raises :class:`ProtocolError` naming it; a transfer that breaks
    (cut mid-chunk, reset) raises :class:`ProtocolError` or :class:`ConnectionFailed`
    saying so. Closing the stream (or leaving the ``with`` block, or an interrupt while
    waiting for a line) closes the HTTP response at once.
    """

    def __init__(self, response: httpx.Response, parse: Callable[[Any], T], *, what: str,
                 raise_on_error: bool = True,
                 on_json_object: Callable[[Any], T] | None = None) -> None:
        self.what = what
        self.raise_on_error = raise_on_error
        self.complete: T | None = None
        self.error: T | None = None
        self._response = response
        self._parse = parse
        self._on_json_object = on_json_object
        self._closing = False
        self._cut = False
        self._events = self._generate()

    def __repr__(self) -> str:
        state = "closed" if self._response.is_closed else "open"
        return f"<EventStream {self.what} ({state})>"

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        return next(self._events)

    def __enter__(self) -> EventStream[T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._response.close()

    @property
    def closed(self) -> bool:
        return self._response.is_closed

    def close(self) -> None:
        """Stop reading and close the HTTP response (idempotent).

        Safe from another thread while one is blocked reading (a Stop button): the
        socket is shut down so that read returns, and that iteration just ends.
        """
        self._closing = True
        if not self._response.is_closed:
            _shutdown_socket(self._response)
        self._response.close()
        with contextlib.suppress(ValueError):  # "generator already executing": it ends itself
            self._events.close()

    def wait(self) -> T | None:
        """Consume the stream; its ``complete`` event (``None`` if the server sent none).

        Raises :class:`StreamError` if an ``error`` event came, whatever followed it.
        """
        for _event in self:
            pass
        if self.error is not None:
            raise StreamError(f"{self.what} failed: {event_text(self.error)}", self.error)
        return self.complete

    def _generate(self) -> Generator[T]:
        try:
            for number, line in self._lines():
                event = self._event(number, line)
                if event.type == TERMINAL:
                    self.complete = event
                yield event
                if event.type == "error":
                    self.error = event
                    if self.raise_on_error:
                        raise StreamError(f"{self.what} failed: {event_text(event)}", event)
            if self.error is None and not self._closing:
                self._on_end()
        finally:
            self._response.close()

    def _on_end(self) -> None:
        """Hook run once the body ended cleanly without an error (a result may be due)."""

    def _event(self, number: int, line: bytes) -> T:
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            shown = one_line(line.decode("utf-8", "replace"), 120)
            if self._cut:
                raise ProtocolError(f"{self.what}: the stream was cut off in the middle of "
                                    f"line {number}: {shown!r}")
            raise ProtocolError(f"{self.what}: line {number} is not a JSON object: {shown!r}")
        if "type" not in data and self._on_json_object is not None and number == 1:
            return self._on_json_object(data)
        if not isinstance(data.get("type"), str):
            data = {**data, "type": ""}  # an event without a type is passed on, as SDKs do
        return self._parse(data)

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        """Non-blank lines with their 1-based numbers; a last unterminated line counts."""
        buffer = b""
        number = 0
        try:
            for chunk in self._response.iter_bytes():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    number += 1
                    if line.strip():
                        yield number, line
        except (httpx.HTTPError, httpx.StreamError) as exc:
            if self._closing:
                return
            if isinstance(exc, httpx.RemoteProtocolError):
                raise ProtocolError(f"{self.what}: the connection broke mid-stream ({exc})"
                                    ) from None
            raise ConnectionFailed(f"{self.what}: the stream failed ({type(exc).__name__}: "
                                   f"{exc})", url=str(self._response.url)) from None
        if buffer.strip() and not self._closing:
            self._cut = True
            yield number + 1, buffer


def _shutdown_socket(response: httpx.Response) -> None:
    """Shut the response's socket down, waking a thread blocked reading it."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
