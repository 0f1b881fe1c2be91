"""Memory and process totals per sprite, by cgroup, where the host lets this server make one.

Per-process rlimits (:mod:`.limits`) cap each process; a sprite running many processes
needs a total, which only a cgroup gives. A root server on cgroup v1 (or a server in a
delegated cgroup v2) makes one directory of its own under the cgroup it runs in, named
after its home (``sprites-local-<key>``), and in it one cgroup per running sprite; the
directory is there only while a sprite runs, so a server killed while its sprites are
idle leaves nothing behind, even when its home is then deleted. The
sprite's bubblewrap (and so its init and every process of the sprite) joins the
sprite's cgroup before it starts. Beyond the memory total the kernel's OOM killer ends
a process of that sprite only; beyond the process total ``fork`` fails with ``EAGAIN``.

A sprite's cgroup goes when its sandbox stops, the server's directory with the last
one and when the server ends. A killed server's are removed by its reaper, a helper
process that outlives it (:mod:`.cgroup_reaper`), and, should that fail, by the next
start of a server of the same home, from the list in ``HOME/cgroups``; nothing else is
ever touched.

Where no cgroup can be made (an unprivileged server on v1, a v2 cgroup that is not
delegated), :attr:`SpriteCgroups.reason` says why, and the start-up notice says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from . import cgroup_reaper
from .cgroup_reaper import pids_in, remove_tree

MOUNT = Path("/sys/fs/cgroup")
RECORD = "cgroups"
log = logging.getLogger("sprites_jupyter.local.cgroups")
CONTROLLERS = ("memory", "pids")
_HOW_TO = ("run the server as root on cgroup v1, or in a delegated cgroup v2 (e.g. "
           "systemd-run --user --scope -p Delegate=yes sprites-local serve)")
_OOM_KILL = re.compile(rb"^oom_kill (\d+)$", re.MULTILINE)
_JOIN = 'while [ "$1" != -- ]; do echo $$ >"$1" || exit 125; shift; done; shift; exec "$@"'


class CgroupUnusable(Exception):
    """No cgroup can be made here; the message says why."""


def group_name(home: Path) -> str:
    """The name of the directory a server of ``home`` makes under its own cgroup."""
    return "sprites-local-" + hashlib.sha256(os.fsencode(home)).hexdigest()[:12]


def own_cgroups(proc_self_cgroup: str) -> dict[str, str]:
    """The cgroup path of each v1 controller (and ``""`` for v2) this process is in."""
    found = {}
    for line in proc_self_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def _read(path: Path) -> str:
    return path.read_text()


def _write(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


class SpriteCgroup:
    """One sprite's cgroup directories (one per v1 controller, or one v2 directory)."""

    def __init__(self, directories: tuple[Path, ...], version: int, memory: Path | None,
                 released: Callable[[], None] = lambda: None) -> None:
        self.directories = directories
        self.version = version
        self.memory = memory
        self._released = released
        self._counter: tuple[int, bool] | None = None
        """The OOM counter's open file, and whether it is ``oom_kill`` (else failcnt)."""

    def join_command(self, argv: list[str]) -> list[str]:
        """``argv`` run after its process joined the sprite's cgroups (a shell's ``exec``:
        nothing runs outside them, not even bubblewrap's set-up)."""
        procs = [str(directory / "cgroup.procs") for directory in self.directories]
        return ["/bin/sh", "-c", _JOIN, "sprites-cgroup", *procs, "--", *argv]

    def oom_kills(self) -> int:
        """How many processes the OOM killer ended in this cgroup (v1 before Linux 4.13:
        how often the limit was hit); 0 without a memory cgroup. Read at every exec, so
        from a file kept open (a few microseconds)."""
        try:
            if self._counter is None:
                self._counter = self._open_counter()
            if self._counter is None:
                return 0
            fd, by_name = self._counter
            data = os.pread(fd, 4096, 0)
        except OSError:
            return 0
        if not by_name:
            return int(data or b"0")
        found = _OOM_KILL.search(data)
        return int(found.group(1)) if found else 0

    def _open_counter(self) -> tuple[int, bool] | None:
        if self.memory is None:
            return None
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        fd = os.open(self.memory / name, os.O_RDONLY | os.O_CLOEXEC)
        if _OOM_KILL.search(os.pread(fd, 4096, 0)) or self.version == 2:
            return fd, True
        os.close(fd)
        return os.open(self.memory / "memory.failcnt", os.O_RDONLY | os.O_CLOEXEC), False

    def remove(self) -> None:
        """Remove the directories, ending what still runs in them (blocking, short)."""
        if self._counter is not None:
            os.close(self._counter[0])
            self._counter = None
        try:
            for directory in self.directories:
                remove_tree(directory)
        finally:
            self._released()


class SpriteCgroups:
    """This server's cgroups: where sprites' cgroups are made, with which limits, or why
    there are none (:attr:`reason`)."""

    def __init__(self, parents: dict[str, Path], version: int, memory_bytes: int,
                 processes: int, reason: str = "", home: Path | None = None,
                 reaper: Reaper | None = None) -> None:
        self.parents = parents
        """Per controller (``""`` on v2) the server's own directory (made by :meth:`make`)."""
        self.version = version
        self.memory_bytes = memory_bytes
        self.processes = processes
        self.reason = reason
        self._home = home
        self._running = 0
        """How many sprites' cgroups exist: the parents are there while it is above 0."""
        self._lock = threading.Lock()
        self._reaper = reaper

    @classmethod
    def unused(cls, reason: str) -> SpriteCgroups:
        return cls({}, 0, 0, 0, reason)

    @property
    def memory_total(self) -> bool:
        return bool(self.memory_bytes) and bool(self._parent_of("memory"))

    @property
    def process_total(self) -> bool:
        return bool(self.processes) and bool(self._parent_of("pids"))

    def _parent_of(self, controller: str) -> Path | None:
        return self.parents.get("" if self.version == 2 else controller)

    @classmethod
    def set_up(cls, home: Path, memory_bytes: int, processes: int, *, mount: Path = MOUNT,
               proc_self_cgroup: Path = Path("/proc/self/cgroup"), reap: bool = False
               ) -> SpriteCgroups:
        """Remove what a previous server of ``home`` left, then make this server's
        directories; never raises (an unusable host gives :meth:`unused`). With ``reap``
        a helper process removes them once this process ends, however it ends
        (:mod:`.cgroup_reaper`); it starts before any of them is made."""
        clean_recorded(home)
        if not memory_bytes and not processes:
            return cls.unused("no memory or process limit is set")
        reaper = Reaper() if reap else None
        try:
            own = own_cgroups(_read(proc_self_cgroup))
            if (mount / "cgroup.controllers").exists():
                parents, version = {"": _v2_parent(mount, own, home)}, 2
                if reaper is not None:
                    reaper.watch(list(parents.values()))
            else:
                wanted = [name for name, limit in zip(CONTROLLERS, (memory_bytes, processes),
                                                      strict=True) if limit]
                parents, version = _v1_parents(mount, own, home, wanted, reaper), 1
        except (CgroupUnusable, OSError, ValueError) as exc:
            if reaper is not None:
                reaper.close()
            return cls.unused(str(exc) if isinstance(exc, CgroupUnusable)
                              else f"cgroups unusable here ({exc})")
        return cls(parents, version, memory_bytes, processes, home=home, reaper=reaper)

    def make(self, sprite: str) -> SpriteCgroup | None:
        """The sprite's fresh cgroup with its limits set (blocking, short); ``None`` when
        this server uses none. Raises OSError when the kernel refuses."""
        if not self.parents:
            return None
        with self._lock:
            if not self._running:
                self._make_parents()
            self._running += 1
        directories = []
        try:
            for controller, parent in self.parents.items():
                directory = parent / sprite
                if directory.exists():
                    remove_tree(directory)
                directory.mkdir()
                directories.append(directory)
                self._limit(controller, directory)
        except OSError:
            for directory in directories:
                with contextlib.suppress(OSError):
                    remove_tree(directory)
            self._release()
            raise
        memory = self._parent_of("memory")
        return SpriteCgroup(tuple(directories), self.version,
                            memory / sprite if memory is not None else None, self._release)

    def _make_parents(self) -> None:
        """Make (and record, before anything goes in) the server's own directories."""
        assert self._home is not None
        _record(self._home, list(self.parents.values()))
        for parent in self.parents.values():
            parent.mkdir(exist_ok=True)
            if self.version == 2:
                _write(parent / "cgroup.subtree_control",
                       " ".join(f"+{c}" for c in CONTROLLERS))

    def _release(self) -> None:
        """One sprite's cgroup is gone; with the last, the server's directories go too
        (left for :meth:`close` when the kernel refuses)."""
        with self._lock:
            self._running -= 1
            if self._running:
                return
            for parent in self.parents.values():
                with contextlib.suppress(OSError):
                    parent.rmdir()

    def _limit(self, controller: str, directory: Path) -> None:
        if controller in ("memory", "") and self.memory_bytes:
            if self.version == 2:
                _write(directory / "memory.max", str(self.memory_bytes))
                with contextlib.suppress(FileNotFoundError):  # no swap accounting
                    _write(directory / "memory.swap.max", "0")
            else:
                _write(directory / "memory.limit_in_bytes", str(self.memory_bytes))
                with contextlib.suppress(FileNotFoundError):  # no swap accounting
                    _write(directory / "memory.memsw.limit_in_bytes", str(self.memory_bytes))
        if controller in ("pids", "") and self.processes:
            _write(directory / "pids.max", str(self.processes))

    def close(self, home: Path) -> None:
        """Remove every cgroup this server made (blocking; at server exit); the reaper
        then finds nothing left and ends."""
        clean_recorded(home)
        if self._reaper is not None:
            self._reaper.close()

    def describe(self) -> str:
        """How totals are enforced, for the start-up notice (``cgroup v1``)."""
        return f"cgroup v{self.version}" if self.parents else ""


def _v1_parents(mount: Path, own: dict[str, str], home: Path, wanted: list[str],
                reaper: Reaper | None) -> dict[str, Path]:
    """The server's directory per controller, each checked by making and removing it
    (the reaper, if any, watches them from before: a kill in between leaves none)."""
    candidates = {}
    refusals = []
    for controller in wanted:
        if controller not in own or not (mount / controller).is_dir():
            refusals.append(f"no cgroup v1 {controller} hierarchy")
            continue
        own_directory = mount / controller / own[controller].lstrip("/")
        candidates[controller] = own_directory / group_name(home)
    if reaper is not None:  # an unprivileged server can make none: no reaper
        reaper.watch([path for path in candidates.values() if os.access(path.parent, os.W_OK)])
    parents = {}
    for controller, parent in candidates.items():
        try:  # can one be made? (made again when a sprite starts)
            parent.mkdir(exist_ok=True)
        except OSError as exc:
            refusals.append(f"cannot make a {controller} cgroup under "
                            f"{parent.parent} ({exc.strerror})")
            continue
        with contextlib.suppress(OSError):
            parent.rmdir()
        parents[controller] = parent
    if not parents:
        raise CgroupUnusable(f"{'; '.join(refusals)}: {_HOW_TO}")
    return parents


def _v2_parent(mount: Path, own: dict[str, str], home: Path) -> Path:
    """The server's directory in its delegated v2 cgroup (made by :meth:`SpriteCgroups.make`,
    memory and pids enabled in it).

    v2 lets a cgroup with processes hand no controller to its children, so the server
    first moves itself into a leaf of its own (``<name>.server``), as systemd asks of
    a service with ``Delegate=yes``; when others share its cgroup, that cannot work."""
    if "" not in own:
        raise CgroupUnusable(f"this process is in no cgroup v2: {_HOW_TO}")
    base = mount / own[""].lstrip("/")
    available = _read(base / "cgroup.controllers").split()
    missing = [name for name in CONTROLLERS if name not in available]
    if missing or not os.access(base / "cgroup.subtree_control", os.W_OK):
        raise CgroupUnusable(f"the server's cgroup v2 {own['']} is not delegated to it "
                             f"({' and '.join(missing) or 'not writable'}): {_HOW_TO}")
    name = group_name(home)
    if any(c not in _read(base / "cgroup.subtree_control").split() for c in CONTROLLERS):
        leaf = base / f"{name}.server"
        leaf.mkdir(exist_ok=True)
        _record(home, [leaf])
        _write(leaf / "cgroup.procs", str(os.getpid()))
        try:
            _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
        except OSError as exc:
            _write(base / "cgroup.procs", str(os.getpid()))
            leaf.rmdir()
            raise CgroupUnusable(f"other processes share the server's cgroup v2 {own['']} "
                                 f"({exc.strerror}): {_HOW_TO}") from None
    return base / name


class Reaper:
    """The server's side of :mod:`.cgroup_reaper`: the helper process, and the write end
    of the pipe it waits on (held by this process only; not inherited by sandboxes)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    def watch(self, directories: list[Path]) -> None:
        """Start the helper for ``directories`` (once; nothing for none). A helper that
        cannot start costs only the clean-up after a kill, so it is a warning."""
        if self._process is not None or not directories:
            return
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", cgroup_reaper.__file__, *map(str, directories)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd="/",
                start_new_session=True)
        except OSError as exc:
            log.warning("cannot start the cgroup reaper (%s): if this server is killed, "
                        "remove %s by hand", exc.strerror, " ".join(map(str, directories)))

    def close(self) -> None:
        """This server ends cleanly: close the pipe, wait briefly for the helper to end."""
        process, self._process = self._process, None
        if process is None or process.stdin is None:
            return
        process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(cgroup_reaper.REMOVE_WAIT)


def _record(home: Path, made: list[Path]) -> None:
    """Add ``made`` to the home's list of cgroups this server made."""
    listed = _recorded(home)
    try:
        with open(home / RECORD, "a") as handle:
            handle.writelines(f"{path}\n" for path in made if path not in listed)
    except OSError as exc:  # a full home must not stop the server; its exit still cleans
        log.warning("cannot list the cgroups this server makes in %s (%s): if it is "
                    "killed, remove %s by hand", home / RECORD, exc.strerror,
                    " ".join(map(str, made)))


def _recorded(home: Path) -> list[Path]:
    try:
        lines = (home / RECORD).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [Path(line) for line in lines if line]


def clean_recorded(home: Path) -> None:
    """Remove the cgroups listed in the home (a previous or this server's), each only if
    its name is this home's (a hand-edited list cannot aim elsewhere); then the list."""
    name = group_name(home)
    leftovers = []
    for path in _recorded(home):
        if path.name not in (name, f"{name}.server") or not path.is_absolute():
            continue
        if path.name.endswith(".server") and str(os.getpid()) in pids_in(path):
            leftovers.append(path)  # this very server lives there until it exits
            continue
        try:
            remove_tree(path)
        except OSError:
            leftovers.append(path)
    with contextlib.suppress(FileNotFoundError):
        (home / RECORD).unlink()
    if leftovers:
        _record(home, leftovers)
