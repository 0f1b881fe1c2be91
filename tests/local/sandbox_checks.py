"""Helpers for the sandbox tests: run shell in a sprite, find its processes on the host."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.local.exec_ws import run
from tests.local.ndjson import stream_events

DEADLINE = 30.0


def sh(server, sprite: str, script: str, **params: object) -> tuple[int, str, str]:
    """Run ``sh -c script`` in the sprite: exit code, stdout, stderr."""
    _, transcript = run(server, sprite, ["sh", "-c", script], **params)
    code = transcript.messages[-1]
    assert isinstance(code, bytes) and code[:1] == b"\x03", transcript.messages[-1:]
    return code[1], transcript.stream(1).decode(), transcript.stream(2).decode()


def eventually(check: Callable[[], Any], what: str, limit: float = DEADLINE) -> Any:
    """Poll ``check`` until it is truthy; fail naming ``what`` when it never is."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def start_service(http: httpx.Client, sprite: str, name: str, script: str) -> int:
    """Define and start a ``sh -c script`` service; its pid inside the sprite."""
    status, _ = stream_events(http, "PUT", f"/v1/sprites/{sprite}/services/{name}",
                              params={"duration": "0"}, json={"cmd": "sh",
                                                              "args": ["-c", script]})
    assert status == 200
    state = http.get(f"/v1/sprites/{sprite}/services/{name}").json()["state"]
    assert state["status"] == "running", state
    return state["pid"]


def checkpoint(http: httpx.Client, sprite: str) -> str:
    status, events = stream_events(http, "POST", f"/v1/sprites/{sprite}/checkpoint", json={})
    assert status == 200 and events[-1]["type"] == "complete", events
    return events[-1]["data"].split()[1]


def restore(http: httpx.Client, sprite: str, checkpoint_id: str) -> None:
    status, events = stream_events(
        http, "POST", f"/v1/sprites/{sprite}/checkpoints/{checkpoint_id}/restore")
    assert status == 200 and events[-1]["type"] == "complete", events
