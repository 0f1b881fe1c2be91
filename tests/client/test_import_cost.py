"""What the client package brings into a process: only its own transport, no notebook or
server code, and no change to the interpreter's modules (a kernel's ``sys.modules`` holds
real modules after the first request), while an async client under trio still works."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import LocalServer

_FIRST_REQUEST = """
import json, sys, types
from sprites_jupyter.client import SpritesClient
client = SpritesClient(sys.argv[1], sys.argv[2])
names = [s.name for s in client.list_sprites()]
stand_ins = sorted(name for name, module in sys.modules.items()
                   if module is not None and type(module) is not types.ModuleType
                   and type(module).__module__.startswith("sprites_jupyter"))
print(json.dumps({"names": names, "stand_ins": stand_ins, "loaded": sorted(sys.modules)}))
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

# The client never imports the notebook side (IPython, widgets, pandas) or the server.
_NOT_IMPORTED = ("IPython", "ipywidgets", "pandas", "sprites_jupyter.local",
                 "sprites_jupyter.magics", "sprites_jupyter.magic_commands")


def _run(code: str, server: LocalServer) -> str:
    done = subprocess.run([sys.executable, "-c", code, server.token, server.url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_client_leaves_sys_modules_alone_and_imports_no_notebook_or_server_code(
        server: LocalServer, sprite: str) -> None:
    answer = json.loads(_run(_FIRST_REQUEST, server))
    assert sprite in answer["names"]
    assert answer["stand_ins"] == []
    for name in _NOT_IMPORTED:
        assert not [m for m in answer["loaded"] if m == name or m.startswith(f"{name}.")], name


@pytest.mark.skipif(importlib.util.find_spec("trio") is None,
                    reason="trio is not installed")
def test_an_async_client_under_trio_still_works_after_a_sync_request(
        server: LocalServer) -> None:
    assert _run(_ASYNC_AFTERWARDS, server).strip() == "200"
