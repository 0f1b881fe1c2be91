"""A sprite kernel against a local ipykernel, both started by ``jupyter_client``.

1. Start until ``kernel_info_reply`` (ipykernel already in the sprite: warm; target
   <= 2x a local kernel's start).
2. A ``1 + 1`` execute round trip (target <= 1.5x local).
3. A 50 MB display output (``display`` of a 50 MB text/plain bundle) until the
   reply, as a ratio to the same on the local kernel.

The sprite kernel runs on a local server of the bench's own: ``--isolation none`` by
default (the sprite runs this interpreter, which has ipykernel), or ``--sandboxed``
(the sprite's system python3; the first start installs ipykernel into a venv there and
is not counted). Samples are interleaved; min and median of each.

    python bench/bench_kernel.py [--repeat 5] [--round-trips 30] [--megabytes 50] [--sandboxed]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from bench_common import TOKEN, compare, start_server, timed
from jupyter_client import KernelManager

from sprites_jupyter.kernel.kernelspecs import PROVISIONER_NAME

ENTRY_POINT = "sprites_jupyter.kernel.provisioner:SpriteProvisioner"
WAIT = 600.0


def _register_provisioner(folder: Path) -> None:
    """Make the provisioner findable as an install would, when this checkout's entry
    point is not in the installed metadata yet."""
    if entry_points(group="jupyter_client.kernel_provisioners", name=PROVISIONER_NAME):
        return
    info = folder / "sprites_jupyter_bench-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sprites-jupyter-bench\n"
                                   "Version: 0\n")
    (info / "entry_points.txt").write_text(
        f"[jupyter_client.kernel_provisioners]\n{PROVISIONER_NAME} = {ENTRY_POINT}\n")
    sys.path.insert(0, str(folder))


class Kernel:
    def __init__(self, spec: str) -> None:
        self.manager = KernelManager(kernel_name=spec)
        self.manager.start_kernel()
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=WAIT)

    def execute(self, code: str) -> None:
        reply = self.client.execute_interactive(code, timeout=WAIT, output_hook=lambda m: None)
        if reply["content"]["status"] != "ok":
            raise SystemExit(f"{code[:40]!r} failed: {reply['content']}")

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)


def _interleaved(repeat: int, actions: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeat):
        for name, action in actions.items():
            samples[name].append(timed(action))
    return samples


def bench_start(spec: str, repeat: int) -> None:
    def start_and_stop(name: str) -> Callable[[], float]:
        def run() -> float:
            began = time.perf_counter()
            kernel = Kernel(name)
            took = time.perf_counter() - began
            kernel.stop()
            return took
        return run

    sprite, local = start_and_stop(spec), start_and_stop("python3")
    samples: dict[str, list[float]] = {"sprite": [], "local": []}
    for _ in range(repeat):
        samples["sprite"].append(sprite())
        samples["local"].append(local())
    print(f"1. start until kernel_info_reply ({repeat} interleaved samples)")
    compare("  sprite / local", samples["sprite"], samples["local"], most=2,
            names=("sprite kernel", "local ipykernel"))


def bench_round_trip(sprite: Kernel, local: Kernel, repeat: int) -> None:
    samples = _interleaved(repeat, {"sprite": lambda: sprite.execute("1 + 1"),
                                    "local": lambda: local.execute("1 + 1")})
    print(f"2. '1 + 1' execute round trip ({repeat} interleaved samples)")
    compare("  sprite / local", samples["sprite"], samples["local"], most=1.5,
            names=("sprite kernel", "local ipykernel"))


def bench_display(sprite: Kernel, local: Kernel, megabytes: int, repeat: int) -> None:
    code = (f"from IPython.display import display\n"
            f"display({{'text/plain': 'x' * {megabytes * 1_000_000}}}, raw=True)")
    samples = _interleaved(repeat, {"sprite": lambda: sprite.execute(code),
                                    "local": lambda: local.execute(code)})
    print(f"3. a {megabytes} MB display output ({repeat} interleaved samples)")
    compare("  sprite / local time (as low as it goes)", samples["sprite"], samples["local"],
            names=("sprite kernel", "local ipykernel"))
    print(f"  sprite kernel: {megabytes / statistics.median(samples['sprite']):.0f} MB/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--round-trips", type=int, default=30)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--sandboxed", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-kernel-") as folder:
        base = Path(folder)
        for variable, sub in (("JUPYTER_PATH", "share/jupyter"), ("JUPYTER_RUNTIME_DIR",
                              "runtime"), ("JUPYTER_DATA_DIR", "data"), ("IPYTHONDIR", "ipy"),
                              ("XDG_CACHE_HOME", "cache")):
            os.environ[variable] = str(base / sub)
        _register_provisioner(base)
        isolation = () if options.sandboxed else ("--isolation", "none")
        server, url = start_server(base / "home", *isolation)
        os.environ.update(SPRITES_API_URL=url, SPRITES_TOKEN=TOKEN)
        try:
            name = f"bench-{uuid.uuid4().hex[:6]}"
            python = "python3" if options.sandboxed else sys.executable
            subprocess.run([sys.executable, "-m", "sprites_jupyter.kernel", "kernel", "install",
                            "--sprite", name, "--python", python, "--prefix", folder],
                           check=True, capture_output=True)
            spec = f"sprite-{name}"
            Kernel(spec).stop()  # creates the sprite (and installs ipykernel when sandboxed)
            bench_start(spec, options.repeat)
            sprite, local = Kernel(spec), Kernel("python3")
            try:
                bench_round_trip(sprite, local, options.round_trips)
                bench_display(sprite, local, options.megabytes, max(3, options.repeat // 2))
            finally:
                sprite.stop()
                local.stop()
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
