"""No thread or socket outlives its call: 500 mixed operations, then back to baseline."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from collections.abc import Callable

import pytest

from sprites_jupyter.client import NotFound, Sprite, SpritesClient
from tests.conftest import LocalServer
from tests.waiting import eventually

TICKER = "import time\nfor i in range(100000):\n    print('tick', i, flush=True); time.sleep(0.2)"


def _open_sockets() -> int:
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def _settled(measure: Callable[[], int], limit: int) -> int:
    """Poll until ``measure() <= limit`` (closing handshakes finish on other threads); the
    last value if it never gets there (the caller's assertion then shows it)."""
    deadline = time.monotonic() + 30
    while True:
        gc.collect()
        value = measure()
        if value <= limit or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count sockets")
def test_500_mixed_operations_leave_no_threads_or_sockets(server: LocalServer,
                                                          sprite: str) -> None:
    client = SpritesClient(server.token, server.url)
    sp: Sprite = client.sprite(sprite)
    list(sp.create_service("ticker", "python3", ["-c", TICKER], duration=0))

    def read_logs_partway() -> None:
        with sp.service_logs("ticker", lines=1, follow=30) as events:
            next(events)

    def stream_command() -> None:
        with sp.command("sh", "-c", "echo a; echo b >&2") as cmd:
            assert len(list(cmd)) == 2

    def abandon_command() -> None:
        cmd = sp.command("sleep", "30")
        cmd.close()

    def missing() -> None:
        try:
            client.get_sprite("no-such-sprite-here")
        except NotFound:
            return
        raise AssertionError("expected NotFound")

    operations: list[Callable[[], object]] = [
        lambda: client.get_sprite(sprite),
        lambda: sp.write_file("leak.txt", b"x" * 1000),
        lambda: sp.read_file("leak.txt"),
        sp.list_dir,
        lambda: sp.run("true"),
        stream_command,
        read_logs_partway,
        lambda: list(sp.service_logs("ticker", lines=3)),
        sp.list_checkpoints,
        missing,
    ]
    for operation in [*operations, abandon_command]:
        operation()
    baseline_threads = _settled(threading.active_count, threading.active_count())
    baseline_sockets = _settled(_open_sockets, _open_sockets())

    for index in range(500):
        operations[index % len(operations)]()
    abandon_command()

    assert _settled(threading.active_count, baseline_threads) == baseline_threads, [
        t.name for t in threading.enumerate()]
    assert _settled(_open_sockets, baseline_sockets) <= baseline_sockets
    eventually(lambda: sp.list_sessions() == [], "the abandoned command's session to end")
    list(sp.stop_service("ticker", timeout=5))
    client.close()
    assert _settled(_open_sockets, baseline_sockets - 1) < baseline_sockets
