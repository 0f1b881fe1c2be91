"""Faults a healthy server cannot produce on demand.

Tests named ``misbehaving_server`` talk to the purpose-built server in
``misbehaving.py`` over real sockets; tests named ``mock_transport`` use an
``httpx.MockTransport``; both are named so.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from websockets.sync.server import ServerConnection

from sprites_jupyter.client import (
    AuthError,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    NotFound,
    ProtocolError,
    RateLimited,
    ServerError,
    SpritesClient,
    StreamError,
)

from .misbehaving import http_server, ndjson_chunks, raw, ws_server

TOKEN = "secret-token-0123456789"
CHECKPOINT = ("POST", "/v1/sprites/s/checkpoint")
INFO = b'{"type":"info","data":"Creating checkpoint...","time":"2026-01-05T10:30:00Z"}\n'


def _mock(handler) -> SpritesClient:
    return SpritesClient(TOKEN, "https://api.sprites.dev",
                         transport=httpx.MockTransport(handler))


def test_misbehaving_server_malformed_ndjson_line_names_the_line() -> None:
    routes = {CHECKPOINT: ndjson_chunks(INFO, b"{this is not json\n")}
    with http_server(routes) as url, SpritesClient(TOKEN, url) as client:
        stream = client.sprite("s").create_checkpoint()
        assert next(stream).data == "Creating checkpoint..."
        with pytest.raises(ProtocolError, match=r"line 2 .*this is not json"):
            next(stream)
        assert stream.closed


def test_misbehaving_server_stream_cut_mid_way() -> None:
    routes = {CHECKPOINT: ndjson_chunks(INFO, b'{"type":"info","da', finish=False)}
    with http_server(routes) as url, SpritesClient(TOKEN, url) as client:
        stream = client.sprite("s").create_checkpoint()
        assert next(stream).type == "info"
        with pytest.raises(ProtocolError):
            next(stream)
        assert stream.closed


def test_misbehaving_server_502_with_an_html_body() -> None:
    page = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>\n"
            b"<h1>Bad Gateway</h1>\n<p>upstream went away</p>\n" + b"<div></div>\n" * 40 +
            b"</body></html>")
    routes = {("GET", "/v1/sprites/s"): raw("502 Bad Gateway", "text/html", page)}
    with (http_server(routes) as url, SpritesClient(TOKEN, url) as client,
          pytest.raises(ServerError) as caught):
        client.get_sprite("s")
    message = str(caught.value)
    assert caught.value.status == 502 and "502 Bad Gateway" in message
    assert "\n" not in message and "<div>" not in message and len(message) < 200


def test_misbehaving_server_error_event_is_yielded_then_raised() -> None:
    error = b'{"type":"error","error":"Checkpoint failed: disk full","time":"2026-01-05T10:30:00Z"}'
    routes = {CHECKPOINT: ndjson_chunks(INFO, error)}
    with http_server(routes) as url, SpritesClient(TOKEN, url) as client:
        events = []
        with pytest.raises(StreamError, match="disk full") as caught:
            for event in client.sprite("s").create_checkpoint():
                events.append(event)
        assert [e.type for e in events] == ["info", "error"]
        assert caught.value.event == events[-1]
        quiet = list(client.sprite("s").create_checkpoint(raise_on_error=False))
        assert [e.type for e in quiet] == ["info", "error"]


def test_misbehaving_server_blank_lines_and_an_unterminated_last_line() -> None:
    complete = b'{"type":"complete","data":"Restored to v1","time":"2026-01-05T10:30:00Z"}'
    routes = {("POST", "/v1/sprites/s/checkpoints/v1/restore"):
              ndjson_chunks(b"\n", INFO[:20], INFO[20:] + b"\n\n", complete)}
    with http_server(routes) as url, SpritesClient(TOKEN, url) as client:
        events = list(client.sprite("s").restore_checkpoint("v1"))
    assert [e.type for e in events] == ["info", "complete"]


def test_misbehaving_server_connection_refused_names_the_url_and_hints_at_the_server() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with SpritesClient(TOKEN, url) as client:
        for call in (client.list_sprites, lambda: client.sprite("s").run("true")):
            with pytest.raises(ConnectionFailed) as caught:
                call()
            assert f"127.0.0.1:{port}" in str(caught.value)
            assert "sprites-local serve" in str(caught.value)
            assert TOKEN not in str(caught.value)


def _exec_server(script) -> ws_server:
    def handler(connection: ServerConnection) -> None:
        connection.recv(timeout=60)  # the client's first frame; bounds a failure only
        script(connection)

    return ws_server(handler)


def test_misbehaving_server_exec_socket_closed_without_an_exit_status() -> None:
    def script(connection: ServerConnection) -> None:
        connection.send(b"\x01partial")
        connection.close()

    with (_exec_server(script) as url, SpritesClient(TOKEN, url) as client,
          pytest.raises(ProtocolError, match="before the exit status")):
        client.sprite("s").run("anything")


def test_misbehaving_server_exec_variants_an_sdk_must_tolerate() -> None:
    """Integer session ids, port notices, junk text frames, and a text exit in non-TTY."""

    def script(connection: ServerConnection) -> None:
        connection.send(json.dumps({"type": "session_info", "session_id": 1847, "tty": False}))
        connection.send("not json at all")
        connection.send(json.dumps({"type": "port_opened", "port": 8080, "pid": 1}))
        connection.send(b"")
        connection.send(b"\x09unknown stream")
        connection.send(b"\x01out")
        connection.send(json.dumps({"type": "exit", "exit_code": 3}))
        connection.send(b"\x01after exit is ignored")

    with _exec_server(script) as url, SpritesClient(TOKEN, url) as client:
        cmd = client.sprite("s").command("anything", stdin=False)
        assert cmd.session_id == "1847"
        assert [c.data for c in cmd] == [b"out"]
        assert cmd.exit_code == 3 and cmd.ports[0]["port"] == 8080


def test_mock_transport_get_retries_connection_errors_with_backoff() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) < 3:
            raise httpx.ConnectError("connection reset")
        return httpx.Response(200, json={"name": "s", "id": "sprite-1"})

    with _mock(handler) as client:
        assert client.get_sprite("s").id == "sprite-1"
    assert calls == ["GET"] * 3


def test_mock_transport_get_gives_up_after_bounded_retries_and_posts_never_retry() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ConnectError("connection refused")

    with _mock(handler) as client:
        with pytest.raises(ConnectionFailed) as caught:
            client.get_sprite("s")
        assert "api.sprites.dev" in str(caught.value)
        assert "sprites-local" not in str(caught.value)
        assert calls == ["GET"] * 3
        calls.clear()
        with pytest.raises(ConnectionFailed):
            client.create_sprite("s")
        assert calls == ["POST"]


def test_mock_transport_error_bodies_map_to_classes_with_one_line_messages() -> None:
    answers = {
        "/v1/sprites/auth": httpx.Response(401, text="Missing or invalid authentication\n"),
        "/v1/sprites/gone": httpx.Response(404, json={"error": "not_found",
                                                      "message": "sprite not found: gone"}),
        "/v1/sprites/limited": httpx.Response(
            429, headers={"Retry-After": "7"},
            json={"error": "sprite_creation_rate_limited", "message": "Rate limit exceeded",
                  "retry_after_seconds": 30}),
        "/v1/sprites/bad": httpx.Response(400, text="invalid\nmulti-line\nmessage"),
        "/v1/sprites/echo": httpx.Response(500, text=f"token was Bearer {TOKEN}"),
        "/v1/sprites/empty": httpx.Response(503),
    }

    with _mock(lambda request: answers[request.url.path]) as client:
        def error(name: str) -> Exception:
            with pytest.raises(Exception) as caught:
                client.get_sprite(name)
            return caught.value

        assert isinstance(error("auth"), AuthError)
        assert isinstance(error("gone"), NotFound) and "sprite not found: gone" in str(
            error("gone"))
        limited = error("limited")
        assert isinstance(limited, RateLimited) and limited.retry_after == 30
        assert limited.code == "sprite_creation_rate_limited"
        bad = error("bad")
        assert isinstance(bad, InvalidRequest) and "invalid multi-line message" in str(bad)
        assert TOKEN not in str(error("echo")) and isinstance(error("echo"), ServerError)
        assert "status 503" in str(error("empty"))


def test_mock_transport_create_conflict_as_400_from_older_servers() -> None:
    answer = httpx.Response(400, json={"error": "invalid",
                                       "message": "sprite with name s already exists"})
    with _mock(lambda request: answer) as client, pytest.raises(Conflict):
        client.create_sprite("s")


def test_mock_transport_documented_variants() -> None:
    """Reference page shapes: a JSON service from PUT, policy 200 with a body, list extras."""

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "PUT" and path == "/v1/sprites/s/services/web":
            return httpx.Response(200, json={"name": "web", "cmd": "python3",
                                             "state": {"status": "starting"}})
        if path == "/v1/sprites/s/policy/network":
            return httpx.Response(200, json={"rules": []})
        if path == "/v1/sprites/s/services":
            return httpx.Response(200, json={"services": [{"name": "web", "cmd": "x"}]})
        if path == "/v1/sprites/s/exec":
            return httpx.Response(200, json={"sessions": [
                {"id": 12, "created": 1767609000, "new_field": True}]})
        if path == "/v1/sprites/s/checkpoints":
            return httpx.Response(200, text="v2\nv3\n", headers={"content-type": "text/plain"})
        if path.startswith("/v1/sprites/s/checkpoints/"):
            return httpx.Response(200, json={"id": path.rsplit("/", 1)[1]})
        return httpx.Response(404)

    with _mock(handler) as client:
        sprite = client.sprite("s")
        events = list(sprite.create_service("web", "python3"))
        assert events[-1].type == "complete"
        assert events[-1].extra["service"]["state"]["status"] == "starting"
        sprite.set_network_policy([])
        assert [s.name for s in sprite.list_services()] == ["web"]
        session = sprite.list_sessions()[0]
        assert session.id == "12" and session.created.year == 2026
        assert session.extra == {"new_field": True}
        assert [c.id for c in sprite.list_checkpoints(history="v1")] == ["v2", "v3"]
