"""HTTP exec (``POST /v1/sprites/{name}/exec``, reference section 3.11): one request, no
WebSocket, for callers behind proxies that do not pass WebSockets.

The response is the non-TTY frames (``0x01``/``0x02`` + data, then ``0x03 code``)
concatenated without lengths, so only the final exit frame is certain. The streams are
split at the stream-id bytes: exact for text, while a ``0x01``/``0x02`` byte inside the
data (binary output) is read as a switch of stream. Use ``Sprite.run`` when that matters.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import ProtocolError
from .exec_protocol import EXIT, STDERR, STDOUT, exec_params
from .http import HttpSession, segment

_FRAME_START = re.compile(rb"[\x01\x02]")


@dataclass(frozen=True)
class HttpExecResult:
    """What HTTP exec returned: the exit code and the framed output before it."""

    exit_code: int
    output: bytes
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def _stream(self, stream_id: int) -> bytes:
        parts, current, position = [], None, 0
        for match in _FRAME_START.finditer(self.output):
            if current == stream_id:
                parts.append(self.output[position:match.start()])
            current, position = match.group()[0], match.end()
        if current == stream_id:
            parts.append(self.output[position:])
        return b"".join(parts)

    @property
    def stdout(self) -> str:
        return self._stream(STDOUT).decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self._stream(STDERR).decode("utf-8", "replace")

    def __repr__(self) -> str:
        return (f"HttpExecResult(exit_code={self.exit_code}, duration={self.duration:.2f} s, "
                f"{len(self.output)} bytes of output)")


def run_over_http(session: HttpSession, sprite: str, argv: Sequence[str], *,
                  env: dict[str, str] | None, dir: str | None, stdin: bytes | None,
                  timeout: float | None) -> HttpExecResult:
    """Run ``argv`` to completion with one POST; ``stdin`` is the request body."""
    started = time.monotonic()
    params = exec_params(argv, env=env, dir=dir, tty=False, stdin=stdin is not None)
    command = " ".join(argv)
    response = session.request("POST", f"/v1/sprites/{segment(sprite)}/exec", params=params,
                               content=stdin, timeout=timeout,
                               what=f"exec {command!r} on {sprite} over HTTP")
    body = response.content
    if len(body) < 2 or body[-2] != EXIT:
        raise ProtocolError(f"HTTP exec of {command!r} on {sprite}: the response did not end "
                            "with an exit frame (0x03 code)")
    return HttpExecResult(exit_code=body[-1], output=body[:-2],
                          duration=time.monotonic() - started)
