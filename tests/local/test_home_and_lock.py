"""The home directory is private, and one server runs per home."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import start_server


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_home_and_its_files_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    server = start_server(home)
    try:
        with server.http() as http:
            assert http.post("/v1/sprites", json={"name": "private"}).status_code == 201
            assert http.put("/v1/sprites/private/fs/write", content=b"secret",
                            params={"path": "/home/sprite/a"}).status_code == 200
            deadline = time.monotonic() + 60
            while not list((home / "statcache").glob("*.cache")):  # files settle, then cached
                assert time.monotonic() < deadline, "no stat cache was written"
                assert "created" in http.post("/v1/sprites/private/checkpoint",
                                              json={"comment": "a private comment"}).text
                time.sleep(0.5)
        assert _mode(home) == 0o700
        files = [home / name for name in ("metadata.sqlite3", "metadata.sqlite3-wal",
                                          "metadata.sqlite3-shm", "server.json", "serve.lock")]
        files += list((home / "statcache").iterdir())
        assert len(files) > 5
        for path in files:
            assert _mode(path) == 0o600, path
    finally:
        server.stop()


def test_a_second_serve_on_one_home_exits_at_once_naming_the_first(tmp_path: Path) -> None:
    first = start_server(tmp_path / "home")
    try:
        second = subprocess.run(
            [sys.executable, "-m", "sprites_jupyter.local", "serve", "--home",
             str(tmp_path / "home"), "--token", "test-token"],
            capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        message = second.stderr.strip()
        assert "\n" not in message and "already running" in message and first.url in message
        assert second.stdout == ""
        record = (tmp_path / "home" / "server.json").read_text()
        assert str(first.process.pid) in record
        with first.http() as http:
            assert http.get("/v1/sprites").status_code == 200
    finally:
        first.stop()


def test_after_kill_9_the_home_can_be_served_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = start_server(home)
    with first.http() as http:
        assert http.post("/v1/sprites", json={"name": "survivor"}).status_code == 201
    first.stop(kill=True)
    second = start_server(home)
    try:
        answer = httpx.get(f"{second.url}/v1/sprites/survivor", headers=second.headers)
        assert answer.status_code == 200
    finally:
        second.stop()
