"""A process that writes faster than one read per wake: output stays whole and in order."""

from __future__ import annotations

import subprocess

from tests.conftest import LocalServer
from tests.local.exec_ws import run

FRAME_LIMIT = 256 * 1024


def test_fast_output_arrives_in_order_in_frames_of_at_most_256_kib(
        server: LocalServer, sprite: str) -> None:
    expected = subprocess.run(["seq", "1", "1500000"], capture_output=True, check=True).stdout
    _, transcript = run(server, sprite, ["seq", "1", "1500000"])
    frames = [m for m in transcript.messages if isinstance(m, bytes) and m[:1] == b"\x01"]
    assert max(len(frame) for frame in frames) <= FRAME_LIMIT
    assert transcript.stream(1) == expected
    assert transcript.messages[-1] == b"\x03\x00"
