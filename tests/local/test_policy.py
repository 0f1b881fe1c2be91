"""Network policy (reference section 9): stored, returned, strictly validated."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import LocalServer
from tests.local.exec_ws import run

GOOD = {"rules": [{"include": "defaults"}, {"domain": "Example.com ", "action": "allow"},
                  {"domain": "*.example.com", "action": "ALLOW"},
                  {"domain": "blocked.com", "action": "deny"},
                  {"include": "defaults", "action": "deny"}]}


def test_default_policy_is_empty(http: httpx.Client, sprite: str) -> None:
    response = http.get(f"/v1/sprites/{sprite}/policy/network")
    assert response.status_code == 200
    assert response.json() == {"rules": []}


def test_set_then_get_round_trips_normalised(server: LocalServer, http: httpx.Client,
                                             sprite: str) -> None:
    response = http.post(f"/v1/sprites/{sprite}/policy/network", json=GOOD)
    assert response.status_code == 204
    rules = http.get(f"/v1/sprites/{sprite}/policy/network").json()["rules"]
    assert rules[1] == {"domain": "example.com", "action": "allow"}
    assert rules[2] == {"domain": "*.example.com", "action": "allow"}
    assert rules[4] == {"include": "defaults", "action": "deny"}
    _, seen = run(server, sprite, ["cat", "/.sprite/policy/network.json"])
    assert json.loads(seen.stream(1))["rules"] == rules


@pytest.mark.parametrize("body", [
    {},
    {"rules": "x"},
    {"rules": [], "extra": 1},
    {"rules": [{"domain": "a.com"}]},
    {"rules": [{"domain": "a.com", "action": "maybe"}]},
    {"rules": [{"domain": "a.com", "include": "defaults", "action": "allow"}]},
    {"rules": [{"include": "everything"}]},
    {"rules": [{"include": "defaults", "action": "block"}]},
    {"rules": [{"domain": "a.com", "action": "allow", "port": 80}]},
    {"rules": ["a.com"]},
    {"rules": [{"domain": "", "action": "allow"}]},
])
def test_invalid_policies_are_400_and_leave_the_old_one(http: httpx.Client, sprite: str,
                                                         body: dict) -> None:
    http.post(f"/v1/sprites/{sprite}/policy/network", json=GOOD)
    before = http.get(f"/v1/sprites/{sprite}/policy/network").json()
    response = http.post(f"/v1/sprites/{sprite}/policy/network", json=body)
    assert response.status_code == 400
    assert "invalid policy config" in response.json()["message"]
    assert http.get(f"/v1/sprites/{sprite}/policy/network").json() == before


def test_unknown_sprite_is_404(http: httpx.Client) -> None:
    assert http.get("/v1/sprites/no-such/policy/network").status_code == 404
    assert http.post("/v1/sprites/no-such/policy/network", json={"rules": []}).status_code == 404
