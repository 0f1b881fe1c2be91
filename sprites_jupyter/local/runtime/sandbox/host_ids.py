"""Which host ids a sprite runs as when the server runs as root: never root.

An unprivileged server's sandbox maps the sprite user onto the server's own uid (the
kernel allows nothing else). A root server would map it onto uid 0, so every permission
check a sprite process makes would be a root check on the host. Instead, as container
runtimes do with subordinate id ranges, the sprite user is host uid ``RANGE_START +
1000`` (gid likewise), an id no host account uses, and the sprite's tree belongs to it.

bubblewrap needs host root's own ids to set the sandbox up (reach the server's home
through ``/root``, mount the overlays), so two user namespaces are made here and passed
to it (``--userns`` / ``--userns2``): one for the set-up that maps host root, and one
nested in it that maps only the sprite user. Every process of the sprite lives in the
second: host root is not even a name there. The sprite's init drops to the sprite user
and clears its capabilities before it runs anything (:mod:`.sprite_init`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor

# The last 65,536-id slot of the range systemd sets aside for containers' user
# namespaces (524288-1879048191): no login account, no DynamicUser service.
RANGE_START = 1_878_982_656
SPRITE_ID = 1000
_TIMEOUT = 20.0

# Runs as root: makes the set-up namespace (the server writes its map), then forks a
# child into a nested namespace whose map only it, inside the first, may write.
_MAKER = r"""
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
def unshare():
    if libc.unshare(0x10000000) != 0:
        sys.exit("unshare(CLONE_NEWUSER): " + os.strerror(ctypes.get_errno()))
unshare()
print("setup", flush=True)
if not sys.stdin.readline():
    sys.exit("the server went before it mapped the set-up namespace")
ready_r, ready_w = os.pipe()
maker = os.getpid()
pid = os.fork()
if pid == 0:
    os.close(ready_r)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the maker
    if os.getppid() != maker:
        os._exit(1)
    unshare()
    os.write(ready_w, b".")
    signal.pause()
    os._exit(0)
os.close(ready_w)
if not os.read(ready_r, 1):
    sys.exit("the nested user namespace's process ended before it was made")
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write(f"{sys.argv[1]} {sys.argv[1]} 1\n")
print(pid, flush=True)
sys.stdin.readline()
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
"""


def remapped() -> bool:
    """Whether sprites run on the subordinate range (the server runs as root)."""
    return os.geteuid() == 0


def sprite_host_id() -> int:
    """The host uid and gid of the sprite user: the server's own unless remapped."""
    return RANGE_START + SPRITE_ID if remapped() else os.geteuid()


def maker_argv() -> list[str]:
    """The maker's command line: it says ``setup``, waits for a line once the server
    mapped its namespace, says the nested one's pid, and ends at the next line (or the
    end of its input, however the server went)."""
    return [sys.executable, "-I", "-S", "-c", _MAKER, str(SPRITE_ID)]


def make_user_namespaces() -> tuple[int, int]:
    """Open fds of the set-up and the sprite's user namespaces (the caller closes them).

    Blocking (a short helper process); raises OSError when the kernel refuses."""
    maker = subprocess.Popen(maker_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert maker.stdin is not None and maker.stdout is not None
    try:
        if maker.stdout.readline().strip() != "setup":
            raise OSError(f"cannot make a user namespace: {_complaint(maker)}")
        setup_map = f"0 0 1\n{SPRITE_ID} {RANGE_START + SPRITE_ID} 1\n"
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{maker.pid}/{name}", "w") as handle:
                handle.write(setup_map)
        maker.stdin.write("\n")
        maker.stdin.flush()
        inner = maker.stdout.readline().strip()
        if not inner.isdigit():
            raise OSError(f"cannot make the sprite's user namespace: {_complaint(maker)}")
        setup_fd = os.open(f"/proc/{maker.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        try:
            sprite_fd = os.open(f"/proc/{inner}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(setup_fd)
            raise
        return setup_fd, sprite_fd
    finally:
        with contextlib.suppress(OSError):
            maker.stdin.close()
        try:
            maker.wait(_TIMEOUT)
        except subprocess.TimeoutExpired:
            maker.kill()
            maker.wait()


class SpareNamespaces:
    """Hands out fresh namespace pairs, the next one made ahead in the background so
    that a sandbox start does not wait for the maker (a Python process).

    A pair is taken once and never returned: no two sandboxes share one. A spare holds
    nothing but the two id maps, so whichever sprite takes it gets a new machine."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: Future[tuple[int, int]] | None = None
        self._maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spare-userns")

    def take(self) -> tuple[int, int]:
        """A pair (the caller closes its fds); blocking, raises OSError as the maker does."""
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(OSError):
                return spare.result()
        return make_user_namespaces()

    def make_ahead(self) -> None:
        """Start making the next pair unless one is made or on its way; call it once a
        sandbox is up, so the maker does not take CPU from the start that waits."""
        with self._lock:
            if self._spare is None:
                self._spare = self._maker.submit(make_user_namespaces)


def _complaint(maker: subprocess.Popen[str]) -> str:
    maker.kill()
    assert maker.stderr is not None
    lines = maker.stderr.read().strip().splitlines()
    return lines[-1] if lines else f"exit {maker.wait()}"


def take_ownership(tree: os.PathLike[str] | str, owner: int) -> None:
    """Give host id ``owner`` (the sprite user's) what host root owns in a sprite's tree
    (a home made by an older server); never follows a symlink."""

    def claim(path: str) -> None:
        with contextlib.suppress(OSError):
            info = os.lstat(path)
            if info.st_uid == 0 or info.st_gid == 0:
                os.chown(path, owner if info.st_uid == 0 else -1,
                         owner if info.st_gid == 0 else -1, follow_symlinks=False)

    claim(os.fspath(tree))
    for directory, subdirectories, files in os.walk(tree):
        for name in (*subdirectories, *files):
            claim(os.path.join(directory, name))

