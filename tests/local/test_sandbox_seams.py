"""What the rest of the server builds on, on a real server state and a real sandbox:
``view_root``, ``open_connection`` into the sprite's network, hidden platform processes
and ``platform_env``, ``/.sprite/run`` for the server's unix sockets, and a command the
init cannot be sent."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from pathlib import Path

import pytest

from sprites_jupyter.local.runtime.sandbox.bwrap import SandboxUnavailable, detect
from sprites_jupyter.local.runtime.sandbox.child import SpawnFailed
from sprites_jupyter.local.runtime.sandbox.machine import Isolation
from sprites_jupyter.local.state import ServerState

SERVER = """
import socket
listener = socket.create_server(("127.0.0.1", 7777))
while True:
    conn, _ = listener.accept()
    with conn:
        conn.sendall(("pong " + open("/proc/self/environ").read().split("\\0")[0]).encode())
"""


@pytest.fixture
def isolation() -> Isolation:
    try:
        return Isolation(detect())
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox on this host ({exc}); these seams are the sandbox's")


def _state(home: Path, isolation: Isolation) -> ServerState:
    state = ServerState(home, "token", isolation)
    row = state.seed_tree("seams")
    assert row.is_dir()
    return state


def test_platform_process_env_connection_and_view(tmp_path: Path, isolation: Isolation) -> None:
    async def scenario() -> None:
        state = _state(tmp_path / "home", isolation)
        runtime = state.runtime("seams")
        runtime.platform_env = {"EGRESS_MARK": "set-by-platform"}
        try:
            null = os.open(os.devnull, os.O_RDWR)
            try:  # a hidden process: neither a session nor a service
                child, _ = await runtime.sandbox.spawn(["python3", "-c", SERVER], "python3",
                                                       runtime.sandbox.base_env(), "/",
                                                       stdio=(null, null, null))
            finally:
                os.close(null)
            reader = writer = None
            deadline = time.monotonic() + 60  # its Python may take seconds to listen
            while reader is None and time.monotonic() < deadline:
                try:
                    reader, writer = await runtime.open_connection(7777)
                except OSError:
                    await asyncio.sleep(0.05)
            assert reader is not None and writer is not None
            assert (await reader.read()).startswith(b"pong ")
            writer.close()
            with socket.create_server(("127.0.0.1", 0)) as host_side, pytest.raises(OSError):
                await runtime.open_connection(host_side.getsockname()[1])  # not the sprite's
            view = await runtime.view_root()
            assert (view / "home" / "sprite").is_dir()
            assert (view / ".sprite" / "run").is_dir()
            assert not (view / "root").exists()
            assert child.returncode is None
            assert runtime.sessions.list() == [] and runtime.services.list() == []
        finally:
            await runtime.stop_sandbox()
        assert await asyncio.wait_for(child.wait(), 30) < 0
        state.store.close()

    asyncio.run(scenario())


def test_platform_env_reaches_commands(tmp_path: Path, isolation: Isolation) -> None:
    async def scenario() -> None:
        state = _state(tmp_path / "home", isolation)
        runtime = state.runtime("seams")
        runtime.platform_env["EGRESS_MARK"] = "everywhere"
        read, write = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            child, _ = await runtime.sandbox.spawn(
                ["sh", "-c", 'echo "$EGRESS_MARK"; ls /.sprite/run > /dev/null && echo run'],
                "sh", runtime.sandbox.base_env(), "/", stdio=(null, write, write))
            os.close(write)
            assert await child.wait() == 0
            assert os.read(read, 1000) == b"everywhere\nrun\n"
        finally:
            os.close(read)
            os.close(null)
            await runtime.stop_sandbox()
            state.store.close()

    asyncio.run(scenario())


def test_unix_socket_in_the_run_dir_is_reachable_inside(tmp_path: Path,
                                                        isolation: Isolation) -> None:
    async def scenario() -> None:
        state = _state(tmp_path / "home", isolation)
        runtime = state.runtime("seams")
        runtime.files.create_platform()
        path = runtime.files.run_dir / "bridge.sock"
        got: list[bytes] = []

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.append(await reader.read(100))
            writer.close()

        server = await asyncio.start_unix_server(answer, path=str(path))
        runtime.files.expose_socket(path)
        read, write = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            script = ("import socket; s = socket.socket(socket.AF_UNIX); "
                      "s.connect('/.sprite/run/bridge.sock'); s.sendall(b'hello from inside')")
            child, _ = await runtime.sandbox.spawn(["python3", "-c", script], "python3",
                                                   runtime.sandbox.base_env(), "/",
                                                   stdio=(null, write, write))
            os.close(write)
            assert await child.wait() == 0, os.read(read, 4000)
            deadline = time.monotonic() + 60
            while not got and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert got == [b"hello from inside"]
        finally:
            server.close()
            os.close(read)
            os.close(null)
            await runtime.stop_sandbox()
            state.store.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("argv, env", [(["echo", "lone \ud800 surrogate"], {}),
                                       (["echo", "nul \0 byte"], {}),
                                       (["true"], {"A=B": "1"})],
                         ids=["surrogate", "nul", "equals-in-name"])
def test_a_command_that_cannot_reach_the_init_fails_alone(
        tmp_path: Path, isolation: Isolation, argv: list[str], env: dict[str, str]) -> None:
    """What no exec can carry (the API refuses most of it first; a service definition or
    a platform helper may not) is a one-line EINVAL, and the sandbox runs on."""
    async def scenario() -> None:
        state = _state(tmp_path / "home", isolation)
        sandbox = state.runtime("seams").sandbox
        null = os.open(os.devnull, os.O_RDWR)
        try:
            with pytest.raises(SpawnFailed) as failed:
                await sandbox.spawn(argv, argv[0], {**sandbox.base_env(), **env}, "/",
                                    stdio=(null, null, null))
            assert failed.value.errno == errno.EINVAL and "\n" not in str(failed.value)
            child, _ = await sandbox.spawn(["true"], "true", sandbox.base_env(), "/",
                                           stdio=(null, null, null))
            assert await asyncio.wait_for(child.wait(), 30) == 0
        finally:
            os.close(null)
            await sandbox.stop()
            state.store.close()

    asyncio.run(scenario())
