"""Sprite management (reference section 2) over real HTTP."""

from __future__ import annotations

import uuid

import httpx
import pytest


def _name() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


def test_create_returns_201_with_the_sprite_object(http: httpx.Client) -> None:
    name = _name()
    response = http.post("/v1/sprites", json={"name": name, "labels": ["a"]})
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == name
    assert body["organization"] == "local"
    assert body["url_settings"] == {"auth": "sprite"}
    assert body["status"] == "cold"
    assert body["labels"] == ["a"]
    assert body["id"].startswith("sprite-")
    assert body["created_at"].endswith("Z")
    assert response.headers["sprite-version"].startswith("v")
    http.delete(f"/v1/sprites/{name}")


def test_duplicate_name_is_409(http: httpx.Client, sprite: str) -> None:
    response = http.post("/v1/sprites", json={"name": sprite})
    assert response.status_code == 409
    assert "already exists" in response.json()["message"]


@pytest.mark.parametrize("body", [{"name": "Bad_Name"}, {"name": ""}, {"name": "-x"}, {},
                                  {"name": "ok", "bogus": 1}, {"name": 3}])
def test_invalid_create_bodies_are_400(http: httpx.Client, body: dict) -> None:
    response = http.post("/v1/sprites", json=body)
    assert response.status_code == 400
    assert response.json()["message"]


def test_malformed_json_is_400_not_500(http: httpx.Client) -> None:
    response = http.post("/v1/sprites", content=b"{not json",
                         headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "invalid JSON" in response.json()["message"]


def test_get_update_delete(http: httpx.Client) -> None:
    name = _name()
    http.post("/v1/sprites", json={"name": name})
    assert http.get(f"/v1/sprites/{name}").json()["name"] == name
    updated = http.put(f"/v1/sprites/{name}",
                       json={"url_settings": {"auth": "public"}, "labels": ["x", "y"]})
    assert updated.status_code == 200
    assert updated.json()["url_settings"]["auth"] == "public"
    assert updated.json()["labels"] == ["x", "y"]
    cleared = http.put(f"/v1/sprites/{name}", json={"clear_labels": True})
    assert cleared.json()["labels"] == []
    assert http.put(f"/v1/sprites/{name}", json={"url_settings": {"auth": "x"}}).status_code == 400
    assert http.delete(f"/v1/sprites/{name}").status_code == 204
    assert http.get(f"/v1/sprites/{name}").status_code == 404
    assert http.delete(f"/v1/sprites/{name}").status_code == 404
    assert http.put(f"/v1/sprites/{name}", json={"labels": []}).status_code == 404


def test_upgrade_is_204_and_404_for_unknown(http: httpx.Client, sprite: str) -> None:
    assert http.post(f"/v1/sprites/{sprite}/upgrade").status_code == 204
    assert http.post("/v1/sprites/nope-nope/upgrade").status_code == 404


def test_list_paginates_with_prefix_and_clamps_max_results(http: httpx.Client) -> None:
    prefix = f"p{uuid.uuid4().hex[:6]}-"
    names = [f"{prefix}{i:02d}" for i in range(7)]
    for name in names:
        assert http.post("/v1/sprites", json={"name": name}).status_code == 201
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"prefix": prefix, "max_results": 3}
        if token:
            params["continuation_token"] = token
        page = http.get("/v1/sprites", params=params).json()
        pages += 1
        seen += [s["name"] for s in page["sprites"]]
        assert all(s["org_slug"] == "local" for s in page["sprites"])
        if not page["has_more"]:
            assert page["next_continuation_token"] is None
            break
        token = page["next_continuation_token"]
    assert seen == names
    assert pages == 3
    assert http.get("/v1/sprites", params={"prefix": prefix, "max_results": 100}).status_code == 200
    bad = http.get("/v1/sprites", params={"continuation_token": "%%%"})
    assert bad.status_code == 400
    for name in names:
        http.delete(f"/v1/sprites/{name}")


def test_unknown_endpoint_is_json_404(http: httpx.Client) -> None:
    response = http.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"

