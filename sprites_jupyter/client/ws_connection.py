"""A sync WebSocket connection whose writes never block its reads.

The ``websockets`` sync connection writes to the socket while holding the lock its
reading thread needs for every frame it receives. When a send blocks on a full socket
(the peer is not reading), receiving stops too; and a peer that stops reading until
its own sends are read (an echo, any request/response stream under load) then never
reads again: both sides wait for ever. Here a write under that lock only takes what
the socket accepts at once (a non-blocking send); the rest is queued and written by a
thread of the connection's own, started when first needed, so a blocked write holds no
lock, and :meth:`send` waits outside the lock while too much is queued (bounded
memory). Most connections (a short exec) never need that thread.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections import deque
from typing import Any

from websockets.protocol import State
from websockets.sync.client import ClientConnection

QUEUED_LIMIT = 1024 * 1024
"""A :meth:`send` returns once no more than this many bytes wait to be written."""


class QueuedWriteConnection(ClientConnection):
    """:class:`websockets.sync.client.ClientConnection` with writes done off the lock."""

    recv_bufsize = 1024 * 1024
    """Bytes read per receive (websockets reads 64 KiB: two exec frames per wake-up)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._outgoing: deque[bytes] = deque()
        self._queued = 0
        self._unwritten = 0  # pieces queued or being written: while any, new ones queue
        self._writing = threading.Condition()
        self._writer_done = False
        self._writer: threading.Thread | None = None
        super().__init__(*args, **kwargs)

    def send_data(self) -> None:
        """Write what the protocol has to send as far as the socket takes it now, queue
        the rest for the writer (the caller holds the protocol lock: nothing may block)."""
        pieces = self.protocol.data_to_send()
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
        if not piece:  # shut down the write side (as websockets does: gone is fine)
            with contextlib.suppress(OSError):
                self.socket.shutdown(socket.SHUT_WR)
            return None
        if isinstance(self.socket, ssl.SSLSocket):
            if self.protocol.state is State.CONNECTING:
                # The upgrade request, written in the caller as websockets does: the
                # reading thread may be inside SSL_read (the server's session ticket),
                # and a write from a third thread just then left the upgrade unanswered.
                self.socket.sendall(piece)
                return None
            return piece  # TLS has no partial non-blocking writes: the writer's job
        try:
            sent = self.socket.send(piece, socket.MSG_DONTWAIT)
        except OSError:  # full (the writer waits for room), or broken (it reports that)
            return piece
        return piece[sent:] or None

    def send(self, message: Any, text: bool | None = None) -> None:
        """Send a message; wait, holding no lock, while too much is still queued."""
        super().send(message, text=text)
        with self._writing:
            while self._queued > QUEUED_LIMIT and not self._writer_done:
                self._writing.wait()

    def close_socket(self) -> None:
        with contextlib.suppress(OSError):  # wakes a write blocked on a peer gone quiet
            self.socket.shutdown(socket.SHUT_RDWR)
        super().close_socket()
        with self._writing:
            self._writer_done = True
            self._writing.notify_all()

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
                self.close_socket()
            with self._writing:
                self._queued -= len(piece)
                self._unwritten -= 1
                self._writing.notify_all()
