"""What makes a sandbox start early and cheap, on a real server state and real sandboxes:
a start changes nothing in a freshly seeded tree (so a new sprite's base snapshot may
read it meanwhile), and the spares a start used are made again once its first command
has ended, not while it runs."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from sprites_jupyter.local.runtime.sandbox.bwrap import SandboxUnavailable, detect
from sprites_jupyter.local.runtime.sandbox.machine import Isolation
from sprites_jupyter.local.runtime.sandbox.refills import REFILL_GRACE
from sprites_jupyter.local.state import ServerState
from sprites_jupyter.local.storage.layer_reader import LayerReader
from sprites_jupyter.local.storage.layer_walk import walk_layer


@pytest.fixture
def isolation() -> Isolation:
    try:
        return Isolation(detect())
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox on this host ({exc})")


def _layer(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """What a snapshot reads of each entry (and its owner)."""
    with LayerReader(os.fspath(root)) as tree:
        return {path: (info.st_mode, info.st_mtime_ns, info.st_size, info.st_uid)
                for path, info in walk_layer(tree)}


def test_a_start_changes_nothing_in_a_seeded_tree(tmp_path: Path, isolation: Isolation) -> None:
    async def scenario() -> None:
        state = ServerState(tmp_path / "home", "token", isolation)
        root = state.seed_tree("fresh")
        seeded = _layer(root)
        assert {"proc", "dev", "run"} <= set(seeded)  # the mount points, made by the seed
        runtime = state.runtime("fresh")
        try:
            await runtime.sandbox.start()
            assert _layer(root) == seeded
        finally:
            await runtime.stop_sandbox()
        assert _layer(root) == seeded
        state.store.close()

    asyncio.run(scenario())


def test_spares_are_made_again_once_the_first_command_ended(tmp_path: Path,
                                                            isolation: Isolation) -> None:
    made: list[float] = []

    async def scenario() -> None:
        state = ServerState(tmp_path / "home", "token", isolation)
        state.seed_tree("spares")
        sandbox = state.runtime("spares").sandbox
        sandbox.started_hooks.append(lambda: made.append(time.monotonic()))
        stdin_r, stdin_w = os.pipe()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            await sandbox.start()
            started = time.monotonic()
            child, _ = await sandbox.spawn(["cat"], "cat", sandbox.base_env(), "/",
                                           stdio=(stdin_r, null, null))
            os.close(stdin_r)
            await asyncio.sleep(0.05)
            if time.monotonic() - started < REFILL_GRACE:  # else the timer made them
                assert made == [], "made while the first command still ran"
            os.close(stdin_w)
            assert await asyncio.wait_for(child.wait(), 30) == 0
            assert len(made) == 1  # by its end at the latest, and only once
        finally:
            os.close(null)
            await state.runtime("spares").stop_sandbox()
            state.store.close()

    asyncio.run(scenario())
    assert len(made) == 1


def _waiting_inits() -> set[int]:
    """This process's children that are a bubblewrap still waiting for its arguments
    (``--args``): no process of theirs yet (a running one has its sandbox's init)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().split(b"\0")
            children = (entry / "task" / entry.name / "children").read_text()
        except OSError:
            continue
        if int(stat_fields[1]) == os.getpid() and b"--args" in command and not children.strip():
            found.add(int(entry.name))
    return found


def test_a_sandbox_held_stopped_launches_its_next_init_which_runs_nothing_until_started(
        tmp_path: Path, isolation: Isolation) -> None:
    async def scenario() -> None:
        state = ServerState(tmp_path / "home", "token", isolation)
        state.seed_tree("held")
        runtime = state.runtime("held")
        sandbox = runtime.sandbox
        null = os.open(os.devnull, os.O_RDWR)
        try:
            await sandbox.start()
            async with sandbox.stopped():
                assert len(_waiting_inits()) == 1
                assert not sandbox.running
            child, _ = await sandbox.spawn(["true"], "true", sandbox.base_env(), "/",
                                           stdio=(null, null, null))
            assert await asyncio.wait_for(child.wait(), 30) == 0
            assert _waiting_inits() == set()  # it was the one that started
            async with sandbox.stopped():
                assert len(_waiting_inits()) == 1
            await sandbox.stop()  # never started: it ends with the stop
            assert _waiting_inits() == set()
        finally:
            os.close(null)
            await runtime.stop_sandbox()
            state.store.close()

    asyncio.run(scenario())
