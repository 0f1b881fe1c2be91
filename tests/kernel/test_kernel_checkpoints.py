"""``%sprite checkpoint|checkpoints|restore`` inside a sprite kernel: the requests go to
the provisioner, which acts on that kernel's own sprite only, with a token the sprite
never sees; a restore's cell ends with one line, and the provisioner brings the kernel
back on the restored sprite by itself. The server runs unsandboxed so the kernel can
import this checkout."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sprites_jupyter.client import SpritesClient
from tests.conftest import LocalServer
from tests.kernel.conftest import RunningKernel, install_spec, use_server
from tests.kernel.cutting_proxy import CuttingProxy

CHECKOUT = str(Path(__file__).resolve().parents[2])
DEATH_WAIT = 60.0
NOTICE = "this kernel stops in a moment and comes back on the restored sprite"
RETRY_WAIT = 10.0


@pytest.fixture
def own_sprite(unsandboxed_server: LocalServer, kernel_env: Path) -> Iterator[str]:
    name = f"k-{uuid.uuid4().hex[:8]}"
    with SpritesClient(unsandboxed_server.token, unsandboxed_server.url) as client:
        client.create_sprite(name)
        install_spec(kernel_env, "--sprite", name, "--python", sys.executable,
                     "--name", f"own-{name}")
        yield name
        client.delete_sprite(name)


@pytest.fixture
def magics_kernel(unsandboxed_server: LocalServer, own_sprite: str) -> Iterator[RunningKernel]:
    """The sprite kernel with ``%load_ext sprites_jupyter`` (this checkout's, put first
    on the kernel's path: an unsandboxed sprite shares this machine's files)."""
    with pytest.MonkeyPatch.context() as patch:
        use_server(patch, unsandboxed_server)
        kernel = RunningKernel(f"own-{own_sprite}")
        try:
            load_extension(kernel)
            yield kernel
        finally:
            kernel.stop()


def load_extension(kernel: RunningKernel) -> None:
    kernel.run(f"import sys; sys.path.insert(0, {CHECKOUT!r})\n%load_ext sprites_jupyter\n"
               "%config SpriteMagics.widgets = 'off'")


def test_checkpoints_from_inside_act_on_the_kernels_own_sprite(
        magics_kernel: RunningKernel, own_sprite: str, unsandboxed_server: LocalServer) -> None:
    assert magics_kernel.value("import os; [k for k in os.environ if 'TOKEN' in k]") == "[]"
    assert f"Sprite: {own_sprite} (" in magics_kernel.run("%sprite")["stdout"]  # its own
    taken = magics_kernel.run("cp = %sprite checkpoint -m 'from the kernel'\nprint(cp.id)")
    checkpoint_id = taken["stdout"].strip().splitlines()[-1]
    with SpritesClient(unsandboxed_server.token, unsandboxed_server.url) as client:
        listed = client.sprite(own_sprite).list_checkpoints()
    assert (checkpoint_id, "from the kernel") in [(c.id, c.comment) for c in listed]
    assert checkpoint_id in magics_kernel.run("%sprite checkpoints")["result"]


def test_another_sprite_is_refused_in_one_line(magics_kernel: RunningKernel,
                                               unsandboxed_server: LocalServer) -> None:
    other = f"k-{uuid.uuid4().hex[:8]}"
    with SpritesClient(unsandboxed_server.token, unsandboxed_server.url) as client:
        client.create_sprite(other)
        try:
            refused = magics_kernel.run(f"%sprite checkpoint -s {other} -m intruder",
                                        allow_error=True)
            comments = [c.comment for c in client.sprite(other).list_checkpoints()]
        finally:
            client.delete_sprite(other)
    assert "intruder" not in comments
    assert refused["status"] == "error"
    assert "refused" in refused["error"], refused
    assert refused["error"].strip().count("\n") == 0, refused


def test_restore_from_inside_brings_the_kernel_back_on_the_restored_sprite(
        magics_kernel: RunningKernel) -> None:
    magics_kernel.run("open('marker.txt', 'w').write('before')")
    taken = magics_kernel.run("cp = %sprite checkpoint -m base\nprint(cp.id)")
    checkpoint_id = taken["stdout"].strip().splitlines()[-1]
    magics_kernel.run("open('marker.txt', 'w').write('after'); doomed = 1")

    questions: list[str] = []

    def decline(message: dict[str, object]) -> None:
        questions.append(message["content"]["prompt"])  # type: ignore[index]
        magics_kernel.client.input("n")

    declined = magics_kernel.client.execute_interactive(
        f"%sprite restore {checkpoint_id}", allow_stdin=True, stdin_hook=decline,
        timeout=DEATH_WAIT, output_hook=lambda message: None)
    assert declined["content"]["status"] == "error"
    assert len(questions) == 1 and questions[0].startswith(f"Restore {checkpoint_id}")
    assert magics_kernel.value("doomed") == "1"

    restoring = magics_kernel.run(f"%sprite restore {checkpoint_id} --yes")
    notices = [line for line in restoring["stdout"].splitlines() if NOTICE in line]
    assert len(notices) == 1, restoring

    # no restart asked for: the provisioner starts the kernel again, same ports, same key
    deadline = time.monotonic() + DEATH_WAIT
    while until_answered(magics_kernel, "'doomed' in dir()")["result"] != "False":
        assert time.monotonic() < deadline, "the kernel was not replaced after the restore"
        time.sleep(0.5)
    assert magics_kernel.value("open('marker.txt').read()") == "'before'"
    assert magics_kernel.manager.is_alive()
    load_extension(magics_kernel)  # and the channel serves the new kernel
    assert checkpoint_id in until_answered(magics_kernel, "%sprite checkpoints")["result"]


def test_other_operations_on_its_own_sprite_are_refused(
        magics_kernel: RunningKernel, own_sprite: str, unsandboxed_server: LocalServer) -> None:
    with SpritesClient(unsandboxed_server.token, unsandboxed_server.url) as client:
        before = client.sprite(own_sprite).get_network_policy()
        refused = magics_kernel.run("%sprite policy allow example.com", allow_error=True)
        assert client.sprite(own_sprite).get_network_policy() == before
    assert refused["status"] == "error" and "refused" in refused["error"], refused


def test_the_channel_turns_away_a_process_without_the_key(magics_kernel: RunningKernel) -> None:
    magics_kernel.run(
        "import json, os, socket\n"
        "def ask(key):\n"
        "    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "    probe.connect('\\0' + os.environ['SPRITES_KERNEL_RELAY'])\n"
        "    path = f\"/v1/sprites/{os.environ['SPRITES_KERNEL_SPRITE']}/checkpoints\"\n"
        "    probe.sendall(json.dumps({'method': 'GET', 'path': path, 'key': key}).encode()"
        " + b'\\n')\n"
        "    with probe, probe.makefile() as answer:\n"
        "        return json.loads(answer.readline())['status']\n")
    assert magics_kernel.value("ask('a guess')") == "403"
    assert magics_kernel.value("ask(os.environ['SPRITES_KERNEL_RELAY_KEY'])") == "200"


def test_fault_proxy_a_dropped_connection_is_reattached_and_the_kernel_carries_on(
        unsandboxed_server: LocalServer, own_sprite: str) -> None:
    """Every connection to the API drops at once (the proxy cuts them): the provisioner
    re-attaches to the kernel's session, ZMQ reconnects through new tunnels, and the
    checkpoint channel reopens; the kernel and its state are untouched."""
    host, port = unsandboxed_server.url.removeprefix("http://").split(":")
    proxy = CuttingProxy((host, int(port)))
    try:
        with pytest.MonkeyPatch.context() as patch:
            use_server(patch, unsandboxed_server)
            patch.setenv("SPRITES_API_URL", proxy.url)
            kernel = RunningKernel(f"own-{own_sprite}")
        try:
            load_extension(kernel)
            kernel.run("kept = 5")
            assert proxy.cut() > 0
            assert until_answered(kernel, "kept")["result"] == "5"
            time.sleep(1.0)  # long enough for a lost watcher to report the kernel dead
            assert kernel.manager.is_alive()
            # the old end of the channel holds its address for a while
            assert until_answered(kernel, "%sprite checkpoints")["status"] == "ok"
        finally:
            kernel.stop()
    finally:
        proxy.close()


def until_answered(kernel: RunningKernel, code: str) -> dict[str, Any]:
    """Run ``code`` until it succeeds: output published while the iopub socket was
    reconnecting is lost, as ZMQ's publish/subscribe does, so a first try can go
    unanswered (a user would run the cell again)."""
    deadline = time.monotonic() + DEATH_WAIT
    while True:
        try:
            outcome = kernel.run(code, allow_error=True, timeout=RETRY_WAIT)
        except TimeoutError:
            outcome = {"status": "unanswered"}
        if outcome["status"] == "ok" or time.monotonic() > deadline:
            return outcome
        time.sleep(1.0)
