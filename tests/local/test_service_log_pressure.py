"""A service that writes as fast as it can, followed by a slow reader: the server keeps up.

The reader's queue is bounded (it is told how many lines it missed), the server's
memory stays bounded and it keeps answering other requests meanwhile.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LocalServer, start_server

# How much the server may grow while the flood runs: far below what unbounded queueing
# of a flood of lines reaches within seconds, far above what bounded buffers take.
RSS_GROWTH_CAP_KB = 250 * 1024
LINE = "0123456789" * 6


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LocalServer]:
    """A server of its own, so the flood's log file lives and dies in this test's tmp dir."""
    running = start_server(tmp_path / "home")
    yield running
    running.stop()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc status")


def _drop_notice(http: httpx.Client, sprite: str, rss: list[int], pid: int) -> dict | None:
    """Follow the flood slowly, sampling the server's memory; the first drop notice."""
    deadline = time.monotonic() + 120
    with http.stream("GET", f"/v1/sprites/{sprite}/services/flood/logs",
                     params={"lines": "0", "duration": "300s"}) as response:
        assert response.status_code == 200
        pending = b""
        for chunk in response.iter_raw(16384):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                event = json.loads(line)
                if event["type"] == "error" and event.get("dropped"):
                    return event
            rss.append(_rss_kb(pid))
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)
    return None


def test_slow_follower_of_an_unthrottled_service_gets_a_drop_notice(
        own_server: LocalServer) -> None:
    with own_server.http() as http:
        assert http.post("/v1/sprites", json={"name": "flood"}).status_code == 201
        pid = own_server.process.pid
        before = _rss_kb(pid)
        response = http.put("/v1/sprites/flood/services/flood", params={"duration": "0"},
                            json={"cmd": "yes", "args": [LINE]})
        assert response.status_code == 200, response.text
        try:
            rss: list[int] = []
            notice = _drop_notice(http, "flood", rss, pid)
            assert notice is not None, "the slow follower was never told of dropped lines"
            assert notice["dropped"] > 0 and "lines dropped" in notice["data"]
            assert "/.sprite/logs/services/flood.log" in notice["data"]
            listed = http.get("/v1/sprites")
            assert listed.status_code == 200 and "flood" in listed.text
            rss.append(_rss_kb(pid))
            assert max(rss) - before < RSS_GROWTH_CAP_KB, (before, max(rss))
            state = http.get("/v1/sprites/flood/services/flood").json()["state"]
            assert state["status"] == "running"
        finally:
            http.post("/v1/sprites/flood/services/flood/stop", params={"timeout": "2s"})
