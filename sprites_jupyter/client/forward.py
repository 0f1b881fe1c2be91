"""A local TCP port forwarded to a port in a sprite, one proxy WebSocket per connection.

Plain threads and sockets: an accept thread, and for each connection two pumps
(local → sprite, sprite → local). Either side ending closes both, as the official
SDKs do. :meth:`PortForward.stop` ends every connection and frees the port.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from .errors import SpritesError
from .proxy import PortConnection

if TYPE_CHECKING:
    from .sprite import Sprite

READ_SIZE = 256 * 1024
JOIN_WAIT = 5.0


class _Tunnel:
    """One forwarded connection: the local socket and its proxy WebSocket."""

    def __init__(self, local: socket.socket) -> None:
        self.local = local
        self.remote: PortConnection | None = None
        self.sent = 0
        self.received = 0
        self.threads: list[threading.Thread] = []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.local.shutdown(socket.SHUT_RDWR)
        self.local.close()
        if self.remote is not None:
            self.remote.abort()  # the other pump may be blocked sending on it


class PortForward:
    """Listens on ``bind:local_port`` (0 picks a free port) and tunnels every connection
    to ``port`` in the sprite, many at once, in the background, until :meth:`stop`.

    Raises ``OSError`` when the local port cannot be listened on.
    """

    def __init__(self, sprite: Sprite, port: int, local_port: int = 0, *,
                 bind: str = "127.0.0.1") -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"invalid port {port!r}: give a number from 1 to 65535")
        self.sprite = sprite
        self.port = port
        self._listener = socket.create_server((bind, local_port))
        self.bind = bind
        self.local_port: int = self._listener.getsockname()[1]
        self.last_error = ""
        self._lock = threading.Lock()
        self._open: set[_Tunnel] = set()
        self._closed_sent = self._closed_received = self._total = 0
        self._stopped = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True,
                                          name=f"forward {self.local_port}->{port}")
        self._acceptor.start()

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else f"{self.connections} open connections"
        return (f"<PortForward {self.bind}:{self.local_port} -> {self.sprite.name}:{self.port}"
                f" ({state})>")

    @property
    def url(self) -> str:
        """``http://localhost:LOCAL_PORT/``, for an HTTP app on the forwarded port."""
        return f"http://localhost:{self.local_port}/"

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def connections(self) -> int:
        """Connections open right now."""
        with self._lock:
            return len(self._open)

    @property
    def total_connections(self) -> int:
        with self._lock:
            return self._total

    @property
    def bytes_sent(self) -> int:
        """Bytes carried to the sprite, over all connections so far."""
        with self._lock:
            return self._closed_sent + sum(t.sent for t in self._open)

    @property
    def bytes_received(self) -> int:
        """Bytes carried from the sprite, over all connections so far."""
        with self._lock:
            return self._closed_received + sum(t.received for t in self._open)

    def stop(self) -> None:
        """Stop listening, close every connection and wait for the threads (idempotent)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        with self._lock:
            tunnels = list(self._open)
        for tunnel in tunnels:
            tunnel.close()
        current = threading.current_thread()
        for thread in [self._acceptor, *(t for tunnel in tunnels for t in tunnel.threads)]:
            if thread is not current:
                thread.join(JOIN_WAIT)

    def __enter__(self) -> PortForward:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                local, _ = self._listener.accept()
            except OSError:
                return
            local.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tunnel = _Tunnel(local)
            with self._lock:
                if self._stopped.is_set():
                    local.close()
                    return
                self._open.add(tunnel)
                self._total += 1
            opener = threading.Thread(target=self._carry, args=(tunnel,), daemon=True,
                                      name=f"forward {self.local_port} connection")
            tunnel.threads.append(opener)
            opener.start()

    def _carry(self, tunnel: _Tunnel) -> None:
        try:
            tunnel.remote = self.sprite.open_port(self.port)
        except (SpritesError, OSError) as error:
            self.last_error = str(error)
            self._finish(tunnel)
            return
        if self._stopped.is_set():
            self._finish(tunnel)
            return
        upstream = threading.Thread(target=self._to_sprite, args=(tunnel,), daemon=True,
                                    name=f"forward {self.local_port} upstream")
        tunnel.threads.append(upstream)
        upstream.start()
        self._to_local(tunnel)

    def _to_sprite(self, tunnel: _Tunnel) -> None:
        assert tunnel.remote is not None
        try:
            while data := tunnel.local.recv(READ_SIZE):
                tunnel.sent += len(data)
                tunnel.remote.send(data)
        except (SpritesError, OSError):
            pass
        self._finish(tunnel)

    def _to_local(self, tunnel: _Tunnel) -> None:
        assert tunnel.remote is not None
        try:
            while data := tunnel.remote.recv():
                tunnel.received += len(data)
                tunnel.local.sendall(data)
        except SpritesError as error:
            self.last_error = str(error)
        except OSError:
            pass
        self._finish(tunnel)

    def _finish(self, tunnel: _Tunnel) -> None:
        tunnel.close()
        with self._lock:
            if tunnel in self._open:
                self._open.discard(tunnel)
                self._closed_sent += tunnel.sent
                self._closed_received += tunnel.received
