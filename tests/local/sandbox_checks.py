"""Helpers for the sandbox tests: run shell in a sprite, find its processes on the host."""

from __future__ import annotations

import httpx

from tests.local.exec_ws import run
from tests.local.ndjson import stream_events
from tests.waiting import eventually

__all__ = ["checkpoint", "eventually", "restore", "run", "sh", "start_service",
           "wait_for_service_line"]


def sh(server, sprite: str, script: str, **params: object) -> tuple[int, str, str]:
    """Run ``sh -c script`` in the sprite: exit code, stdout, stderr."""
    _, transcript = run(server, sprite, ["sh", "-c", script], **params)
    code = transcript.messages[-1]
    assert isinstance(code, bytes) and code[:1] == b"\x03", transcript.messages[-1:]
    return code[1], transcript.stream(1).decode(), transcript.stream(2).decode()


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


def wait_for_service_line(http: httpx.Client, sprite: str, name: str, line: str) -> None:
    """Wait until service ``name`` has logged ``line`` (say, the one it prints once its
    signal traps are set: a signal sent before that would just end it)."""
    eventually(lambda: any(e.get("data") == line for e in stream_events(
        http, "GET", f"/v1/sprites/{sprite}/services/{name}/logs")[1]),
        f"service {name} to print {line!r}")
