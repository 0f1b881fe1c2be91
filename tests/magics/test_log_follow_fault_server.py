"""How a followed log ends on a server that, like the reference's, streams only output and
``exit`` on a logs request (no ``stopping``/``stopped``): purpose-built fault servers, since
the local server does send those events."""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler

from sprites_jupyter.client import SpritesClient
from sprites_jupyter.magic_commands.log_follow import LogFollower
from sprites_jupyter.widgets.logs import LogText
from tests.client.misbehaving import Route, http_server, json_answer

SERVICE = "/v1/sprites/demo/services/web"


def _held_logs(events: list[dict[str, object]], release: threading.Event) -> Route:
    """A logs stream that sends ``events`` and then stays open until ``release``."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for event in events:
            line = json.dumps(event).encode() + b"\n"
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        handler.wfile.flush()
        release.wait(60)
        handler.close_connection = True

    return respond


def _states(*states: dict[str, object]) -> Route:
    """GET service: each answer the next of ``states`` (the last one repeats)."""
    answers = [json_answer("200 OK", {"name": "web", "cmd": "web", "state": s})
               for s in states]
    served = iter(range(len(answers)))

    def respond(handler: BaseHTTPRequestHandler) -> None:
        answers[min(next(served, len(answers) - 1), len(answers) - 1)](handler)

    return respond


def _follow(routes: dict[tuple[str, str], Route], release: threading.Event
            ) -> tuple[LogFollower, str]:
    out = io.StringIO()
    with http_server(routes) as url, SpritesClient("token", url) as client:
        handle = client.sprite("demo")
        stream = handle.service_logs("web", follow=float("inf"), raise_on_error=False)
        view = LogText("demo: web", announce=True, stdout=out, stderr=out)
        follower = LogFollower(handle, "web", stream, view, follow=True, poll=0.05)
        try:
            runner = threading.Thread(target=follower.run)
            runner.start()
            runner.join(60)
        finally:
            release.set()
    return follower, out.getvalue()


def _started(status: str, **more: object) -> dict[str, object]:
    return {"name": "web", "status": status, "started_at": "2026-06-02T17:11:14Z", **more}


def test_a_stop_the_stream_never_mentions_ends_the_view_by_polling_fault_server():
    release = threading.Event()
    follower, shown = _follow({
        ("GET", f"{SERVICE}/logs"): _held_logs([{"type": "stdout", "data": "hello\n"}],
                                               release),
        ("GET", SERVICE): _states(_started("running"), _started("running"),
                                  _started("stopped")),
    }, release)
    assert follower.ending == ("stopped", "stopped")
    assert shown.splitlines() == ["hello", "demo: web: stopped — stopped"]


def test_an_exit_without_restart_ends_the_view_exited_with_its_code_fault_server():
    release = threading.Event()
    follower, shown = _follow({
        ("GET", f"{SERVICE}/logs"): _held_logs([{"type": "stdout", "data": "working\n"},
                                                {"type": "exit", "exit_code": 2}], release),
        ("GET", SERVICE): _states(_started("running"),
                                  _started("failed", error="exited with code 2")),
    }, release)
    assert follower.ending == ("failed", "exited with code 2")
    assert shown.splitlines()[-1] == "demo: web: failed — exited with code 2"
