"""Inside a sprite kernel: a client whose requests go to the kernel's provisioner.

The provisioner starts the kernel with ``SPRITES_KERNEL_RELAY`` (an abstract Unix
socket in the sprite, served by :mod:`sprites_jupyter.remote.kernel_relay`),
``SPRITES_KERNEL_RELAY_KEY`` (what that socket asks for) and ``SPRITES_KERNEL_SPRITE``
(the sprite's name). The magics' usual
:class:`~sprites_jupyter.client.SpritesClient` is given an httpx transport that writes
each request to that socket, so ``%sprite checkpoint`` and friends work unchanged while
the token stays with the provisioner, which performs or refuses each request. Programs
the magics run in their own sprite (the diff helper) run as children of the kernel,
which is in that sprite already.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx

from ..client import ExecError, ExecResult, ExecTimeout, Sprite, SpritesClient

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
    return KernelClient("held-by-the-provisioner", RELAY_URL, timeout=timeout,
                        transport=transport, on_wait=on_wait)


class KernelClient(SpritesClient):
    """The relayed client; its handle on the kernel's own sprite runs programs here."""

    def sprite(self, name: str) -> Sprite:
        if name and name == os.environ.get(SPRITE_ENV):
            return OwnSprite(self, name)
        return super().sprite(name)


class OwnSprite(Sprite):
    """The sprite this kernel runs in: :meth:`run` starts a child process of the kernel
    (the relay carries no exec, and none is needed in the sprite itself)."""

    def run(self, *cmd: str, env: dict[str, str] | None = None, dir: str | None = None,
            stdin: bytes | str | None = None, timeout: float | None = None,
            check: bool = False) -> ExecResult:
        started = time.monotonic()
        data = stdin.encode() if isinstance(stdin, str) else stdin
        try:
            done = subprocess.run(list(cmd), input=data or b"", capture_output=True, env=env,
                                  cwd=dir, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ExecTimeout(f"command {' '.join(cmd)!r} did not finish within {timeout:g}s; "
                              "it was killed") from None
        except OSError as error:
            done = subprocess.CompletedProcess(list(cmd), 127, b"", str(error).encode())
        result = ExecResult(stdout=done.stdout.decode("utf-8", "replace"),
                            stderr=done.stderr.decode("utf-8", "replace"),
                            exit_code=done.returncode, duration=time.monotonic() - started)
        if check and result.exit_code != 0:
            raise ExecError(" ".join(cmd), result.exit_code, result.stdout[-2000:],
                            result.stderr[-2000:])
        return result


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
