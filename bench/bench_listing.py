"""Cost of listing a sprite with many checkpoints, end to end over the real HTTP API.

The checkpoints are written through the server's store (creating thousands through the
API would take minutes); every listing goes through the running server. Each round
times a bare ``httpx.get`` + ``json.loads`` of the listing (the baseline), our client's
``list_checkpoints()``, ``%sprite checkpoints`` in a real IPython shell, and
sprites-py's ``list_checkpoints()`` when it is installed, each going first in turn,
over ``--repeat`` rounds (at least 5); each is printed as its min and median and those
as ratios to the baseline's min and median (per-round ratios swing with the shared
machine's load: one slow baseline sample makes a ratio of 0.3x), then the client's CPU
time per call.
Last, the latency of an unrelated request while listings run, against the same
request on an idle server: the listing must not hold up the server's event loop.

Goal (issue 25): ``%sprite checkpoints`` at 2,000 checkpoints <= 1.2x the bare GET
(median), and no slower than sprites-py's listing.

    python bench/bench_listing.py [--checkpoints 2000] [--repeat 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from bench_common import TOKEN, compare, start_server, timed
from IPython.core.interactiveshell import InteractiveShell

from sprites_jupyter.client import SpritesClient
from sprites_jupyter.local.storage.store import Store
from sprites_jupyter.local.wire import rfc3339

SPRITE = "bench-list"


def _fill(home: Path, count: int) -> None:
    """Give ``SPRITE`` checkpoints ``v1`` … ``v<count-1>`` (a chain, a second apart, each
    with its size of change as the server records it)."""
    store = Store(home / "metadata.sqlite3")
    try:
        with store.transaction() as db:
            manifest, start = db.execute(
                "SELECT manifest, create_time FROM checkpoints WHERE sprite = ? AND id = 'v0'",
                (SPRITE,)).fetchone()
            db.executemany(
                "INSERT INTO checkpoints (sprite, id, create_time, create_time_text, comment,"
                " source_id, is_auto, manifest, changed_bytes) VALUES (?, ?, ?, ?, ?, ?, 0, ?,"
                " ?)",
                ((SPRITE, f"v{n}", when, rfc3339(when), f"checkpoint {n} ✓", f"v{n - 1}",
                  manifest, 4096 * (n % 13)) for n, when in ((n, start + n + 0.123457 * (n % 7))
                                                             for n in range(1, count))))
            db.execute("UPDATE sprites SET next_version = ?, source_id = ? WHERE name = ?",
                       (count, f"v{count - 1}", SPRITE))
    finally:
        store.close()


def _sprites_py(url: str) -> Callable[[], object] | None:
    try:
        import sprites
    except ImportError:
        return None
    return sprites.SpritesClient(TOKEN, base_url=url).sprite(SPRITE).list_checkpoints


def _latency_under_load(http: httpx.Client, url: str, samples: int) -> tuple[float, float]:
    """Median latency of a small GET on an idle server, then while listings run."""
    probe = f"/v1/sprites/{SPRITE}"
    idle = statistics.median(timed(lambda: http.get(probe)) for _ in range(samples))
    stop = threading.Event()

    def list_forever() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=60) as lister:
            while not stop.is_set():
                lister.get(f"/v1/sprites/{SPRITE}/checkpoints").raise_for_status()

    thread = threading.Thread(target=list_forever, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)
        busy = []
        for _ in range(samples):
            busy.append(timed(lambda: http.get(probe)))
            time.sleep(0.005)
        loaded = statistics.median(busy)
    finally:
        stop.set()
        thread.join(60)
    return idle, loaded


def _cpu_per_call(action: Callable[[], object], calls: int) -> float:
    """The least CPU time this process spent on one call of ``action``."""
    spent = []
    for _ in range(calls):
        start = time.process_time()
        action()
        spent.append(time.process_time() - start)
    return min(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    repeat = max(args.repeat, 5)
    with tempfile.TemporaryDirectory() as home:
        process, url = start_server(Path(home))
        try:
            os.environ.update(SPRITES_API_URL=url, SPRITES_TOKEN=TOKEN)
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=60) as http:
                http.post("/v1/sprites", json={"name": SPRITE}).raise_for_status()
                _fill(Path(home), args.checkpoints)
                listing = f"/v1/sprites/{SPRITE}/checkpoints"
                shell = InteractiveShell.instance()
                shell.run_line_magic("load_ext", "sprites_jupyter")
                shell.run_line_magic("sprite", f"use {SPRITE}")
                client = SpritesClient(TOKEN, url)
                handle = client.sprite(SPRITE)
                contenders: dict[str, Callable[[], object]] = {
                    "client list_checkpoints()": handle.list_checkpoints,
                    "%sprite checkpoints": lambda: shell.run_line_magic("sprite", "checkpoints"),
                }
                theirs = _sprites_py(url)
                if theirs is not None:
                    contenders["sprites-py list_checkpoints()"] = theirs

                def bare() -> object:
                    return json.loads(http.get(listing).content)

                assert len(bare()) == args.checkpoints + 1  # with the Current entry
                assert len(shell.run_line_magic("sprite", "checkpoints")) == args.checkpoints
                for action in contenders.values():
                    action()
                bases: list[float] = []
                samples: dict[str, list[float]] = {name: [] for name in contenders}
                order: list[tuple[str, Callable[[], object]]] = [("", bare),
                                                                 *contenders.items()]
                for round_number in range(repeat):  # each goes first in turn
                    shift = round_number % len(order)
                    for name, action in order[shift:] + order[:shift]:
                        (samples[name] if name else bases).append(timed(action))
                print(f"load {os.getloadavg()[0]:.2f}; {args.checkpoints:,} checkpoints")
                goals = {"%sprite checkpoints": 1.2}
                for name, times in samples.items():
                    compare(name, times, bases, most=goals.get(name),
                            names=("ours", "bare GET + json.loads"))
                if theirs is None:
                    print("sprites-py is not installed (pip install -e .[bench]): no comparison")
                else:
                    sdk = samples["sprites-py list_checkpoints()"]
                    compare("%sprite checkpoints vs sprites-py", samples["%sprite checkpoints"],
                            sdk, most=1.0, names=("ours", "sprites-py"))
                    compare("client list_checkpoints() vs sprites-py",
                            samples["client list_checkpoints()"], sdk, most=1.0,
                            names=("ours", "sprites-py"))
                # The client's own share, which the machine's load hardly moves: the
                # CPU time of this process per call (the server's is the same for all).
                cpu = {name: _cpu_per_call(action, repeat)
                       for name, action in {"bare GET + json.loads": bare, **contenders}.items()}
                print("client CPU per call: " + "; ".join(
                    f"{name} {seconds * 1e3:.2f} ms" for name, seconds in cpu.items()))
                idle, loaded = _latency_under_load(http, url, max(repeat, 20))
                print(f"unrelated GET: idle median {idle * 1e3:.2f} ms, while listings run "
                      f"{loaded * 1e3:.2f} ms ({loaded / idle:.2f}x)")
                client.close()
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
