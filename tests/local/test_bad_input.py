"""Bad input through real HTTP: every case is a 4xx with a clear message, never a 500, and
the server answers the next request (on the same keep-alive connection) as before."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import LocalServer, start_server

from .exec_ws import open_exec, session_info

DEEP = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def _assert_refused(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text[:300]
    message = response.json()["message"]
    assert "\n" not in message and "Traceback" not in message and len(message) < 400
    for word in words:
        assert word in message, message
    return message


def _still_serving(http: httpx.Client) -> None:
    assert http.get("/v1/sprites", params={"max_results": 1}).status_code == 200


@pytest.fixture
def session_id(server: LocalServer, sprite: str) -> Iterator[str]:
    """A live exec session (``sleep``) the test may send a kill body to."""
    with open_exec(server, sprite, ["sleep", "60"], max_run_after_disconnect="60s") as ws:
        sid = str(session_info(ws)["session_id"])
        yield sid
    httpx.post(f"{server.url}/v1/sprites/{sprite}/exec/{sid}/kill",
               params={"signal": "KILL", "timeout": "5s"}, headers=server.headers, timeout=30)


JSON_ENDPOINTS = [
    ("POST", "/v1/sprites"),
    ("PUT", "/v1/sprites/{sprite}"),
    ("POST", "/v1/sprites/{sprite}/exec/{sid}/kill"),
    ("PUT", "/v1/sprites/{sprite}/services/web"),
    ("POST", "/v1/sprites/{sprite}/services/signal"),
    ("POST", "/v1/sprites/{sprite}/checkpoint"),
    ("POST", "/v1/sprites/{sprite}/policy/network"),
    ("POST", "/v1/sprites/{sprite}/fs/rename"),
    ("POST", "/v1/sprites/{sprite}/fs/copy"),
    ("POST", "/v1/sprites/{sprite}/fs/chmod"),
    ("POST", "/v1/sprites/{sprite}/fs/chown"),
]


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
def test_deeply_nested_json_is_refused_on_every_json_endpoint(
        http: httpx.Client, sprite: str, session_id: str, method: str, path: str) -> None:
    url = path.format(sprite=sprite, sid=session_id)
    response = http.request(method, url, content=DEEP,
                            headers={"Content-Type": "application/json"})
    _assert_refused(response, 400, "nested deeper than")
    _still_serving(http)


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
def test_json_bodies_over_the_cap_are_refused_413(
        http: httpx.Client, sprite: str, session_id: str, method: str, path: str) -> None:
    url = path.format(sprite=sprite, sid=session_id)
    body = json.dumps({"comment": "x" * (2 * 1024 * 1024)}).encode()
    response = http.request(method, url, content=body,
                            headers={"Content-Type": "application/json"})
    _assert_refused(response, 413, "too large")
    _still_serving(http)


def test_a_body_without_length_is_cut_off_at_the_cap(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(64):
            yield b"y" * 65536

    response = http.post("/v1/sprites", content=chunks(),
                         headers={"Content-Type": "application/json"})
    _assert_refused(response, 413, "too large")
    _still_serving(http)


def test_http_exec_stdin_over_the_cap_is_refused_413(http: httpx.Client, sprite: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(65):
            yield b"z" * (1024 * 1024)

    params = [("cmd", "wc"), ("cmd", "-c"), ("stdin", "true")]
    response = http.post(f"/v1/sprites/{sprite}/exec", params=params, content=chunks())
    _assert_refused(response, 413, "too large", "64 MiB", "WebSocket")
    _still_serving(http)
    small = http.post(f"/v1/sprites/{sprite}/exec", params=params, content=b"12345")
    assert small.status_code == 200 and small.content.endswith(bytes([3, 0]))
    assert b"5" in small.content


def test_long_checkpoint_comments_and_labels_are_refused(http: httpx.Client,
                                                         sprite: str) -> None:
    response = http.post(f"/v1/sprites/{sprite}/checkpoint", json={"comment": "c" * 100_000})
    _assert_refused(response, 400, "comment too long")
    assert all(len(c["comment"]) < 100
               for c in http.get(f"/v1/sprites/{sprite}/checkpoints").json())
    _assert_refused(http.put(f"/v1/sprites/{sprite}", json={"labels": ["l" * 1000]}), 400,
                    "labels")
    _assert_refused(http.put(f"/v1/sprites/{sprite}",
                             json={"labels": [f"l{i}" for i in range(10_000)]}), 400, "labels")
    _still_serving(http)


@pytest.mark.parametrize("name", ["a\n", "web\n", "a" * 64, "a" * 5000, "A", "-a", "a\x00"],
                         ids=["newline", "web-newline", "64", "5000", "upper", "dash", "nul"])
def test_sprite_names_must_match_in_full(http: httpx.Client, name: str) -> None:
    _assert_refused(http.post("/v1/sprites", json={"name": name}), 400, "invalid sprite name")
    assert name not in [s["name"] for s in http.get("/v1/sprites").json()["sprites"]]
    _assert_refused(http.get(f"/v1/sprites/{quote(name, safe='')}"), 400,
                    "invalid sprite name")


@pytest.mark.parametrize("name", ["web%0A", "w" * 64, "w" * 3000], ids=["newline", "64", "3000"])
def test_service_names_must_match_in_full(http: httpx.Client, sprite: str, name: str) -> None:
    response = http.put(f"/v1/sprites/{sprite}/services/{name}", params={"duration": "0s"},
                        json={"cmd": "sleep", "args": ["1"]})
    _assert_refused(response, 400, "invalid service name")
    assert http.get(f"/v1/sprites/{sprite}/services").json() == []
    response = http.post(f"/v1/sprites/{sprite}/services/signal",
                         json={"name": "web\n", "signal": "TERM"})
    _assert_refused(response, 400, "invalid service name")


def test_checkpoint_ids_must_match_in_full(http: httpx.Client, sprite: str) -> None:
    for checkpoint_id in ("v0%0A", "v" + "9" * 5000):
        _assert_refused(http.get(f"/v1/sprites/{sprite}/checkpoints/{checkpoint_id}"), 404,
                        "checkpoint not found")
    _still_serving(http)


@pytest.fixture
def service(http: httpx.Client, sprite: str) -> str:
    response = http.put(f"/v1/sprites/{sprite}/services/web", params={"duration": "0s"},
                        json={"cmd": "sleep", "args": ["60"]})
    assert response.status_code == 200
    return "web"


@pytest.mark.parametrize("lines", ["99999999999999999999", "1000001", "-1", "1e3"])
def test_service_log_lines_out_of_range(http: httpx.Client, sprite: str, service: str,
                                        lines: str) -> None:
    response = http.get(f"/v1/sprites/{sprite}/services/{service}/logs",
                        params={"lines": lines})
    _assert_refused(response, 400, "invalid lines")
    _still_serving(http)


@pytest.mark.parametrize("duration", ["1e400", "inf", "nan", "9999999999999h", "-inf"])
def test_durations_must_be_finite_and_in_go_range(http: httpx.Client, sprite: str,
                                                  service: str, duration: str) -> None:
    logs = http.get(f"/v1/sprites/{sprite}/services/{service}/logs",
                    params={"duration": duration})
    _assert_refused(logs, 400, "invalid duration")
    start = http.post(f"/v1/sprites/{sprite}/services/{service}/restart",
                      params={"duration": duration})
    _assert_refused(start, 400, "invalid duration")
    _still_serving(http)


def test_kill_timeout_in_the_body_must_be_finite(http: httpx.Client, sprite: str,
                                                 session_id: str) -> None:
    response = http.post(f"/v1/sprites/{sprite}/exec/{session_id}/kill",
                         content=b'{"signal": "TERM", "timeout": 1e400}',
                         headers={"Content-Type": "application/json"})
    _assert_refused(response, 400, "invalid timeout")
    assert any(str(s["id"]) == session_id
               for s in http.get(f"/v1/sprites/{sprite}/exec").json()["sessions"])


@pytest.mark.parametrize("params", [
    [("cmd", "echo"), ("cmd", "a\x00b")],
    [("cmd", "ec\x00ho")],
    [("cmd", "env"), ("env", "A=a\x00b")],
    [("cmd", "env"), ("env", "A\x00=b")],
    [("cmd", "pwd"), ("dir", "/home/sprite\x00/x")],
])
def test_nul_bytes_in_exec_are_refused(http: httpx.Client, server: LocalServer, sprite: str,
                                       params: list[tuple[str, str]]) -> None:
    _assert_refused(http.post(f"/v1/sprites/{sprite}/exec", params=params), 400, "NUL byte")
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    query = str(httpx.QueryParams(params))
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{server.ws_url}/v1/sprites/{sprite}/exec?{query}",
                additional_headers=server.headers)
    assert refused.value.response.status_code == 400
    assert b"NUL byte" in refused.value.response.body
    _still_serving(http)


def _raw(server: LocalServer, request: bytes) -> bytes:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_an_oversized_url_is_answered_414_at_once(server: LocalServer,
                                                  http: httpx.Client) -> None:
    answer = _raw(server, b"GET /v1/sprites?" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: "
                  b"127.0.0.1\r\nAuthorization: Bearer " + server.token.encode() + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 414 ") and b"request URL too long" in answer
    _still_serving(http)


def test_an_oversized_websocket_upgrade_is_answered_414_not_dropped(server: LocalServer,
                                                                    sprite: str) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = f"{server.ws_url}/v1/sprites/{sprite}/exec?cmd=echo&cmd={'x' * 10_000}"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers=server.headers, open_timeout=60)
    assert refused.value.response.status_code == 414
    assert b"stdin" in refused.value.response.body


def test_oversized_headers_are_answered_431(server: LocalServer, http: httpx.Client) -> None:
    auth = b"Authorization: Bearer " + server.token.encode() + b"\r\n"
    big = _raw(server, b"GET /v1/sprites HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth
               + b"X-Big: " + b"h" * 100_000 + b"\r\n\r\n")
    many = _raw(server, b"GET /v1/sprites HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth
                + b"".join(b"X-H%d: v\r\n" % i for i in range(500)) + b"\r\n")
    for answer in (big, many):
        assert answer.startswith(b"HTTP/1.1 431 ") and b"headers too large" in answer
    _still_serving(http)


def test_keep_alive_connection_stays_usable_after_errors(server: LocalServer,
                                                         sprite: str) -> None:
    """Each error answer either keeps the connection usable or says ``Connection: close``."""
    with server.http() as http:
        for method, path, body in [
            ("GET", "/v1/sprites/nope-nope", None),
            ("POST", "/v1/sprites", DEEP),
            ("POST", "/v1/sprites", b"{not json"),
            ("GET", f"/v1/sprites/{sprite}/services/none/logs?lines=x", None),
            ("POST", f"/v1/sprites/{sprite}/checkpoint", b'{"comment": 5}'),
        ]:
            response = http.request(method, path, content=body)
            assert 400 <= response.status_code < 500
            closing = response.headers.get("connection", "").lower() == "close"
            assert http.get("/v1/sprites").status_code == 200, (path, closing)


def test_bearer_scheme_is_case_insensitive(server: LocalServer) -> None:
    for scheme in ("bearer", "BEARER", "BeArEr"):
        response = httpx.get(f"{server.url}/v1/sprites",
                             headers={"Authorization": f"{scheme} {server.token}"})
        assert response.status_code == 200, scheme
    refused = httpx.get(f"{server.url}/v1/sprites",
                        headers={"Authorization": f"Basic {server.token}"})
    assert refused.status_code == 401


# (NAME.localhost is a sprite's URL, not the API: tests/local/test_sprite_url.py)
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.0.0.1:8080", "[::1]:80",
                                  "localhost:1234", "a.b.localhost:9", "LOCALHOST"])
def test_loopback_hosts_are_served(server: LocalServer, host: str) -> None:
    response = httpx.get(f"{server.url}/v1/sprites", headers={**server.headers, "Host": host})
    assert response.status_code == 200


def _own_address() -> str | None:
    """This machine's outbound IPv4 address (a UDP connect sends nothing), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_a_server_on_all_addresses_answers_its_own_address_as_host(tmp_path: Path) -> None:
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no IPv4 address besides loopback to reach the server by")
    running = start_server(tmp_path / "home", args=["--host", "0.0.0.0"])
    try:
        port = running.url.rsplit(":", 1)[1]
        served = httpx.get(f"http://{address}:{port}/v1/sprites", headers=running.headers)
        assert served.status_code == 200, served.text
        other = "10.255.255.1" if address != "10.255.255.1" else "10.255.255.2"
        refused = httpx.get(f"http://{address}:{port}/v1/sprites",
                            headers={**running.headers, "Host": f"{other}:{port}"})
        _assert_refused(refused, 403, "DNS rebinding")
    finally:
        running.stop()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "localhost.evil.example",
                                  "10.0.0.1", "0.0.0.0", "[2001:db8::1]:80"])
def test_other_hosts_are_refused_against_dns_rebinding(server: LocalServer, sprite: str,
                                                       host: str) -> None:
    response = httpx.get(f"{server.url}/v1/sprites", headers={**server.headers, "Host": host})
    _assert_refused(response, 403, "DNS rebinding")
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as refused:
        connect(f"{server.ws_url}/v1/sprites/{sprite}/exec?cmd=true",
                additional_headers={**server.headers, "Host": host})
    assert refused.value.response.status_code == 403
