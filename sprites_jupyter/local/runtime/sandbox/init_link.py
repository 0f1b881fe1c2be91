"""The server's end of one init's control socket, read on the event loop.

Requests are numbered and their answers (with any fds) handed back to whoever asked;
the exit statuses the init reports find the process they belong to, even when one
arrives before the spawn's answer has been taken. A message that is not one of the
init's (see :mod:`.sprite_init`) ends the link: a sprite that took the init's socket
must not reach further into the server. Every fd received and not handed on is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import Unavailable
from .init_channel import (
    MAX_MESSAGE,
    Malformed,
    close_all,
    encode_request,
    is_int,
    parse_message,
    received_fds,
    send_message,
)

log = logging.getLogger("sprites_jupyter.local.sandbox")

Answer = tuple[dict[str, Any], list[int]]
"""An init's answer and the fds that came with it."""
_READY = -1


class InitGone(Unavailable):
    """The sprite's init is not running (its sandbox stopped or could not start)."""


class InitLink:
    """One running init's socket: ``ready`` resolves with its first message, ``request``
    asks and waits for the answer, ``adopt`` waits for a child's exit status; ``on_lost``
    is called once the init ends or misbehaves (the sandbox then stops)."""

    def __init__(self, name: str, control: socket.socket, on_lost: Callable[[], None]) -> None:
        self.name = name
        self._control = control
        self._on_lost = on_lost
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Answer]] = {}
        self._children: dict[int, Callable[[int], None]] = {}
        self._exits: dict[int, int] = {}
        self._closed = False
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[Answer] = loop.create_future()
        self._pending[_READY] = self.ready
        control.setblocking(False)
        loop.add_reader(control, self._on_readable)

    def close(self) -> None:
        """Stop reading and close the socket (the init sees it close)."""
        if not self._closed:
            self._closed = True
            asyncio.get_running_loop().remove_reader(self._control)
            self._control.close()

    def fail_all(self, returncode: int) -> None:
        """Fail every request still waiting, and end every adopted child with
        ``returncode`` (their init is gone, and they with it)."""
        self._fail_requests()
        for finish in self._children.values():
            finish(returncode)
        self._children.clear()
        self._exits.clear()

    async def request(self, message: dict[str, Any], fds: Sequence[int] = ()) -> Answer:
        """Send ``message`` (with ``fds``) under a new request id; its answer."""
        if self._closed:
            raise InitGone(f"the sandbox of {self.name} stopped")
        self._next_id += 1
        request_id = message["id"] = self._next_id
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await send_message(self._control, message, fds)
        except OSError as exc:
            self._pending.pop(request_id, None)
            raise InitGone(f"the sandbox of {self.name} stopped") from exc
        except BaseException:
            self._pending.pop(request_id, None)
            raise
        return await future

    def adopt(self, pid: int, finish: Callable[[int], None]) -> None:
        """Call ``finish`` with the exit status of ``pid``, now if it came already;
        right away with SIGKILL's when the link is closed (its init is gone)."""
        exited = self._exits.pop(pid, None)
        if exited is not None:
            finish(exited)
        elif self._closed:
            finish(-signal.SIGKILL)
        else:
            self._children[pid] = finish

    def send_signal(self, pid: int, sig: int) -> None:
        """Signal a process group of the sprite (fire and forget)."""
        if not self._closed:
            with contextlib.suppress(OSError):
                self._control.sendmsg(
                    [encode_request({"op": "signal", "pid": pid, "sig": int(sig)})])

    def _lost(self) -> None:
        """Nothing more will be answered: close, fail what waits (a start waiting for
        ``ready`` says why at once) and let the owner stop the sandbox."""
        self.close()
        self._fail_requests()
        self._on_lost()

    def _fail_requests(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(InitGone(f"the sandbox of {self.name} stopped"))
        self._pending.clear()

    def _on_readable(self) -> None:
        while not self._closed:
            try:
                data, ancillary, _, _ = self._control.recvmsg(
                    MAX_MESSAGE, socket.CMSG_SPACE(16), socket.MSG_CMSG_CLOEXEC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, ancillary = b"", []
            if not data:
                log.warning("the init of sprite %s ended", self.name)
                self._lost()
                return
            fds = received_fds(ancillary)
            try:
                self._dispatch(parse_message(data), fds)
            except Malformed as exc:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                log.warning("the init of sprite %s sent a malformed message (%s): stopping "
                            "its sandbox", self.name, exc)
                self._lost()
                return

    def _dispatch(self, message: dict[str, Any], fds: list[int]) -> None:
        """Hand an answer to its request; every fd not handed on is closed here."""
        if "exit" in message:
            pid, status = message["exit"], message.get("status")
            if not is_int(pid) or not is_int(status):
                raise Malformed("exit without integer pid and status")
            close_all(fds)
            finish = self._children.pop(pid, None)
            if finish is not None:
                finish(status)
            else:
                self._exits[pid] = status
            return
        key = _READY if "ready" in message else message.get("id")
        if not is_int(key):
            raise Malformed("no request id")
        future = self._pending.pop(key, None)
        if future is None or future.done():
            close_all(fds)
            return
        if key == _READY:
            close_all(fds)
            fds = []
        future.set_result((message, fds))
