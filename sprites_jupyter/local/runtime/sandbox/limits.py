"""What one sprite may use of the host, and what the kernel lets this server enforce.

A real sprite is a VM (8 vCPU, 100 GB of disk, managed memory): nothing it does reaches
another sprite or the host. Here sprites share the host's kernel, so each gets limits
(``sprites-local serve --max-processes / --max-memory / --service-log-max``):

- processes: a total per sprite by cgroup (``pids.max``) where the server can make one
  (:mod:`.cgroups`), and ``RLIMIT_NPROC`` always, counted per user namespace (Linux >=
  5.14), so per sprite too. Default 4096 tasks, near systemd's per-service default.
- memory: a total per sprite by cgroup (``memory.limit_in_bytes`` / ``memory.max``:
  beyond it the OOM killer ends a process of that sprite), where the server can make
  one; and per process ``RLIMIT_DATA`` always (heap and private writable mappings,
  ``ENOMEM`` beyond), so one oversized allocation fails cleanly before the total
  bites. Default 8 GiB, at most half the host's memory. ``/run`` and ``/dev/shm`` (in
  memory, counted in the total) hold a quarter of it each, at most 1 GiB (bubblewrap >=
  0.10), so files there cannot take the whole total from the sprite's processes.
- service logs: each service's log file is rotated at the cap (one older file kept),
  default 10 MiB, as Docker's log drivers are commonly capped.
- disk: a root server gives each new sprite an ext4 image of its own of this size
  (:mod:`.disks`): 100 GB as a real sprite has, at most a quarter of the home's
  filesystem. An unprivileged server cannot (no loop mounts, no quota on a directory):
  the notice says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .cgroups import SpriteCgroups

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
    disk_bytes: int = 0

    def notice(self, tmpfs_capped: bool = True, cgroups: SpriteCgroups | None = None,
               disk_unlimited: str = "") -> str:
        """The one start-up line saying what is enforced, how, and what is not
        (``tmpfs_capped``: whether the bubblewrap in use can size a tmpfs; ``cgroups``:
        this server's, which give per-sprite totals; ``disk_unlimited``: why sprites get
        no disk of their own, "" when they do)."""
        by = cgroups.describe() if cgroups is not None else ""
        no_total = cgroups.reason if cgroups is not None and cgroups.reason else (
            "no cgroup is used")
        tmpfs = (f"/run and /dev/shm {size_text(self.tmpfs_bytes)} each" if tmpfs_capped
                 else "/run and /dev/shm NOT limited (bubblewrap < 0.10)")
        if not self.processes:
            processes = "processes unlimited"
        elif cgroups is not None and cgroups.process_total:
            processes = f"processes {self.processes} per sprite ({by} pids, and RLIMIT_NPROC)"
        else:
            processes = f"processes {self.processes} per sprite (RLIMIT_NPROC)"
        if not self.memory_bytes:
            memory = "memory unlimited"
        elif cgroups is not None and cgroups.memory_total:
            memory = (f"memory {size_text(self.memory_bytes)} per sprite in total ({by} memory: "
                      "beyond it the OOM killer ends a process of that sprite) and per "
                      f"process (RLIMIT_DATA), {tmpfs}")
        else:
            memory = (f"memory {size_text(self.memory_bytes)} per process (RLIMIT_DATA), NOT a "
                      f"per-sprite total ({no_total}), {tmpfs}")
        parts = [processes, memory,
                 f"service logs {size_text(self.service_log_bytes)} + 1 rotated file"
                 if self.service_log_bytes else "service logs unlimited",
                 _disk_words(self.disk_bytes, disk_unlimited)]
        return "sprite limits: " + "; ".join(parts)

    @property
    def tmpfs_bytes(self) -> int:
        """The size of each in-memory file system of a sprite (``/run``, ``/dev/shm``):
        a quarter of the memory limit, at most 1 GiB (0: unbounded)."""
        return min(max(self.memory_bytes // 4, MiB), GiB) if self.memory_bytes else 0

    def init_options(self) -> dict[str, int]:
        """What the sprite's init applies to itself, so every process of the sprite
        inherits it (see :mod:`.sprite_init`)."""
        return {"nproc": self.processes, "data": self.memory_bytes}


def _disk_words(disk_bytes: int, unlimited: str) -> str:
    if not disk_bytes:
        return "disk unlimited"
    if unlimited:
        return f"disk of a sprite NOT limited ({unlimited})"
    return f"disk {size_text(disk_bytes)} per sprite (an ext4 image of its own)"


def size_text(count: int) -> str:
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
