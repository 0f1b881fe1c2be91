"""What sandboxing costs: a sandboxed server against an ``--isolation none`` one, same run.

1. ``%%sprite_exec echo hi`` round trip through a real IPython shell (target: sandboxed
   <= 1.3x unsandboxed).
2. A service start (``POST .../services/NAME/start``, until it runs), after a stop.
3. A checkpoint of an unchanged sprite whose own layer holds 5,000 files (the base is
   the host's system directories, which the checkpoint must not pay for).

Samples of the two servers are interleaved; min and median of each are printed.

    python bench/bench_sandbox.py [--repeat 20] [--files 5000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import tempfile
from pathlib import Path

import httpx
from bench_common import TOKEN, compare, start_server, timed
from IPython.core.interactiveshell import InteractiveShell

NAMES = ("sandboxed", "--isolation none")

def _stream(http: httpx.Client, method: str, url: str, **kwargs: object) -> None:
    with http.stream(method, url, **kwargs) as response:
        response.raise_for_status()
        response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--files", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        sandboxed, sandboxed_url = start_server(Path(scratch, "sandbox"), "--isolation",
                                                 "sandbox")
        plain, plain_url = start_server(Path(scratch, "none"), "--isolation", "none")
        try:
            run(sandboxed_url, plain_url, args.repeat, args.files)
        finally:
            for process in (sandboxed, plain):
                process.terminate()
                process.wait(timeout=30)


def run(sandboxed_url: str, plain_url: str, repeat: int, files: int) -> None:
    os.environ.update(SPRITES_TOKEN=TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    clients = {url: httpx.Client(base_url=url, headers=headers, timeout=600)
               for url in (sandboxed_url, plain_url)}
    for http in clients.values():
        http.post("/v1/sprites", json={"name": "bench"}).raise_for_status()
        _stream(http, "PUT", "/v1/sprites/bench/services/svc", params={"duration": "0"},
                json={"cmd": "sleep", "args": ["600"]})
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "sprites_jupyter")
    magics = next(c for c in shell.configurables if type(c).__name__ == "SpriteMagics")
    magics.sprite = "bench"

    def exec_hi(url: str) -> float:
        magics.api_url = url
        with contextlib.redirect_stdout(io.StringIO()) as out:
            took = timed(lambda: shell.run_cell("%%sprite_exec\necho hi\n"))
        assert "hi" in out.getvalue(), out.getvalue()
        return took

    def service_start(url: str) -> float:
        http = clients[url]
        _stream(http, "POST", "/v1/sprites/bench/services/svc/stop")
        return timed(lambda: _stream(http, "POST", "/v1/sprites/bench/services/svc/start",
                                      params={"duration": "0"}))

    for measure, what, target in ((exec_hi, "%%sprite_exec echo hi", 1.3),
                                  (service_start, "service start", None)):
        samples: dict[str, list[float]] = {sandboxed_url: [], plain_url: []}
        for url in samples:
            measure(url)  # warm up: the first start of a sandbox, connections, caches
        for _ in range(repeat):
            for url in samples:
                samples[url].append(measure(url))
        compare(what, samples[sandboxed_url], samples[plain_url], most=target, names=NAMES)

    # Relative to the working directory (HOME): unsandboxed, /home/sprite is the host's.
    make = (f"mkdir -p many && cd many && i=0; while [ $i -lt {files} ]"
            "; do echo $i > f$i; i=$((i+1)); done")
    checkpoints: dict[str, list[float]] = {sandboxed_url: [], plain_url: []}
    for url in checkpoints:
        clients[url].post("/v1/sprites/bench/exec", params={"cmd": ["sh", "-c", make]}).read()
        _stream(clients[url], "POST", "/v1/sprites/bench/checkpoint", json={})
    for _ in range(max(5, repeat // 4)):
        for url in checkpoints:
            checkpoints[url].append(timed(lambda url=url: _stream(
                clients[url], "POST", "/v1/sprites/bench/checkpoint", json={})))
    compare(f"checkpoint of an unchanged sprite with {files:,} files in its layer",
            checkpoints[sandboxed_url], checkpoints[plain_url], names=NAMES)
    shell.run_line_magic("unload_ext", "sprites_jupyter")


if __name__ == "__main__":
    main()
