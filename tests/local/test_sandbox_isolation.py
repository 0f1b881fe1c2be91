"""``sprites-local serve --isolation auto|sandbox|none`` where sandboxes can and cannot be made.

A host without user namespaces is made for real: the server runs in a user namespace
of the test's own (``unshare``) whose limit of nested user namespaces is set to 0, so
bubblewrap's probe fails there as it would on such a host.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from sprites_jupyter.local.testing import READY_PREFIX, LocalServer, launch
from tests.local.sandbox_checks import sh

NO_USERNS = ["unshare", "--user", "--map-root-user", "sh", "-c",
             'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh"]


def _serve(home: Path, *args: str, prefix: list[str] | None = None
           ) -> tuple[subprocess.Popen[str], str]:
    """Start a server; the process and its first stdout line (the ready line, or EOF)."""
    process = launch(home, "t", args=args, prefix=prefix or (), stderr=subprocess.PIPE)
    assert process.stdout is not None
    return process, process.stdout.readline()


@pytest.fixture
def no_userns() -> list[str]:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to make a host without user namespaces")
    probe = subprocess.run([*NO_USERNS, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a user namespace to disable nested ones: {probe.stderr}")
    return NO_USERNS


@pytest.fixture
def stopping() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def test_isolation_sandbox_fails_loudly_without_namespaces(tmp_path: Path,
                                                          no_userns: list[str]) -> None:
    process, line = _serve(tmp_path / "home", "--isolation", "sandbox", prefix=no_userns)
    assert line == ""
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert err.startswith("sprites-local: --isolation sandbox: bwrap cannot make a sandbox")
    assert len(err.strip().splitlines()) == 1


def test_auto_falls_back_with_one_warning(tmp_path: Path, no_userns: list[str],
                                         stopping: list[subprocess.Popen[str]],
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    process, line = _serve(tmp_path / "home", prefix=no_userns)
    stopping.append(process)
    assert line.startswith(READY_PREFIX)
    local = LocalServer(url=line[len(READY_PREFIX):].strip(), token="t",
                        home=tmp_path / "home", process=process)
    with local.http() as http:
        isolation = http.head("/v1/sprites").headers["sprite-local-isolation"]
        assert isolation.startswith("unsandboxed: bwrap cannot make a sandbox")
        assert http.post("/v1/sprites", json={"name": "plain"}).status_code == 201
        tree = (tmp_path / "home" / "sprites" / "plain" / "root").resolve()
        assert sh(local, "plain", "pwd")[1] == f"{tree}/home/sprite\n"

    monkeypatch.setenv("SPRITES_API_URL", local.url)
    monkeypatch.setenv("SPRITES_TOKEN", "t")
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "sprites_jupyter")
    try:
        capsys.readouterr()
        assert shell.run_cell("%sprite").success
        assert f"Backend: local server ({isolation}) at {local.url}" in capsys.readouterr().out
    finally:
        shell.run_line_magic("unload_ext", "sprites_jupyter")

    process.terminate()
    _, err = process.communicate(timeout=30)
    warnings = [row for row in err.splitlines() if "warning" in row]
    assert len(warnings) == 1 and "UNSANDBOXED" in warnings[0]


def test_isolation_none_runs_sprites_in_directories(tmp_path: Path,
                                                   stopping: list[subprocess.Popen[str]]
                                                   ) -> None:
    process, line = _serve(tmp_path / "home", "--isolation", "none")
    stopping.append(process)
    local = LocalServer(url=line[len(READY_PREFIX):].strip(), token="t",
                        home=tmp_path / "home", process=process)
    with local.http() as http:
        assert http.head("/v1/sprites").headers["sprite-local-isolation"] == (
            "unsandboxed: --isolation none")
        assert http.post("/v1/sprites", json={"name": "dir"}).status_code == 201
        tree = (tmp_path / "home" / "sprites" / "dir" / "root").resolve()
        assert sh(local, "dir", "pwd", dir="/tmp")[1] == f"{tree}/tmp\n"
        assert sh(local, "dir", "grep -c . /.sprite/services 2>/dev/null; true")[1] == ""
