"""Plain-``websockets`` helpers for the exec tests: URLs, and reading a socket to its close."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

RECV_TIMEOUT = 60  # s; bounds only a failure (a loaded machine can be slow to answer)


def exec_url(server, sprite: str, suffix: str = "exec", **params: object) -> str:
    """The ws:// URL of an exec endpoint; list values repeat the parameter (``cmd``, ``env``)."""
    query = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
    return f"{server.ws_url}/v1/sprites/{sprite}/{suffix}" + (f"?{query}" if query else "")


def open_exec(server, sprite: str, cmd: list[str], **params: object) -> ClientConnection:
    return connect(exec_url(server, sprite, cmd=cmd, **params),
                   additional_headers=server.headers, max_size=None)


def open_attach(server, sprite: str, sid: str, *, legacy: bool = False) -> ClientConnection:
    url = (exec_url(server, sprite, id=sid) if legacy
           else exec_url(server, sprite, f"exec/{sid}"))
    return connect(url, additional_headers=server.headers, max_size=None)


def session_info(ws: ClientConnection) -> dict:
    """The first message, which must be the text ``session_info``."""
    first = ws.recv(timeout=RECV_TIMEOUT)
    assert isinstance(first, str), f"first frame is not text: {first!r}"
    info = json.loads(first)
    assert info["type"] == "session_info"
    return info


@dataclass
class Transcript:
    """Every message after ``session_info`` up to the close, and the close code."""

    messages: list[str | bytes]
    close_code: int | None

    def stream(self, stream_id: int) -> bytes:
        """The payloads of the non-TTY binary frames of one stream, joined."""
        return b"".join(m[1:] for m in self.messages
                        if isinstance(m, bytes) and m[:1] == bytes([stream_id]))

    @property
    def raw(self) -> bytes:
        """All binary frames joined (TTY output)."""
        return b"".join(m for m in self.messages if isinstance(m, bytes))


def read_to_close(ws: ClientConnection) -> Transcript:
    messages: list[str | bytes] = []
    try:
        while True:
            messages.append(ws.recv(timeout=RECV_TIMEOUT))
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else None
    return Transcript(messages, code)


def run(server, sprite: str, cmd: list[str], *, send: list[bytes | str] | None = None,
        **params: object) -> tuple[dict, Transcript]:
    """Run a command to completion; the ``send`` frames go out after ``session_info``."""
    with open_exec(server, sprite, cmd, **params) as ws:
        info = session_info(ws)
        for frame in send or []:
            ws.send(frame)
        return info, read_to_close(ws)


def sprite_root(server, sprite: str) -> Path:
    return (server.home / "sprites" / sprite / "root").resolve()
