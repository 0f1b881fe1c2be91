"""Calls of the services API shared by the service tests, over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import LocalServer
from tests.local.ndjson import stream_events
from tests.local.sprite_procs import host_pid

LONG = ["-c", "echo up; exec sleep 60"]


def svc_path(sprite: str, svc: str = "", op: str = "") -> str:
    path = f"/v1/sprites/{sprite}/services"
    if svc:
        path += f"/{svc}"
    return path + (f"/{op}" if op else "")


def put_service(http: httpx.Client, sprite: str, svc: str, body: dict[str, Any],
                duration: str = "0") -> tuple[int, list[dict[str, Any]]]:
    return stream_events(http, "PUT", svc_path(sprite, svc), params={"duration": duration},
                         json=body)


def event_types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def service_state(http: httpx.Client, sprite: str, svc: str) -> dict[str, Any]:
    response = http.get(svc_path(sprite, svc))
    assert response.status_code == 200, response.text
    return response.json()["state"]


def service_host_pid(http: httpx.Client, sprite: str, svc: str) -> int:
    """The host pid of a running service's process (its state names the pid inside)."""
    return host_pid(http, sprite, service_state(http, sprite, svc)["pid"])


def sprite_root(server: LocalServer, sprite: str) -> Path:
    return server.home / "sprites" / sprite / "root"


def sprite_platform(server: LocalServer, sprite: str) -> Path:
    """The server-owned directory the sprite sees, read-only, as ``/.sprite``."""
    return server.home / "sprites" / sprite / "platform"
