"""The server's end of the channel to a sprite's init (see :mod:`.sprite_init`).

One message per ``SOCK_SEQPACKET`` packet, file descriptors riding along as
``SCM_RIGHTS``: requests go as NUL separated fields (the init reads them without
importing ``json``), answers come as JSON objects. What arrives is checked here before
anything acts on it: a packet no init of ours sends is :class:`Malformed`, and whoever
receives fds owns closing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from collections.abc import Sequence
from typing import Any, TypeGuard

MAX_MESSAGE = 1 << 22


class Malformed(ValueError):
    """A message from an init that no init of ours sends."""


def parse_message(data: bytes) -> dict[str, Any]:
    """The JSON object of one packet; raises :class:`Malformed` for anything else."""
    try:
        message = json.loads(data)
    except ValueError:
        raise Malformed("not JSON") from None
    if not isinstance(message, dict):
        raise Malformed("not an object")
    return message


def encode_request(message: dict[str, Any]) -> bytes:
    """A request (``op`` and its fields, as :mod:`.sprite_init` lists them) as one
    packet; ValueError when a field cannot travel (a NUL byte, an ``=`` in an
    environment variable's name, text that is not the file system's encoding)."""
    op = message["op"]
    if op == "spawn":
        env = message["env"]
        for name in env:
            if not name or "=" in name:
                raise ValueError(f"invalid environment variable name: {name!r}")
        fields = [op, message["id"], int(message["tty"]), message["rows"], message["cols"],
                  message["cwd"], message["executable"], len(message["argv"]),
                  *message["argv"], *(f"{name}={value}" for name, value in env.items())]
    elif op == "signal":
        fields = [op, message["pid"], message["sig"]]
    elif op == "connect":
        fields = [op, message["id"], message["host"], message["port"]]
    else:
        raise ValueError(f"no such request: {op}")
    encoded = [str(int(field)).encode() if isinstance(field, int) else os.fsencode(field)
               for field in fields]
    if any(b"\0" in field for field in encoded):
        raise ValueError("a NUL byte cannot reach a process's argv, environment or "
                         "working directory")
    return b"\0".join(encoded)


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The fds an ``SCM_RIGHTS`` message carried (now this process's to close)."""
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
    return fds


async def send_message(control: socket.socket, message: dict[str, Any],
                       fds: Sequence[int] = ()) -> None:
    """Send one message (with ``fds``) on the non-blocking socket, waiting while it is
    full; raises OSError when the init is gone, ValueError (before sending anything)
    when the message cannot travel (:func:`encode_request`)."""
    data = encode_request(message)
    ancillary = ([(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
                 if fds else [])
    loop = asyncio.get_running_loop()
    while True:
        try:
            control.sendmsg([data], ancillary)
            return
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(control, writable.set_result, None)
            try:
                await writable
            finally:
                loop.remove_writer(control)


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)
