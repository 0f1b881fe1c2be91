"""The filesystem API against the sandbox's own mounts: refused as read-only, never
undone from the host's side (where a rename or unlink would detach them in the sprite).
On a root server and on an ordinary user's (``test_sandbox_unprivileged``'s fixtures)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LocalServer
from tests.local.sandbox_checks import sh
from tests.local.sprite_procs import fresh_sandboxed_sprite

_MOUNTED = ["/etc/passwd", "/etc/hosts", "/.sprite", "/usr", "/proc"]


@pytest.fixture(params=["as-root", "as-user"])
def mode(request: pytest.FixtureRequest) -> Iterator[tuple[LocalServer, httpx.Client, str]]:
    """A fresh sandboxed sprite on the session's server or on an ordinary user's."""
    running = request.getfixturevalue("server" if request.param == "as-root" else "local")
    with fresh_sandboxed_sprite(running, "m") as made:
        yield made


def _fs(sprite: str, op: str) -> str:
    return f"/v1/sprites/{sprite}/fs/{op}"


def _inside(server: LocalServer, sprite: str) -> tuple[int, str, str]:
    """What the sprite sees of its mounts: the generated passwd, /.sprite read-only."""
    return sh(server, sprite, "head -c 200 /etc/passwd | grep -c '^sprite:'; "
                              "touch /.sprite/x 2>/dev/null || echo read-only; "
                              "ls -d /.sprite/services /usr/bin /proc/self")


def _read_only(response: httpx.Response, path: str) -> None:
    assert response.status_code == 403, (path, response.status_code, response.text)
    body = response.json()
    assert body["path"] == path and "read-only" in body["error"], body


@pytest.mark.parametrize("path", _MOUNTED)
def test_write_delete_and_rename_of_a_mount_point_are_refused(
        mode: tuple[LocalServer, httpx.Client, str], path: str) -> None:
    server, http, sprite = mode
    before = _inside(server, sprite)
    assert before[0] == 0 and before[1].startswith("1\nread-only\n"), before
    if path not in ("/.sprite", "/usr", "/proc"):
        _read_only(http.put(_fs(sprite, "write"), params={"path": path}, content=b"x"), path)
    _read_only(http.delete(_fs(sprite, "delete"), params={"path": path, "recursive": "true"}),
               path)
    _read_only(http.post(_fs(sprite, "rename"), json={"source": path, "dest": "/moved"}), path)
    assert http.post(_fs(sprite, "rename"), json={"source": "/tmp", "dest": "/tmp2"}
                     ).status_code == 200
    assert http.put(_fs(sprite, "write"), params={"path": "/tmp2/empty/keep"},
                    content=b"").status_code == 200
    assert http.delete(_fs(sprite, "delete"), params={"path": "/tmp2/empty/keep"}
                       ).status_code == 200
    _read_only(http.post(_fs(sprite, "rename"), json={"source": "/tmp2/empty", "dest": path}),
               path)
    assert _inside(server, sprite) == before


def test_the_masked_shadow_file_stays_masked(
        mode: tuple[LocalServer, httpx.Client, str]) -> None:
    server, http, sprite = mode
    if sh(server, sprite, "test -e /etc/shadow")[0] != 0:
        pytest.skip("the host has no /etc/shadow to mask")
    _read_only(http.put(_fs(sprite, "write"), params={"path": "/etc/shadow"}, content=b"x"),
               "/etc/shadow")
    _read_only(http.post(_fs(sprite, "rename"), json={"source": "/etc/shadow",
                                                      "dest": "/etc/shadow.old"}),
               "/etc/shadow")
    _read_only(http.delete(_fs(sprite, "delete"), params={"path": "/etc/shadow"}),
               "/etc/shadow")
    assert sh(server, sprite, "wc -c < /etc/shadow; test -e /etc/shadow.old || echo none") == (
        0, "0\nnone\n", "")


def test_recursive_delete_stops_at_a_mount_point_inside(
        mode: tuple[LocalServer, httpx.Client, str]) -> None:
    server, http, sprite = mode
    response = http.delete(_fs(sprite, "delete"), params={"path": "/etc", "recursive": "true"})
    assert 400 <= response.status_code < 500, response.text
    assert sh(server, sprite, "grep -c '^sprite:' /etc/passwd")[1] == "1\n"
