"""Inside a sprite kernel: a client whose requests go to the kernel's provisioner.

The provisioner starts the kernel with ``SPRITES_KERNEL_RELAY`` (an abstract Unix
socket in the sprite, served by :mod:`sprites_jupyter.remote.kernel_relay`),
``SPRITES_KERNEL_RELAY_KEY`` (what that socket asks for) and ``SPRITES_KERNEL_SPRITE``
(the sprite's name). The magics' usual
:class:`~sprites_jupyter.client.SpritesClient` is given an httpx transport that writes
each request to that socket, so ``%sprite checkpoint`` and friends work unchanged while
the token stays with the provisioner, which performs or refuses each request.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterator

import httpx

from ..client import SpritesClient

RELAY_ENV = "SPRITES_KERNEL_RELAY"
RELAY_KEY_ENV = "SPRITES_KERNEL_RELAY_KEY"
SPRITE_ENV = "SPRITES_KERNEL_SPRITE"
RELAY_URL = "http://sprite-kernel-provisioner"
_READ_SIZE = 64 * 1024


def kernel_sprite() -> str:
    """The sprite this kernel runs in, when it is a sprite kernel ("" otherwise)."""
    return os.environ.get(SPRITE_ENV, "") if os.environ.get(RELAY_ENV) else ""


def relay_client(*, timeout: float,
                 on_wait: Callable[[str], None] | None = None) -> SpritesClient | None:
    """The client for a sprite kernel without a token of its own; None elsewhere."""
    address = os.environ.get(RELAY_ENV)
    if not address or os.environ.get("SPRITES_TOKEN") or os.environ.get("SPRITE_TOKEN"):
        return None
    transport = RelayTransport(address, os.environ.get(RELAY_KEY_ENV, ""))
    return SpritesClient("held-by-the-provisioner", RELAY_URL, timeout=timeout,
                         transport=transport, on_wait=on_wait)


class _SocketBody(httpx.SyncByteStream):
    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection

    def __iter__(self) -> Iterator[bytes]:
        try:
            while data := self._connection.recv(_READ_SIZE):
                yield data
        except TimeoutError:
            raise httpx.ReadTimeout("the kernel's provisioner stopped answering") from None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._connection.close()


class RelayTransport(httpx.BaseTransport):
    """Sends each request over the relay's socket; the body streams back."""

    def __init__(self, address: str, key: str) -> None:
        self.address = address
        self.key = key

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(timeouts.get("read"))
        try:
            connection.connect("\0" + self.address)  # Linux's abstract namespace
            connection.sendall(json.dumps({
                "key": self.key,
                "method": request.method,
                "path": request.url.raw_path.decode("ascii"),
                "content_type": request.headers.get("content-type", ""),
                "body": base64.b64encode(request.read()).decode(),
            }).encode() + b"\n")
            head = json.loads(_read_line(connection))
        except (OSError, ValueError):
            connection.close()
            raise httpx.ConnectError("the kernel's provisioner is not answering (the kernel "
                                     "was started without it?): restart the kernel",
                                     request=request) from None
        return httpx.Response(head["status"], headers=head.get("headers") or {},
                              stream=_SocketBody(connection), request=request)


def _read_line(connection: socket.socket) -> bytes:
    """The head line, read a byte at a time so no body byte is taken with it."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = connection.recv(1)
        if not byte:
            raise ValueError("closed before the head")
        line += byte
    return bytes(line)
