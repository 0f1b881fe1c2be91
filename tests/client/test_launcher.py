"""Finding or starting the local server for a home directory, and client_from_env."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprites_jupyter.backend import client_from_env
from sprites_jupyter.client import SpritesClient, SpritesError
from sprites_jupyter.local import launcher
from sprites_jupyter.local.storage.home import read_server_file, resolve_token


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for process in launcher._started:
        if process.pid == pid:
            process.wait(timeout=30)
            return
    for _ in range(600):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty home; whatever server ends up recorded in it is stopped afterwards."""
    monkeypatch.delenv("SPRITES_LOCAL_TOKEN", raising=False)
    path = tmp_path / "home"
    yield path
    record = read_server_file(path)
    if record and isinstance(record.get("pid"), int):
        _stop(record["pid"])


def test_starts_a_server_then_finds_it(home: Path) -> None:
    first = launcher.ensure_server(home)
    assert first.token == resolve_token(home) and first.token not in repr(first)
    assert read_server_file(home) == {"pid": first.pid, "url": first.url}
    assert (home / launcher.LOG_FILE).exists()
    again = launcher.ensure_server(home)
    assert (again.pid, again.url) == (first.pid, first.url)
    with SpritesClient(first.token, first.url) as client:
        assert client.list_sprites() == []


def test_two_kernels_racing_share_one_server(home: Path) -> None:
    script = ("import sys; from pathlib import Path; from sprites_jupyter.local.launcher import "
              "ensure_server; print(ensure_server(Path(sys.argv[1])).pid)")
    racers = [subprocess.Popen([sys.executable, "-c", script, str(home)],
                               stdout=subprocess.PIPE, text=True) for _ in range(3)]
    pids = {racer.communicate(timeout=120)[0].strip() for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    assert len(pids) == 1 and pids == {str(read_server_file(home)["pid"])}


def test_a_stale_record_is_replaced(home: Path) -> None:
    home.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (home / "server.json").write_text(json.dumps({"pid": dead.pid, "url": "http://127.0.0.1:9"}))
    started = launcher.ensure_server(home)
    assert started.pid != dead.pid and read_server_file(home)["pid"] == started.pid


def test_a_server_that_cannot_start_says_where_its_log_is(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher.sys, "executable", "/bin/false")
    with pytest.raises(launcher.LaunchError, match=r"server\.log"):
        launcher.ensure_server(home)


def test_from_env_without_a_token_uses_the_local_server(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPRITES_TOKEN", "SPRITE_TOKEN", "SPRITES_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPRITES_LOCAL_HOME", str(home))
    with client_from_env() as client:
        assert client.is_local and client.base_url == read_server_file(home)["url"]
        assert client.list_sprites() == []


def test_from_env_reads_the_token_and_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPRITES_TOKEN", raising=False)
    monkeypatch.setenv("SPRITE_TOKEN", "tok-123")
    monkeypatch.delenv("SPRITES_API_URL", raising=False)
    with client_from_env() as client:
        assert client.base_url == "https://api.sprites.dev" and not client.is_local
        assert "tok-123" not in repr(client)
    monkeypatch.setenv("SPRITES_API_URL", "https://example.test/")
    with client_from_env() as client:
        assert client.base_url == "https://example.test"
    monkeypatch.delenv("SPRITE_TOKEN")
    with pytest.raises(SpritesError, match="SPRITES_TOKEN"):
        client_from_env()
