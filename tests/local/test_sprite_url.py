"""The sprite URL (``http://NAME.localhost:PORT/``) against the real server and real apps
started as services: HTTP and WebSocket, auth, the one-time sign-in link, the 502 page."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import LocalServer
from tests.sprite_apps import (
    free_port,
    start_service,
    start_web_echo,
    url_client,
    url_host,
    wait_until_serving,
)

TIMEOUT = 30


@pytest.fixture
def web(server: LocalServer, http: httpx.Client, sprite: str) -> Iterator[httpx.Client]:
    """The web echo app as the sprite's HTTP service; a client for the sprite URL."""
    start_web_echo(http, sprite, free_port())
    with url_client(server.url, sprite) as client:
        assert wait_until_serving(client, headers=server.headers).status_code == 200
        yield client


def open_ws(server: LocalServer, sprite: str, path: str = "/echo", **kwargs: object
            ) -> ClientConnection:
    """A WebSocket to the sprite URL, dialled on the server's loopback address."""
    port = httpx.URL(server.url).port
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return connect(f"ws://{sprite}.localhost:{port}{path}", sock=sock, open_timeout=TIMEOUT,
                   max_size=None,
                   **kwargs)  # type: ignore[arg-type]


def sign_in(http: httpx.Client, url_side: httpx.Client, sprite: str) -> httpx.Response:
    link = http.post(f"/v1/sprites/{sprite}/url/login")
    assert link.status_code == 200, link.text
    parts = urlsplit(link.json()["url"])
    assert parts.hostname == f"{sprite}.localhost"
    return url_side.get(f"{parts.path}?{parts.query}")


def set_auth(http: httpx.Client, sprite: str, auth: str) -> None:
    response = http.put(f"/v1/sprites/{sprite}", json={"url_settings": {"auth": auth}})
    assert response.status_code == 200 and response.json()["url_settings"]["auth"] == auth


def test_the_sprite_object_carries_its_local_url(server: LocalServer, http: httpx.Client,
                                                 sprite: str) -> None:
    body = http.get(f"/v1/sprites/{sprite}").json()
    assert body["url"] == f"http://{url_host(server.url, sprite)}/"
    assert body["url_settings"] == {"auth": "sprite"}


def test_private_url_needs_the_token(server: LocalServer, web: httpx.Client) -> None:
    refused = web.get("/")
    assert refused.status_code == 401
    assert "%sprite open" in refused.text and "--public" in refused.text
    assert web.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    lower = web.get("/", headers={"Authorization": f"bearer {server.token}"})
    assert lower.status_code == 200
    page = web.get("/", headers=server.headers)
    assert page.status_code == 200 and "Hello from the sprite" in page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert web.get("/nothing-here", headers=server.headers).status_code == 404


def test_public_url_serves_anyone(http: httpx.Client, sprite: str, web: httpx.Client) -> None:
    set_auth(http, sprite, "public")
    assert web.get("/").status_code == 200
    set_auth(http, sprite, "sprite")
    assert web.get("/").status_code == 401


def test_one_time_link_sets_a_cookie_for_this_sprite_only(
        server: LocalServer, http: httpx.Client, sprite: str, web: httpx.Client) -> None:
    signed = sign_in(http, web, sprite)
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    assert "httponly" in signed.headers["set-cookie"].lower()
    cookie = dict(web.cookies)
    assert web.get("/").status_code == 200
    again = sign_in(http, web, sprite)
    assert again.status_code == 303
    web.cookies.clear()
    link = http.post(f"/v1/sprites/{sprite}/url/login").json()["url"]
    target = urlsplit(link)
    assert web.get(f"{target.path}?{target.query}").status_code == 303
    assert web.get(f"{target.path}?{target.query}").status_code == 403  # used up
    forged = target.query.replace(target.query[-4:], "0000")
    assert web.get(f"{target.path}?{forged}").status_code == 403
    other = http.post("/v1/sprites", json={"name": f"{sprite}-b"})
    assert other.status_code == 201
    try:
        with url_client(server.url, f"{sprite}-b", cookies=cookie) as elsewhere:
            assert elsewhere.get("/").status_code == 401
    finally:
        http.delete(f"/v1/sprites/{sprite}-b")


def test_neither_token_nor_cookie_reaches_the_app(server: LocalServer, http: httpx.Client,
                                                  sprite: str, web: httpx.Client) -> None:
    sign_in(http, web, sprite)
    seen = web.get("/headers", headers={**server.headers, "Cookie": "theirs=1"}).json()
    lowered = {k.lower(): v for k, v in seen.items()}
    assert "authorization" not in lowered
    assert "sprites_local_url_auth" not in lowered.get("cookie", "")
    assert lowered["host"] == url_host(server.url, sprite)
    assert lowered["x-forwarded-proto"] == "http"
    app_token = web.get("/headers", headers={"Authorization": "Bearer app-token",
                                             "Cookie": web.headers.get("cookie", "")})
    assert app_token.status_code == 401  # another token is no sprite credential


def test_request_and_response_bodies_stream_intact(server: LocalServer,
                                                   web: httpx.Client) -> None:
    payload = os.urandom(8 * 1024 * 1024)
    sized = web.post("/digest", content=payload, headers=server.headers).json()
    assert sized == {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 1 << 20):
            yield payload[start:start + (1 << 20)]

    chunked = web.post("/digest", content=chunks(), headers=server.headers).json()
    assert chunked == sized


def test_a_request_the_app_cannot_be_sent_is_a_400(server: LocalServer, sprite: str,
                                                   web: httpx.Client) -> None:
    port = httpx.URL(server.url).port
    head = (f"POST /digest HTTP/1.1\r\nHost: {url_host(server.url, sprite)}\r\n"
            f"Authorization: Bearer {server.token}\r\nTransfer-Encoding: gzip, chunked\r\n"
            "Connection: close\r\n\r\n1\r\nx\r\n0\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        raw.sendall(head.encode())
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    status = answer.split(b"\r\n", 1)[0]
    assert status == b"HTTP/1.1 400 Bad Request", answer[:300]
    assert b"cannot be passed on to the app" in answer
    assert web.get("/", headers=server.headers).status_code == 200


def test_large_download_through_the_url(server: LocalServer, http: httpx.Client, sprite: str,
                                        web: httpx.Client) -> None:
    blob = os.urandom(24 * 1024 * 1024)
    written = http.put(f"/v1/sprites/{sprite}/fs/write", content=blob,
                       params={"path": "/home/sprite/files/blob.bin", "mkdirParents": "true"})
    assert written.status_code == 200
    port = free_port()
    start_service(http, sprite, "web", ["python3", "-m", "http.server", str(port)],
                  http_port=port, dir="/home/sprite/files")
    assert wait_until_serving(web, "/blob.bin", headers=server.headers).status_code == 200
    digest, size = hashlib.sha256(), 0
    with web.stream("GET", "/blob.bin", headers=server.headers) as response:
        assert response.headers["content-length"] == str(len(blob))
        for chunk in response.iter_bytes():
            digest.update(chunk)
            size += len(chunk)
    assert (size, digest.hexdigest()) == (len(blob), hashlib.sha256(blob).hexdigest())


def test_a_client_that_gives_up_ends_the_apps_connection(server: LocalServer,
                                                         web: httpx.Client) -> None:
    with pytest.raises(httpx.ReadTimeout):
        web.get("/hang", headers=server.headers, timeout=1)
    deadline = time.monotonic() + TIMEOUT
    while web.get("/ended", headers=server.headers).text != "1":
        assert time.monotonic() < deadline, "the app's connection was never closed"
        time.sleep(0.1)


def test_websocket_echo_with_token_cookie_or_public(server: LocalServer, http: httpx.Client,
                                                    sprite: str, web: httpx.Client) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_ws(server, sprite)
    assert refused.value.response.status_code == 401
    with open_ws(server, sprite, additional_headers=server.headers,
                 subprotocols=["echo"]) as ws:
        assert ws.subprotocol == "echo"
        ws.send("hello")
        assert ws.recv(timeout=TIMEOUT) == "hello"
        big = os.urandom(3 * 1024 * 1024)
        ws.send(big)
        assert ws.recv(timeout=TIMEOUT) == big
        ws.ping().wait(TIMEOUT)
    sign_in(http, web, sprite)
    cookie = "; ".join(f"{k}={v}" for k, v in web.cookies.items())
    with open_ws(server, sprite, additional_headers={"Cookie": cookie}) as ws:
        ws.send(b"\x00binary\xff")
        assert ws.recv(timeout=TIMEOUT) == b"\x00binary\xff"
    set_auth(http, sprite, "public")
    with open_ws(server, sprite) as ws:
        ws.send("public")
        assert ws.recv(timeout=TIMEOUT) == "public"


def test_an_app_without_websockets_answers_the_upgrade(server: LocalServer,
                                                       http: httpx.Client,
                                                       sprite: str) -> None:
    port = free_port()
    start_service(http, sprite, "files", ["python3", "-m", "http.server", str(port)],
                  http_port=port)
    with url_client(server.url, sprite) as client:
        assert wait_until_serving(client, headers=server.headers).status_code == 200
    with pytest.raises(InvalidStatus) as refused:  # http.server answers with HTTP/1.0
        open_ws(server, sprite, additional_headers=server.headers)
    assert refused.value.response.status_code == 502
    assert b"did not accept the WebSocket upgrade" in refused.value.response.body


def test_an_upgrade_the_app_refuses_is_refused_as_the_app_said(server: LocalServer,
                                                                sprite: str,
                                                                web: httpx.Client) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_ws(server, sprite, path="/refuse", additional_headers=server.headers)
    assert refused.value.response.status_code == 403
    assert refused.value.response.body == b"no websocket here\n"


def test_nothing_listening_is_a_502_page_naming_the_port(server: LocalServer,
                                                         http: httpx.Client,
                                                         sprite: str) -> None:
    port = free_port()
    start_service(http, sprite, "idle", ["sleep", "3600"], http_port=port)
    with url_client(server.url, sprite) as client:
        answer = client.get("/", headers=server.headers)
        assert answer.status_code == 502
        assert f"Nothing is listening on port {port} in sprite {sprite}" in answer.text
        with pytest.raises(InvalidStatus) as refused:
            open_ws(server, sprite, additional_headers=server.headers)
        assert refused.value.response.status_code == 502
        http.delete(f"/v1/sprites/{sprite}/services/idle")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", 8080)) == 0 and not os.environ.get("CI"):
                pytest.skip("something on this host listens on 8080, the default port")
        answer = client.get("/", headers=server.headers)
        assert answer.status_code == 502 and "port 8080" in answer.text


def test_unknown_sprite_and_the_api_stay_apart(server: LocalServer, http: httpx.Client,
                                               sprite: str) -> None:
    with url_client(server.url, "no-such-sprite") as client:
        missing = client.get("/", headers=server.headers)
        assert missing.status_code == 404 and "no-such-sprite" in missing.text
    with url_client(server.url, sprite) as client:  # the API is not reachable by this host
        answer = client.get(f"/v1/sprites/{sprite}", headers=server.headers)
        assert answer.status_code == 502
    assert json.loads(http.get(f"/v1/sprites/{sprite}").text)["name"] == sprite
    assert http.post("/v1/sprites/no-such-sprite/url/login").status_code == 404
