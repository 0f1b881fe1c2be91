"""The agent's process as others see it: its memory, and the record that lets a
restarted kernel find it (``sessions/<id>.json``, removed when it exits).

Standard library only, Python 3.8+ (part of the ``%%sprite_python`` agent)."""

from __future__ import annotations

import json
import os


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as source:
            return source.read().strip()
    except OSError:
        return ""


def resident_bytes() -> int:
    try:
        with open("/proc/self/status") as source:
            for line in source:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sessions_dir() -> str:
    return os.path.join(os.environ.get("HOME", "."), ".sprites_jupyter", "python", "sessions")


def record_session(session_id: str, started: float) -> None:
    """Leave ``sessions/<id>.json`` so a restarted kernel can attach; removed at exit."""
    folder = sessions_dir()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{session_id}.json")
    with open(path, "w") as target:
        json.dump({"session_id": session_id, "pid": os.getpid(), "started": started,
                   "boot_id": boot_id()}, target)
    import atexit
    def remove_info() -> None:
        if os.path.exists(path):
            os.remove(path)

    atexit.register(remove_info)
