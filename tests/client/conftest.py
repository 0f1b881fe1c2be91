"""Fixtures for the client tests: our client pointed at the real local server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sprites_jupyter.client import Sprite, SpritesClient
from sprites_jupyter.local.testing import LocalServer


@pytest.fixture
def client(server: LocalServer) -> Iterator[SpritesClient]:
    with SpritesClient(server.token, server.url) as connected:
        yield connected


@pytest.fixture
def sp(client: SpritesClient, sprite: str) -> Sprite:
    """A handle on a fresh sprite."""
    return client.sprite(sprite)
