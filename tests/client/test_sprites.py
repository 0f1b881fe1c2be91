"""Sprite management through the client, against the real local server."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from sprites_jupyter.client import (
    AuthError,
    Conflict,
    InvalidRequest,
    NotFound,
    SpriteInfo,
    SpritesClient,
)
from tests.conftest import LocalServer


def _name(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_create_get_update_delete(client: SpritesClient) -> None:
    name = _name()
    created = client.create_sprite(name, url_auth="public", labels=["team-a"])
    try:
        assert isinstance(created, SpriteInfo)
        assert created.name == name and created.id and created.url
        assert created.auth == "public" and created.labels == ("team-a",)
        assert isinstance(created.created_at, datetime) and created.created_at.tzinfo
        assert client.get_sprite(name).id == created.id

        updated = client.update_sprite(name, url_auth="sprite")
        assert updated.auth == "sprite" and updated.labels == ("team-a",)
        assert client.update_sprite(name, labels=[]).labels == ()
        client.upgrade_sprite(name)
        assert client.sprite(name).info().name == name
    finally:
        client.delete_sprite(name)
    with pytest.raises(NotFound, match=name):
        client.get_sprite(name)


def test_list_follows_every_page(client: SpritesClient) -> None:
    prefix = f"pg{uuid.uuid4().hex[:6]}"
    names = sorted(f"{prefix}-{i:03d}" for i in range(53))
    for name in names:
        client.create_sprite(name)
    try:
        listed = client.list_sprites(prefix=prefix)
        assert [s.name for s in listed] == names
        assert all(s.name.startswith(prefix) for s in client.list_sprites(prefix=prefix[:-1]))
    finally:
        for name in names:
            client.delete_sprite(name)
    assert client.list_sprites(prefix=prefix) == []


def test_duplicate_name_is_a_conflict(client: SpritesClient, sprite: str) -> None:
    with pytest.raises(Conflict, match="already exists"):
        client.create_sprite(sprite)


def test_invalid_name_is_an_invalid_request_with_the_servers_message(
        client: SpritesClient) -> None:
    with pytest.raises(InvalidRequest, match="invalid sprite name") as caught:
        client.create_sprite("Not_Valid!")
    assert caught.value.status == 400
    assert "\n" not in str(caught.value)


def test_missing_sprite_is_not_found_everywhere(client: SpritesClient) -> None:
    ghost = client.sprite(_name("ghost"))
    for call in (ghost.info, ghost.list_services, ghost.list_checkpoints,
                 ghost.get_network_policy, ghost.list_sessions, lambda: ghost.read_file("/x"),
                 lambda: client.delete_sprite(ghost.name)):
        with pytest.raises(NotFound):
            call()


def test_wrong_token_is_an_auth_error_that_never_shows_the_token(server: LocalServer) -> None:
    secret = "wrong-token-" + uuid.uuid4().hex
    with SpritesClient(secret, server.url) as client:
        assert secret not in repr(client)
        with pytest.raises(AuthError) as caught:
            client.list_sprites()
        assert caught.value.status == 401
        assert secret not in str(caught.value) and secret not in repr(caught.value)
        with pytest.raises(AuthError):
            client.sprite("any").run("true")


def test_client_shape(server: LocalServer) -> None:
    client = SpritesClient(server.token, server.url + "/")
    assert client.base_url == server.url and client.is_local
    assert server.token not in repr(client) and server.token not in repr(client.sprite("x"))
    assert client.sprite("x") == client.sprite("x")
    client.close()
    assert not SpritesClient("t", "https://api.sprites.dev").is_local
