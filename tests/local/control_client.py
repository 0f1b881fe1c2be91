"""A test client for the control connection that frames exactly as the official SDKs do.

``GoStyle`` follows sprites-go: a prefixed ``op.start`` for exec (``path`` and ``cmd``,
booleans as strings), raw stdin bytes and a single-byte ``0x04`` EOF, an unprefixed
``{"type":"release"}`` after each op, and the filesystem helpers' unprefixed ``op.start``
with URL-encoded ``args``. ``JsStyle`` follows sprites-js: no ``path``, ``0x00``-prefixed
stdin, ``stdin`` always given, and the op ends on ``op.complete``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

from websockets.sync.client import ClientConnection, connect

PREFIX = "control:"
TIMEOUT = 30


def open_control(server, sprite: str) -> ClientConnection:
    return connect(f"{server.ws_url}/v1/sprites/{sprite}/control",
                   additional_headers=server.headers, max_size=None)


def control(message: dict) -> str:
    return PREFIX + json.dumps(message)


def envelope(frame: str | bytes) -> dict | None:
    """The JSON of a ``control:`` frame, else ``None``."""
    if isinstance(frame, str) and frame.startswith(PREFIX):
        return json.loads(frame[len(PREFIX):])
    return None


@dataclass
class OpResult:
    """Everything an op sent: its data frames, its control frames, its end."""

    data: list[str | bytes] = field(default_factory=list)
    controls: list[dict] = field(default_factory=list)

    @property
    def end(self) -> dict:
        return self.controls[-1]

    @property
    def info(self) -> dict:
        return json.loads(next(f for f in self.data if isinstance(f, str)
                               and json.loads(f).get("type") == "session_info"))

    def stream(self, stream_id: int) -> bytes:
        return b"".join(f[1:] for f in self.data if isinstance(f, bytes)
                        and f[:1] == bytes([stream_id]))

    @property
    def raw(self) -> bytes:
        return b"".join(f for f in self.data if isinstance(f, bytes))

    def texts(self) -> list[dict]:
        return [json.loads(f) for f in self.data if isinstance(f, str)]


def read_op(ws: ClientConnection, result: OpResult | None = None) -> OpResult:
    """Read frames until ``op.complete`` or ``op.error``."""
    result = result or OpResult()
    while True:
        frame = ws.recv(timeout=TIMEOUT)
        message = envelope(frame)
        if message is None:
            result.data.append(frame)
            continue
        result.controls.append(message)
        if message["type"] in ("op.complete", "op.error"):
            return result


class GoStyle:
    """sprites-go's framing on one pooled socket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    def start_exec(self, argv: list[str], *, stdin: bool = False, tty: bool = False,
                   attach: str | None = None, **extra: str) -> None:
        args: dict[str, object] = {}
        if attach is None:
            args.update(cmd=argv, path=argv[0])
        else:
            args["id"] = attach
        if tty:
            args["tty"] = "true"
        if stdin:
            args["stdin"] = "true"
        args.update(extra)
        self.ws.send(control({"type": "op.start", "op": "exec", "args": args}))

    def exec(self, argv: list[str], stdin: bytes | None = None, **extra: str) -> OpResult:
        self.start_exec(argv, stdin=stdin is not None, **extra)
        if stdin is not None:
            if stdin:
                self.ws.send(stdin)
            self.ws.send(b"\x04")
        result = read_op(self.ws)
        self.release()
        return result

    def release(self) -> None:
        self.ws.send(json.dumps({"type": "release"}))

    def fs(self, op: str, content: bytes | None = None, **args: str) -> tuple[dict, bytes | None]:
        """An ``Fs*Control`` call: the JSON answer, and the bytes of ``fs.read``."""
        self.ws.send(json.dumps({"type": "op.start", "op": op, "args": urlencode(args)}))
        if content is not None:
            self.ws.send(content)
        answer = json.loads(self.ws.recv(timeout=TIMEOUT))
        data = None
        if "error" not in answer:
            if op == "fs.read":
                data = self.ws.recv(timeout=TIMEOUT)
                assert isinstance(data, bytes)
            end = json.loads(self.ws.recv(timeout=TIMEOUT))
            assert end["type"] == "op.complete", end
        self.release()
        return answer, data


class JsStyle:
    """sprites-js's (and -py's) framing."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    def start_exec(self, argv: list[str], *, tty: bool = False, op_id: str | None = None,
                   **extra: str) -> None:
        args: dict[str, object] = {"cmd": argv, "stdin": "true", **extra}
        if tty:
            args["tty"] = "true"
        message: dict[str, object] = {"type": "op.start", "op": "exec", "args": args}
        if op_id is not None:
            message["id"] = op_id
        self.ws.send(control(message))

    def exec(self, argv: list[str], stdin: bytes = b"", **extra: str) -> OpResult:
        self.start_exec(argv, **extra)
        if stdin:
            self.ws.send(b"\x00" + stdin)
        self.ws.send(b"\x04")
        return read_op(self.ws)
