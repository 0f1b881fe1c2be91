"""A service's log: the file, the backlog and following it, in chunks, over real HTTP."""

from __future__ import annotations

import json

import httpx

from tests.conftest import LocalServer
from tests.local.ndjson import stream_events
from tests.local.service_calls import LONG, put_service, sprite_platform, sprite_root, svc_path
from tests.waiting import eventually


def test_a_burst_of_lines_is_followed_whole_in_chunks_and_logged_line_by_line(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    script = "while [ ! -f go ]; do sleep 0.05; done; seq 1 5000; exec sleep 60"
    put_service(http, sprite, "burst", {"cmd": "sh", "args": ["-c", script]})
    expected = "".join(f"{i}\n" for i in range(1, 5001))
    chunks: list[str] = []
    with http.stream("GET", svc_path(sprite, "burst", "logs"),
                     params={"lines": "0", "duration": "30s"}) as response:
        (sprite_root(server, sprite) / "home/sprite/go").touch()
        for line in response.iter_lines():
            event = json.loads(line)
            assert event["type"] != "complete", "the follow ended before the burst arrived"
            if event["type"] == "stdout":
                chunks.append(event["data"])
                if len("".join(chunks)) >= len(expected):
                    break
    assert "".join(chunks) == expected
    assert all(chunk.endswith("\n") for chunk in chunks)
    assert len(chunks) < 5000, "each line became an event of its own"
    log = (sprite_platform(server, sprite) / "logs/services/burst.log").read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in log] == [f"[stdout] {i}" for i in range(1, 5001)]
    _, backlog = stream_events(http, "GET", svc_path(sprite, "burst", "logs"))
    assert "".join(e["data"] for e in backlog if e["type"] == "stdout") == expected
    assert len(backlog) < 5000, "the log came back one event per line"
    _, last = stream_events(http, "GET", svc_path(sprite, "burst", "logs"), params={"lines": "3"})
    assert "".join(e["data"] for e in last if e["type"] == "stdout") == "4998\n4999\n5000\n"


def test_logs_file_lines_and_follow(server: LocalServer, http: httpx.Client,
                                   sprite: str) -> None:
    script = "echo one; echo two >&2; echo three; while [ ! -f go ]; do sleep 0.05; done; " \
             "echo four; exec sleep 60"
    put_service(http, sprite, "web", {"cmd": "sh", "args": ["-c", script]}, duration="0.5s")
    log_file = sprite_platform(server, sprite) / "logs/services/web.log"
    # the three lines come before the service waits, but not necessarily within the 0.5 s
    log = eventually(lambda: len(lines := log_file.read_text().splitlines()) >= 3 and lines,
                     "the service's first three lines in its log")
    stamps, entries = zip(*(line.split(" ", 1) for line in log), strict=True)
    assert [e for e in entries if e.startswith("[stdout]")] == [
        "[stdout] one", "[stdout] three"]
    assert [e for e in entries if e.startswith("[stderr]")] == ["[stderr] two"]
    assert len(entries) == 3 and all(stamp.endswith("Z") for stamp in stamps)

    _, events = stream_events(http, "GET", svc_path(sprite, "web", "logs"))
    assert [(e["type"], line) for e in events[:-1] for line in e["data"].splitlines(True)] == [
        (entry[1:7], entry[9:] + "\n") for entry in entries]
    assert events[-1]["type"] == "complete" and "web.log" in events[-1]["log_files"]["combined"]
    _, last = stream_events(http, "GET", svc_path(sprite, "web", "logs"), params={"lines": "2"})
    assert [line for e in last[:-1] for line in e["data"].splitlines(True)] == [
        entry[9:] + "\n" for entry in entries[1:]]

    with http.stream("GET", svc_path(sprite, "web", "logs"),
                     params={"lines": "0", "duration": "30s"}) as response:
        lines = response.iter_lines()
        (sprite_root(server, sprite) / "home/sprite/go").touch()
        first = json.loads(next(lines))
    assert (first["type"], first["data"]) == ("stdout", "four\n")
    for bad in ("x", "-1", "²"):
        assert http.get(svc_path(sprite, "web", "logs"), params={"lines": bad}).status_code == 400


def test_followed_logs_carry_started_stopping_and_stopped(http: httpx.Client,
                                                          sprite: str) -> None:
    put_service(http, sprite, "web", {"cmd": "sh", "args": LONG}, duration="0.5s")
    with http.stream("GET", svc_path(sprite, "web", "logs"),
                     params={"lines": "0", "duration": "30s"}) as response:
        lines = response.iter_lines()
        stop = stream_events(http, "POST", svc_path(sprite, "web", "stop"))
        seen = []
        while not seen or seen[-1]["type"] != "stopped":
            seen.append(json.loads(next(lines)))
    assert stop[0] == 200
    assert [e["type"] for e in seen] == ["stopping", "stopped"]
    assert isinstance(seen[-1]["exit_code"], int)
