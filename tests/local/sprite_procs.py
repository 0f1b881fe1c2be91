"""Seeing a sprite's processes from the host, in either isolation mode of the server."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sprites_jupyter.local.testing import LocalServer


def sandboxed(http: httpx.Client) -> bool:
    """Whether the server runs its sprites in sandboxes (it says so in a header)."""
    return http.head("/v1/sprites").headers.get("sprite-local-isolation") == "sandbox"


@contextlib.contextmanager
def fresh_sandboxed_sprite(server: LocalServer, prefix: str
                           ) -> Iterator[tuple[LocalServer, httpx.Client, str]]:
    """A new sprite on ``server`` (named ``prefix-…``), deleted afterwards; the test is
    skipped where the host gives no sandbox."""
    with server.http() as http:
        if not sandboxed(http):
            pytest.skip("this host gives no sandbox")
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        assert http.post("/v1/sprites", json={"name": name}).status_code == 201
        try:
            yield server, http, name
        finally:
            http.delete(f"/v1/sprites/{name}")


def host_pid(http: httpx.Client, sprite: str, pid: int) -> int:
    """The host's pid of the sprite's process ``pid`` (the pid it has inside).

    A sandboxed sprite's processes are found by their root (whose ``/etc/hostname``
    is the sprite's name) and the last pid of their ``NSpid`` line.
    """
    if not sandboxed(http):
        return pid
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            status = Path(entry.path, "status").read_text()
            nspids = next(line for line in status.splitlines() if line.startswith("NSpid:"))
            if int(nspids.split()[-1]) != pid or len(nspids.split()) < 3:
                continue
            if Path(entry.path, "root/etc/hostname").read_text().strip() == sprite:
                return int(entry.name)
    raise AssertionError(f"no process {pid} of sprite {sprite} on this host")


def alive(host: int) -> bool:
    """Whether host process ``host`` exists and is not a zombie."""
    try:
        fields = Path(f"/proc/{host}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[0] != "Z"
