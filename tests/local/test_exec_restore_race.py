"""Exec racing a restore: a command starts on the tree before the restore or after it,
never on a tree half restored (the fs API already waited; exec now does too)."""

from __future__ import annotations

import re
import threading

import httpx

from tests.conftest import LocalServer
from tests.local.sandbox_checks import checkpoint, eventually, restore, sh

FILES = 300
_PROBE = "n=$(ls /home/sprite/many 2>/dev/null | wc -l); test -e marker && m=1 || m=0; echo $n $m"


def test_exec_racing_a_restore_never_sees_a_half_restored_tree(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    assert sh(server, sprite, f"mkdir many && cd many && seq {FILES} | xargs touch")[0] == 0
    full = checkpoint(http, sprite)
    assert sh(server, sprite, "rm -rf many && touch marker")[0] == 0
    emptied = checkpoint(http, sprite)
    seen: list[str] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            try:
                code, out, _ = sh(server, sprite, _PROBE)
            except Exception:  # killed by the restore's stop, or refused meanwhile
                continue
            if code == 0 and re.fullmatch(r"\d+ [01]\n", out):
                seen.append(out.strip())

    probes = [threading.Thread(target=probe) for _ in range(3)]
    for thread in probes:
        thread.start()
    try:
        for target in (full, emptied, full, emptied, full):
            restore(http, sprite, target)
        eventually(lambda: seen, "a probe to run")  # a loaded machine may finish none meanwhile
    finally:
        done.set()
        for thread in probes:
            thread.join(60)
    assert seen, "no probe ran"
    assert set(seen) <= {f"{FILES} 0", "0 1"}, sorted(set(seen))
