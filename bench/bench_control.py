"""Exec round trip over an open control connection vs a fresh exec WebSocket, one server.

    python bench/bench_control.py [--samples 30]

Runs ``true`` in one sprite, interleaving three ways per sample:
  1. control: ``op.start`` on a control socket opened once (sprites-go's framing: exit
     frame, ``op.complete``, then ``release``), to the exit code
  2. fresh socket: open ``/exec?cmd=true``, read to the exit frame, close (what the
     direct endpoints cost per command)
  3. our client: ``Sprite.run("true")``, which runs over the client's pooled control
     connection (its first command, before timing, took a direct socket and learned
     that the server offers control)
Prints min and median of each, and the ratios control / fresh socket and control / our
client (below 1: the control connection is faster). Then the server's own CPU time per
command over control (user + system of its process, the sandbox's init not included):
a figure that load on the machine barely moves, unlike the wall times.
``bench/compare_revisions.py`` with an older revision shows our client's figure before
it used the control connection.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import httpx
from bench_common import TOKEN, compare, start_server, summary, timed
from websockets.sync.client import ClientConnection, connect

from sprites_jupyter.client import SpritesClient

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
ARGV = ["true"]


def control_exec(ws: ClientConnection) -> None:
    ws.send("control:" + json.dumps({"type": "op.start", "op": "exec",
                                     "args": {"cmd": ARGV, "path": ARGV[0]}}))
    while True:
        frame = ws.recv(timeout=30)
        if isinstance(frame, str) and frame.startswith("control:"):
            kind = json.loads(frame[len("control:"):])["type"]
            if kind in ("op.complete", "op.error"):
                assert kind == "op.complete", frame
                break
    ws.send(json.dumps({"type": "release"}))


def fresh_exec(ws_url: str) -> None:
    with connect(f"{ws_url}?cmd=true&path=true&stdin=false", additional_headers=HEADERS) as ws:
        while True:
            frame = ws.recv(timeout=30)
            if isinstance(frame, bytes) and frame[:1] == b"\x03":
                return


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-control-") as home:
        process, url = start_server(Path(home))
        try:
            sprite = "bench-control"
            httpx.post(f"{url}/v1/sprites", json={"name": sprite}, headers=HEADERS,
                       timeout=120).raise_for_status()
            ws_base = "ws" + url.removeprefix("http") + f"/v1/sprites/{sprite}"
            client = SpritesClient(TOKEN, url)
            handle = client.sprite(sprite)
            handle.run("true")  # the sandbox is up before timing starts
            times: dict[str, list[float]] = {"control": [], "fresh socket": [],
                                             "our client": []}
            with connect(f"{ws_base}/control", additional_headers=HEADERS) as control:
                control_exec(control)
                for _ in range(options.samples):
                    times["control"].append(timed(lambda: control_exec(control)))
                    times["fresh socket"].append(timed(lambda: fresh_exec(f"{ws_base}/exec")))
                    times["our client"].append(timed(lambda: handle.run("true")))
                    time.sleep(0.01)
                commands = options.samples * 10
                before = server_cpu_seconds(process.pid)
                for _ in range(commands):
                    control_exec(control)
                cpu_ms = (server_cpu_seconds(process.pid) - before) / commands * 1000
            client.close()
        finally:
            process.terminate()
            process.wait(30)
    for name, samples in times.items():
        summary(name, samples)
    for other in ("fresh socket", "our client"):
        compare(f"control / {other}", times["control"], times[other],
                names=("control", other))
    print(f"server CPU per command over control ({commands} commands): {cpu_ms:.3f} ms")


if __name__ == "__main__":
    main()
