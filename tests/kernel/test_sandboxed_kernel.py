"""A sprite kernel in a real sandbox whose network is denied: ipykernel is installed from
this machine's wheels, then the kernel behaves as a local one does."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from jupyter_client import KernelManager

from sprites_jupyter.client import SpritesClient
from sprites_jupyter.kernel.errors import KernelStartError
from sprites_jupyter.kernel.ipykernel_env import ENV_DIR
from tests.conftest import LocalServer
from tests.kernel.conftest import REPLY_WAIT, RunningKernel, install_spec, use_server


def test_kernel_runs_in_the_sprite_with_state_across_cells(sandboxed_kernel: RunningKernel,
                                                           sandboxed_sprite: str) -> None:
    assert sandboxed_kernel.value("import socket; socket.gethostname()") == \
        repr(sandboxed_sprite)
    sandboxed_kernel.run("answer = 6 * 7")
    assert sandboxed_kernel.value("answer") == "42"
    assert sandboxed_kernel.value("import os; os.getcwd()") == repr("/home/sprite")


def test_ipykernel_came_from_this_machines_wheels_behind_deny_all(
        sandboxed_kernel: RunningKernel, kernel_env: Path) -> None:
    assert sandboxed_kernel.value("import sys; sys.prefix") == repr(ENV_DIR)
    cached = list((kernel_env / "cache" / "sprites-jupyter" / "wheels").glob("*/.complete"))
    assert len(cached) == 1, "the wheels were not fetched on this machine"
    assert list(cached[0].parent.glob("ipykernel-*.whl"))
    denied = sandboxed_kernel.run(
        "import urllib.request\n"
        "try:\n    urllib.request.urlopen('https://pypi.org/simple/', timeout=10)\n"
        "except Exception as error:\n    print('blocked', type(error).__name__)\n")
    assert denied["stdout"].startswith("blocked"), denied


def test_input_reaches_the_kernel_through_stdin(sandboxed_kernel: RunningKernel) -> None:
    client = sandboxed_kernel.client
    prompts: list[str] = []

    def answer(message: dict[str, object]) -> None:
        prompts.append(message["content"]["prompt"])  # type: ignore[index]
        client.input("Ada")

    reply = client.execute_interactive("name = input('who? ')", allow_stdin=True,
                                       stdin_hook=answer, timeout=REPLY_WAIT)
    assert reply["content"]["status"] == "ok"
    assert prompts == ["who? "]
    assert sandboxed_kernel.value("name") == "'Ada'"


def test_an_ipywidgets_comm_opens_and_echoes(sandboxed_kernel: RunningKernel) -> None:
    comm_id = sandboxed_kernel.value(
        "import ipywidgets\nslider = ipywidgets.IntSlider(value=3)\nslider.comm.comm_id")
    comm_id = comm_id.strip("'")
    client = sandboxed_kernel.client
    client.shell_channel.send(client.session.msg("comm_msg", {
        "comm_id": comm_id, "data": {"method": "update", "state": {"value": 7},
                                     "buffer_paths": []}}))
    deadline = time.monotonic() + REPLY_WAIT
    while time.monotonic() < deadline:
        message = client.get_iopub_msg(timeout=REPLY_WAIT)
        content = message["content"]
        if message["msg_type"] == "comm_msg" and content["comm_id"] == comm_id \
                and content["data"].get("method") == "echo_update":
            assert content["data"]["state"] == {"value": 7}
            break
    else:
        pytest.fail("the widget did not echo the update")
    assert sandboxed_kernel.value("slider.value") == "7"


def test_completion_offers_a_name_defined_in_a_cell(sandboxed_kernel: RunningKernel) -> None:
    sandboxed_kernel.run("sprite_specific_total = 3")
    reply = sandboxed_kernel.client.complete("sprite_specific_t", reply=True,
                                             timeout=REPLY_WAIT)
    assert "sprite_specific_total" in reply["content"]["matches"]


def test_interrupt_stops_a_sleep_and_keeps_the_state(sandboxed_kernel: RunningKernel) -> None:
    sandboxed_kernel.run("kept = 'still here'")
    client = sandboxed_kernel.client
    msg_id = client.execute("import time; print('sleeping', flush=True); time.sleep(600)")
    while True:  # interrupt only once the cell's code runs (busy comes before it does)
        message = client.get_iopub_msg(timeout=REPLY_WAIT)
        if (message["msg_type"] == "stream" and "sleeping" in message["content"]["text"]
                and message["parent_header"].get("msg_id") == msg_id):
            break
    sandboxed_kernel.manager.interrupt_kernel()
    reply = client.get_shell_msg(timeout=REPLY_WAIT)  # far sooner than the sleep's 600 s
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    while True:  # as a front end does: the next cell once the kernel is idle again
        status = client.get_iopub_msg(timeout=REPLY_WAIT)
        if (status["msg_type"] == "status" and status["content"]["execution_state"] == "idle"
                and status["parent_header"].get("msg_id") == msg_id):
            break
    assert sandboxed_kernel.value("kept") == "'still here'"


def test_restart_gives_a_fresh_namespace_and_ends_the_old_process(
        sandboxed_kernel: RunningKernel, server: LocalServer, sandboxed_sprite: str) -> None:
    sandboxed_kernel.run("before_restart = 1")
    old_pid = sandboxed_kernel.value("import os; os.getpid()")
    sandboxed_kernel.manager.restart_kernel(now=False)
    sandboxed_kernel.client.wait_for_ready(timeout=REPLY_WAIT)
    assert sandboxed_kernel.value("'before_restart' in dir()") == "False"
    assert sandboxed_kernel.value("import socket; socket.gethostname()") == \
        repr(sandboxed_sprite)
    with SpritesClient(server.token, server.url) as client:
        gone = client.sprite(sandboxed_sprite).run("test", "-e", f"/proc/{old_pid}")
    assert gone.exit_code == 1, f"the old kernel (pid {old_pid}) still runs"


def test_a_kernel_that_dies_is_seen_dead_and_restarts(sandboxed_kernel: RunningKernel) -> None:
    manager = sandboxed_kernel.manager
    sandboxed_kernel.client.execute("import os; os._exit(3)")
    deadline = time.monotonic() + REPLY_WAIT
    while manager.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not manager.is_alive()
    manager.restart_kernel(now=True)  # what Jupyter's restarter does on seeing it dead
    sandboxed_kernel.client.wait_for_ready(timeout=REPLY_WAIT)
    assert sandboxed_kernel.value("1 + 1") == "2"


def test_shutdown_leaves_no_process_in_the_sprite_and_no_forward_here(
        server: LocalServer, sandboxed_sprite: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        use_server(patch, server)
        kernel = RunningKernel("sandboxed")
        try:
            pid = kernel.value("import os; os.getpid()")
            ports = [kernel.manager.shell_port, kernel.manager.iopub_port,
                     kernel.manager.stdin_port, kernel.manager.control_port,
                     kernel.manager.hb_port]
        finally:
            kernel.stop()
    with SpritesClient(server.token, server.url) as client:
        sprite = client.sprite(sandboxed_sprite)
        assert sprite.run("test", "-e", f"/proc/{pid}").exit_code == 1
        assert not [s for s in sprite.list_sessions() if "ipykernel" in s.command]
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_an_interpreter_the_sprite_lacks_fails_in_one_line(
        server: LocalServer, sandboxed_sprite: str, kernel_env: Path) -> None:
    install_spec(kernel_env, "--sprite", sandboxed_sprite, "--python", "/opt/no-such-python",
                 "--name", "missing-python")
    with pytest.MonkeyPatch.context() as patch:
        use_server(patch, server)
        manager = KernelManager(kernel_name="missing-python")
        with pytest.raises(KernelStartError) as failure:
            manager.start_kernel()
    message = str(failure.value)
    assert "has no /opt/no-such-python" in message and "--python" in message
    assert "\n" not in message
