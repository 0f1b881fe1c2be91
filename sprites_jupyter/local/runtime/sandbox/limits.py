"""What one sprite may use of the host, and what the kernel lets this server enforce.

A real sprite is a VM (8 vCPU, 100 GB of disk, managed memory): nothing it does reaches
another sprite or the host. Here sprites share the host's kernel, so each gets limits
(``sprites-local serve --max-processes / --max-memory / --service-log-max``):

- processes: ``RLIMIT_NPROC``, counted per user namespace (Linux >= 5.14), so per
  sprite. Default 4096 tasks, near systemd's per-service default (15 % of 32768).
- memory: per process, ``RLIMIT_DATA`` (heap and private writable mappings: what
  ``malloc`` takes; ``ENOMEM`` beyond). A per-sprite total needs a cgroup v2 the host
  delegates, which this server does not manage yet: the start-up notice says so.
  Default 8 GiB, at most half the host's memory. ``/run`` and ``/dev/shm`` (in
  memory) hold at most that each, and at most 1 GiB (bubblewrap >= 0.10).
- service logs: each service's log file is rotated at the cap (one older file kept),
  default 10 MiB, as Docker's log drivers are commonly capped.
- disk: not limited: a sprite's layer is a directory of the host's filesystem, with no
  quota this server can set; the notice says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MiB = 1024 * 1024
GiB = 1024 * MiB


def _default_memory() -> int:
    try:
        host = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 8 * GiB
    return max(256 * MiB, min(8 * GiB, host // 2))


@dataclass(frozen=True)
class SpriteLimits:
    """Per-sprite limits; 0 turns one off."""

    processes: int = 4096
    memory_bytes: int = _default_memory()
    service_log_bytes: int = 10 * MiB

    def notice(self, tmpfs_capped: bool = True) -> str:
        """The one start-up line saying what is enforced, how, and what is not
        (``tmpfs_capped``: whether the bubblewrap in use can size a tmpfs)."""
        tmpfs = (f"/run and /dev/shm {_size(self.tmpfs_bytes)} each" if tmpfs_capped
                 else "/run and /dev/shm NOT limited (bubblewrap < 0.10)")
        parts = [f"processes {self.processes} per sprite" if self.processes
                 else "processes unlimited",
                 f"memory {_size(self.memory_bytes)} per process (not per sprite: no "
                 f"delegated cgroup v2 is used), {tmpfs}" if self.memory_bytes
                 else "memory unlimited",
                 f"service logs {_size(self.service_log_bytes)} + 1 rotated file"
                 if self.service_log_bytes else "service logs unlimited",
                 "disk of a sprite's layer NOT limited (no quota on the host's filesystem)"]
        return "sprite limits: " + "; ".join(parts)

    @property
    def tmpfs_bytes(self) -> int:
        """The size of each in-memory file system of a sprite (``/run``, ``/dev/shm``):
        the memory limit, at most 1 GiB (0: unbounded)."""
        return min(self.memory_bytes, GiB)

    def init_options(self) -> dict[str, int]:
        """What the sprite's init applies to itself, so every process of the sprite
        inherits it (see :mod:`.sprite_init`)."""
        return {"nproc": self.processes, "data": self.memory_bytes}


def _size(count: int) -> str:
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (1024, "KiB")):
        if count >= unit:
            return f"{count / unit:.4g} {name}"
    return f"{count} bytes"


def parse_size(text: str) -> int:
    """``512M``, ``8G``, ``1048576`` (bytes), ``0`` (off) as a byte count."""
    units = {"K": 1024, "M": MiB, "G": GiB, "T": 1024 * GiB}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    factor = units.get(cleaned[-1:], 1)
    number = cleaned[:-1] if cleaned[-1:] in units else cleaned
    value = float(number)
    if value < 0 or value != value:
        raise ValueError(text)
    return int(value * factor)
