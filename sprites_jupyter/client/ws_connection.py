"""A sync WebSocket connection on ``websockets``' sans-I/O client, whose writes never
block its reads.

The I/O is ours: the upgrade is written and answered in the caller's thread; then one
thread reads (1 MiB at a time), feeds the protocol and queues whole messages for
:meth:`WebSocket.recv`. A write takes only what the socket accepts at once (a
non-blocking send); the rest is queued and written by a thread of the connection's own,
started when first needed, so a peer that stops reading until its own sends are read
(an echo, any request/response stream under load) never stalls our reading, and
:meth:`WebSocket.send` waits while too much is queued (bounded memory). Most
connections (a short exec) never need that thread. TLS writes always go through it:
a TLS socket has no partial non-blocking write.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

__all__ = ["QUEUED_LIMIT", "READ_SIZE", "WebSocket", "connect"]

QUEUED_LIMIT = 1024 * 1024
"""A :meth:`WebSocket.send` returns once no more than this many bytes wait to be written."""
READ_SIZE = 1024 * 1024
"""Bytes read per receive (websockets' own client reads 64 KiB: two exec frames per
wake-up)."""
_CLOSED = object()  # queued after the last received message


class WebSocket:
    """An open WebSocket: :meth:`recv` and :meth:`send` messages, :meth:`close` it.

    Errors are ``websockets``' own: :class:`~websockets.exceptions.ConnectionClosed`
    once closed (``rcvd`` is the peer's close frame), :class:`TimeoutError` from a
    :meth:`recv` that waited its ``timeout``.
    """

    def __init__(self, sock: socket.socket, protocol: ClientProtocol, response: Response,
                 early: Sequence[Any], *, ping_interval: float | None, ping_timeout: float,
                 close_timeout: float, max_queue: int) -> None:
        """``early``: the protocol's events that came in with the upgrade's answer."""
        self.socket = sock
        self.response = response
        self._protocol = protocol
        self._close_timeout = close_timeout
        self._lock = threading.Lock()  # the protocol's state: taken briefly, never to write
        self._messages: queue.Queue[Any] = queue.Queue(max_queue)
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._outgoing: deque[bytes] = deque()
        self._queued = 0
        self._unwritten = 0  # pieces queued or being written: while any, new ones queue
        self._writing = threading.Condition()
        self._writer_done = False
        self._writer: threading.Thread | None = None
        self._ended = threading.Event()  # set when reading has stopped for good
        self._closing = False  # close() was called: received messages are dropped
        self._pong = threading.Event()
        self.unread: Callable[[str | bytes], bool] | None = None
        """Messages it says True of are dropped as they arrive, never waking a reader
        (a control connection's ``op.ack``, which nothing reads)."""
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name="sprites-websocket-reader")
        for event in early:
            if isinstance(event, Frame):
                self._receive_frame(event)
        self._reader.start()
        if ping_interval is not None:
            threading.Thread(target=self._keepalive, args=(ping_interval, ping_timeout),
                             daemon=True, name="sprites-websocket-keepalive").start()

    def __enter__(self) -> WebSocket:
        return self

    @property
    def is_open(self) -> bool:
        """Whether messages can still be sent (no close began on either side, the
        connection did not break)."""
        with self._lock:
            return self._protocol.state is State.OPEN and not self._ended.is_set()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- receiving -----------------------------------------------------------

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next message; waits at most ``timeout`` seconds (None: for ever)."""
        try:
            if self._ended.is_set():
                message = self._messages.get_nowait()
            else:
                message = self._messages.get(timeout=timeout)
        except queue.Empty:
            if self._ended.is_set():
                raise self._closed_error() from None
            raise TimeoutError("no message within the timeout") from None
        if message is _CLOSED:
            raise self._closed_error()
        return message

    def _read(self) -> None:
        try:
            while True:
                try:
                    data = self.socket.recv(READ_SIZE)
                except OSError:
                    data = b""
                with self._lock:
                    if data:
                        self._protocol.receive_data(data)
                    else:
                        self._protocol.receive_eof()
                    events = self._protocol.events_received()
                    self._send_pending()
                for event in events:
                    if isinstance(event, Frame):
                        self._receive_frame(event)
                if not data or self._protocol.state is State.CLOSED:
                    return
        finally:
            self._close_socket()
            with contextlib.suppress(queue.Full):  # full: recv sees _ended once it is empty
                self._messages.put_nowait(_CLOSED)
            self._ended.set()

    def _receive_frame(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._fragments = [bytes(frame.data)]
            self._fragment_text = frame.opcode is Opcode.TEXT
        elif frame.opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
        else:
            if frame.opcode is Opcode.PONG:
                self._pong.set()
            return
        if frame.fin:
            data = b"".join(self._fragments)
            self._fragments = []
            self._deliver(data.decode() if self._fragment_text else data)

    def _deliver(self, message: str | bytes) -> None:
        """Queue a message; while the queue is full, reading waits (flow control)."""
        if self.unread is not None and self.unread(message):
            return
        while not self._closing:
            try:
                self._messages.put(message, timeout=0.1)
                return
            except queue.Full:
                continue

    def _closed_error(self) -> ConnectionClosed:
        """The error for a closed connection, with the close frames (``rcvd``, ``sent``)."""
        self._ended.wait(self._close_timeout)
        with self._lock:
            if self._protocol.state is State.CLOSED:
                return self._protocol.close_exc
        return ConnectionClosed(None, None)

    # -- sending -------------------------------------------------------------

    def send(self, message: str | bytes) -> None:
        """Send a message; wait, holding no lock, while too much is still queued."""
        with self._lock:
            is_open = self._protocol.state is State.OPEN
            if is_open and isinstance(message, str):
                self._protocol.send_text(message.encode())
            elif is_open and isinstance(message, bytes):
                self._protocol.send_binary(message)
            self._send_pending()
        if not is_open:
            raise self._closed_error()
        with self._writing:
            while self._queued > QUEUED_LIMIT and not self._writer_done:
                self._writing.wait()

    def _send_pending(self) -> None:
        """Write what the protocol has to send as far as the socket takes it now, queue
        the rest for the writer (the caller holds the protocol lock: nothing may block)."""
        pieces = self._protocol.data_to_send()
        if not pieces:
            return
        with self._writing:
            for piece in pieces:
                rest = self._write_now(piece) if not self._unwritten else piece
                if rest is None:
                    continue
                self._outgoing.append(rest)  # b"" stands for "shut down the write side"
                self._queued += len(rest)
                self._unwritten += 1
            if self._outgoing and self._writer is None and not self._writer_done:
                self._writer = threading.Thread(target=self._write_queued, daemon=True,
                                                name="sprites-websocket-writer")
                self._writer.start()
            self._writing.notify_all()

    def _write_now(self, piece: bytes) -> bytes | None:
        """Send without blocking; what is left to queue, or None when all went."""
        if not piece:  # shut down the write side (gone already is fine)
            with contextlib.suppress(OSError):
                self.socket.shutdown(socket.SHUT_WR)
            return None
        if isinstance(self.socket, ssl.SSLSocket):
            return piece
        try:
            sent = self.socket.send(piece, socket.MSG_DONTWAIT)
        except OSError:  # full (the writer waits for room), or broken (it reports that)
            return piece
        return piece[sent:] or None

    def _write_queued(self) -> None:
        while True:
            with self._writing:
                while not self._outgoing and not self._writer_done:
                    self._writing.wait()
                if self._writer_done:
                    self._outgoing.clear()
                    self._queued = self._unwritten = 0
                    self._writing.notify_all()
                    return
                piece = self._outgoing.popleft()
            try:
                if piece:
                    self.socket.sendall(piece)
                else:
                    self.socket.shutdown(socket.SHUT_WR)
            except OSError:  # the connection is broken: closed, later calls say so
                self._close_socket()
            with self._writing:
                self._queued -= len(piece)
                self._unwritten -= 1
                self._writing.notify_all()

    def _keepalive(self, interval: float, timeout: float) -> None:
        """Ping every ``interval`` seconds; no pong within ``timeout`` ends the connection
        (something between us dropped it without a word)."""
        while not self._ended.wait(interval):
            with self._lock:
                if self._protocol.state is not State.OPEN:
                    return
                self._pong = threading.Event()
                self._protocol.send_ping(b"")
                self._send_pending()
            if not self._pong.wait(timeout) and not self._ended.is_set():
                with self._lock:
                    self._protocol.fail(1011, "keepalive ping timeout")
                    self._send_pending()
                self._close_socket()

    # -- closing -------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection: send a close frame, wait briefly for the peer's."""
        self._closing = True
        with self._lock:
            if self._protocol.state is State.OPEN:
                self._protocol.send_close(code, reason)
                self._send_pending()
        if threading.current_thread() is not self._reader:
            self._reader.join(self._close_timeout)
        self._close_socket()

    def _close_socket(self) -> None:
        with contextlib.suppress(OSError):  # wakes a read or a write on a quiet peer
            self.socket.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.socket.close()
        with self._writing:
            self._writer_done = True
            self._writing.notify_all()
        with self._lock:
            self._protocol.receive_eof()  # idempotent; the state becomes CLOSED


def connect(url: str, *, headers: Sequence[tuple[str, str]], user_agent: str,
            tls: ssl.SSLContext | None, proxy: tuple[str, int] | None, open_timeout: float,
            ping_interval: float | None, ping_timeout: float, close_timeout: float,
            max_size: int, max_queue: int) -> WebSocket:
    """Open a WebSocket to ``url`` (through the HTTP ``proxy``, if given).

    Raises :class:`~websockets.exceptions.InvalidStatus` when the server answers the
    upgrade with a refusal, another ``InvalidHandshake`` for any other bad answer,
    :class:`OSError` or :class:`TimeoutError` when the server cannot be reached in time.
    """
    uri = parse_uri(url)
    deadline = time.monotonic() + open_timeout
    sock = _open_socket(uri.host, uri.port, proxy, open_timeout)
    try:
        if uri.secure:
            sock.settimeout(max(0.0, deadline - time.monotonic()))
            sock = (tls or ssl.create_default_context()).wrap_socket(
                sock, server_hostname=uri.host)
        protocol = ClientProtocol(uri, max_size=max_size)
        request = protocol.connect()
        for name, value in headers:
            request.headers[name] = value
        request.headers["User-Agent"] = user_agent
        protocol.send_request(request)
        response, early = _handshake(sock, protocol, deadline)
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return WebSocket(sock, protocol, response, early, ping_interval=ping_interval,
                     ping_timeout=ping_timeout, close_timeout=close_timeout,
                     max_queue=max_queue)


def _open_socket(host: str, port: int, proxy: tuple[str, int] | None,
                 timeout: float) -> socket.socket:
    if proxy is None:
        sock = socket.create_connection((host, port), timeout=timeout)
    else:
        sock = socket.create_connection(proxy, timeout=timeout)
        try:
            _tunnel(sock, host, port)
        except BaseException:
            sock.close()
            raise
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _tunnel(sock: socket.socket, host: str, port: int) -> None:
    """Ask an HTTP proxy for a tunnel to ``host:port`` (``CONNECT``)."""
    target = f"{host}:{port}"
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = sock.recv(4096)
        if not data or len(answer) > 65536:
            raise ConnectionResetError("the proxy closed the connection")
        answer += data
    status_line = answer.split(b"\r\n", 1)[0]
    status = status_line.split()
    if len(status) < 2 or not status[1].startswith(b"2"):
        raise ConnectionRefusedError(f"the proxy refused a tunnel to {target}: "
                                     f"{status_line.decode(errors='replace')}")


def _handshake(sock: socket.socket, protocol: ClientProtocol,
               deadline: float) -> tuple[Response, list[Any]]:
    """Write the upgrade request and read the answer, in this thread; the answer and the
    events that came in with it."""
    for piece in protocol.data_to_send():
        sock.sendall(piece)
    while True:
        events = protocol.events_received()
        if events:
            if protocol.handshake_exc is not None:
                raise protocol.handshake_exc
            response = events[0]
            assert isinstance(response, Response)
            return response, events[1:]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out during the WebSocket handshake")
        sock.settimeout(remaining)
        data = sock.recv(65536)
        if data:
            protocol.receive_data(data)
            continue
        protocol.receive_eof()
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        raise ConnectionResetError("the connection closed during the handshake")
