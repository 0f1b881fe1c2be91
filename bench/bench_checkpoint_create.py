"""``create_checkpoint()`` on a sprite with thousands of checkpoints, against a raw POST.

The sprite gets ``--checkpoints`` checkpoints through the server's store (as in
``bench_listing.py``); then, interleaved ``--repeat`` times (at least 5), a bare
``httpx`` POST of ``/checkpoint`` read to its ``complete`` line (the baseline) and our
client's ``create_checkpoint().wait()``, which returns the new checkpoint: it must
neither list every checkpoint to find it nor fetch it when the ``complete`` event
carries it (this server's does). Goal (issue 25): <= 1.2x the raw POST (median).

    python bench/bench_checkpoint_create.py [--checkpoints 2000] [--repeat 9]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import httpx
from bench_common import TOKEN, compare, start_server, timed
from bench_listing import SPRITE, _cpu_per_call, _fill

from sprites_jupyter.client import SpritesClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        process, url = start_server(Path(home))
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=60) as http, SpritesClient(TOKEN, url) as client:
                http.post("/v1/sprites", json={"name": SPRITE}).raise_for_status()
                _fill(Path(home), args.checkpoints)
                handle = client.sprite(SPRITE)

                def raw() -> None:
                    with http.stream("POST", f"/v1/sprites/{SPRITE}/checkpoint",
                                     json={}) as response:
                        lines = [line for line in response.iter_lines() if line]
                    assert '"complete"' in lines[-1], lines[-1]

                raw()
                handle.create_checkpoint().wait()
                def ours() -> None:
                    handle.create_checkpoint().wait()

                pairs = []
                for round_number in range(max(args.repeat, 5)):  # each goes first in turn
                    if round_number % 2:
                        base = timed(raw)
                        pairs.append((timed(ours), base))
                    else:
                        pairs.append((timed(ours), timed(raw)))
                print(f"load {os.getloadavg()[0]:.2f}; {args.checkpoints:,} checkpoints")
                compare("create_checkpoint().wait()", [a for a, _ in pairs],
                        [b for _, b in pairs], most=1.2, names=("ours", "raw POST"))
                ours_cpu = _cpu_per_call(ours, args.repeat)
                print(f"client CPU per call: raw POST {_cpu_per_call(raw, args.repeat) * 1e3:.2f}"
                      f" ms; create_checkpoint().wait() {ours_cpu * 1e3:.2f} ms")
        finally:
            process.terminate()
            process.wait(60)


if __name__ == "__main__":
    main()
