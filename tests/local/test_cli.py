"""``sprites-local serve`` as a user types it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

READY = "Sprites local server listening on http://127.0.0.1:"


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    exe = shutil.which("sprites-local")
    assert exe, "the sprites-local console script is installed with the package"
    return subprocess.Popen([exe, "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def test_serve_prints_ready_line_and_generates_a_private_token(tmp_path: Path) -> None:
    home = tmp_path / "home"
    process = _serve("--home", str(home), env={"SPRITES_LOCAL_TOKEN": ""})
    try:
        line = process.stdout.readline()
        assert line.startswith(READY)
        url = line.split(" on ")[1].strip()
        token_file = home / "token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert json.loads((home / "server.json").read_text()) == {"pid": process.pid, "url": url}
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/v1/sprites", headers=headers).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert not (home / "server.json").exists()


def test_token_from_environment_wins_over_the_file(tmp_path: Path) -> None:
    process = _serve("--home", str(tmp_path), env={"SPRITES_LOCAL_TOKEN": "from-env"})
    try:
        url = process.stdout.readline().split(" on ")[1].strip()
        ok = httpx.get(f"{url}/v1/sprites", headers={"Authorization": "Bearer from-env"})
        assert ok.status_code == 200
        assert not (tmp_path / "token").exists()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_home_from_environment(tmp_path: Path) -> None:
    process = _serve("--token", "t", env={"SPRITES_LOCAL_HOME": str(tmp_path / "h")})
    try:
        assert process.stdout.readline().startswith(READY)
        assert (tmp_path / "h" / "metadata.sqlite3").exists()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _serve("--home", str(tmp_path), "--token", "t", "--port", str(port))
        _, err = process.communicate(timeout=30)
    assert process.returncode != 0
    assert err.strip().count("\n") == 0
    assert f"cannot listen on 127.0.0.1:{port}" in err


@pytest.mark.parametrize("argv", [["serve", "--port", "x"], ["bogus"]])
def test_bad_arguments_are_usage_errors(argv: list[str]) -> None:
    result = subprocess.run(["sprites-local", *argv], capture_output=True, text=True)
    assert result.returncode == 2
    assert "usage: sprites-local" in result.stderr
