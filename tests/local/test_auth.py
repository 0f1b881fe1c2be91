"""Every route needs the bearer token; the server binds loopback by default."""

from __future__ import annotations

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import LocalServer

ROUTES = [
    ("GET", "/v1/sprites"),
    ("POST", "/v1/sprites"),
    ("GET", "/v1/sprites/x"),
    ("DELETE", "/v1/sprites/x"),
    ("GET", "/v1/sprites/x/checkpoints"),
    ("POST", "/v1/sprites/x/checkpoint"),
    ("GET", "/v1/sprites/x/services"),
    ("GET", "/v1/sprites/x/fs/read?path=/etc/passwd"),
    ("GET", "/v1/sprites/x/policy/network"),
    ("GET", "/v1/sprites/x/exec"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", "Basic dGVzdA==", "Bearer test-token-but-longer"]
)
def test_http_routes_need_the_token(server: LocalServer, method: str, path: str,
                                    header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = httpx.request(method, server.url + path, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_token_in_query_string_is_not_accepted(server: LocalServer) -> None:
    response = httpx.get(f"{server.url}/v1/sprites", params={"token": server.token})
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/exec?cmd=true", "/exec/1", "/proxy", "/control"])
def test_websocket_upgrades_need_the_token(server: LocalServer, path: str) -> None:
    with pytest.raises(InvalidStatus) as caught:
        connect(f"{server.ws_url}/v1/sprites/x{path}",
                additional_headers={"Authorization": "Bearer wrong"})
    assert caught.value.response.status_code == 401


def test_server_listens_on_loopback(server: LocalServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
