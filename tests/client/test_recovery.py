"""The auto-started local server dies (kill -9): the client finds or starts it again; and
connection errors name only the settings that are set."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprites_jupyter.backend import client_from_env
from sprites_jupyter.client import ConnectionFailed, SpritesClient
from sprites_jupyter.local import launcher
from sprites_jupyter.local.storage.home import read_server_file


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for process in launcher._started:
            if process.pid == pid:
                process.poll()
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rpartition(")")[2].split()[0] == "Z":
                return
        time.sleep(0.05)
    raise AssertionError(f"server {pid} did not die")


def _kill_9(home: Path) -> int:
    pid = read_server_file(home)["pid"]
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)
    return pid


@pytest.fixture
def local_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No token and no URL: the client uses (and starts) the server of this home."""
    for name in ("SPRITES_TOKEN", "SPRITE_TOKEN", "SPRITES_API_URL", "SPRITES_LOCAL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("SPRITES_LOCAL_HOME", str(home))
    yield home
    record = read_server_file(home)
    if record:
        with pytest.raises(ProcessLookupError):
            while True:
                os.kill(record["pid"], signal.SIGTERM)
                _wait_gone(record["pid"])


def test_after_kill_9_every_kind_of_call_finds_or_starts_the_server_again(
        local_home: Path) -> None:
    with client_from_env() as client:
        client.create_sprite("keep")
        before = client.base_url
        dead = _kill_9(local_home)
        assert [s.name for s in client.list_sprites()] == ["keep"]  # GET
        assert read_server_file(local_home)["pid"] != dead
        _kill_9(local_home)
        assert client.sprite("keep").run("echo", "back").stdout == "back\n"  # WebSocket
        _kill_9(local_home)
        client.create_sprite("second")  # POST: refused before anything was sent
        assert {s.name for s in client.list_sprites()} == {"keep", "second"}
        assert client.base_url != before and client.is_local


def test_the_launcher_keeps_the_token_off_the_command_line(local_home: Path) -> None:
    with client_from_env() as client:
        client.list_sprites()
        token = client._http.auth_headers["Authorization"].removeprefix("Bearer ")
    pid = read_server_file(local_home)["pid"]
    command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert token.encode() not in command_line and b"--token" not in command_line


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_refused_messages_name_only_settings_that_are_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{_dead_port()}"
    with SpritesClient("a-test-token-xyz", url) as client, \
            pytest.raises(ConnectionFailed) as caught:
        client.list_sprites()
    assert "sprites-local serve" in str(caught.value)
    assert "SPRITES_API_URL" not in str(caught.value)
    monkeypatch.setenv("SPRITES_TOKEN", "a-test-token-xyz")
    monkeypatch.setenv("SPRITES_API_URL", url)
    with client_from_env() as client, pytest.raises(ConnectionFailed) as caught:
        client.sprite("s").run("true")
    assert f"SPRITES_API_URL is {url}" in str(caught.value)
    assert "\n" not in str(caught.value)
