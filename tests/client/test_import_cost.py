"""What a fresh process imports to talk to the server: the sync client's first request
does not load httpcore's async backends, and they still work when used afterwards."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import LocalServer

_FIRST_REQUEST = """
import json, sys
from sprites_jupyter.client import SpritesClient
client = SpritesClient(sys.argv[1], sys.argv[2])
names = [s.name for s in client.list_sprites()]
loaded = {name: type(sys.modules[name]).__name__ if name in sys.modules else None
          for name in ("trio", "anyio")}
print(json.dumps({"names": names, "loaded": loaded}))
"""

_ASYNC_AFTERWARDS = """
import sys
import httpx
from sprites_jupyter.client import SpritesClient
SpritesClient(sys.argv[1], sys.argv[2]).list_sprites()
import trio

async def main():
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {sys.argv[1]}"}) as http:
        print((await http.get(sys.argv[2] + "/v1/sprites")).status_code)

trio.run(main)
"""


def _run(code: str, server: LocalServer) -> str:
    done = subprocess.run([sys.executable, "-c", code, server.token, server.url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_first_request_leaves_the_async_backends_unloaded(server: LocalServer,
                                                               sprite: str) -> None:
    answer = json.loads(_run(_FIRST_REQUEST, server))
    assert sprite in answer["names"]
    for name, kind in answer["loaded"].items():
        if importlib.util.find_spec(name) is not None:
            assert kind == "_DeferredModule", f"{name} was imported for a sync request"


@pytest.mark.skipif(importlib.util.find_spec("trio") is None,
                    reason="trio is not installed, so there is no deferred backend to use")
def test_an_async_client_under_trio_still_works_after_a_sync_request(
        server: LocalServer) -> None:
    assert _run(_ASYNC_AFTERWARDS, server).strip() == "200"
