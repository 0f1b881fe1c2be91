"""A sprite kernel in a real sandbox whose network is denied: ipykernel is installed from
this machine's wheels, then the kernel behaves as a local one does."""

from __future__ import annotations

from tests.kernel.conftest import RunningKernel


def test_kernel_runs_in_the_sprite_with_state_across_cells(sandboxed_kernel: RunningKernel,
                                                           sandboxed_sprite: str) -> None:
    assert sandboxed_kernel.value("import socket; socket.gethostname()") == \
        repr(sandboxed_sprite)
    sandboxed_kernel.run("answer = 6 * 7")
    assert sandboxed_kernel.value("answer") == "42"
    assert sandboxed_kernel.value("import os; os.getcwd()") == repr("/home/sprite")
