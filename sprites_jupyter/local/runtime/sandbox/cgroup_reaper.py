"""Removing a server's cgroups: while it runs (a stopped sprite's), and after it ends,
however it ends, by a helper process that outlives it.

A server killed with ``kill -9`` cannot clean up; when its home is then deleted (a
test's temporary home, a container's scratch home), no later start finds the record of
what it made either. So a server that makes cgroups first starts this file as a program
(``python -I -S cgroup_reaper.py DIRECTORY...``): in a session of its own (a kill of the
server's process group spares it), its standard input the read end of a pipe whose write
end only the server holds. The pipe's end of file means the server is gone; the reaper
then removes the directories it was given, their sub-cgroups first, ending what still
runs in them (a sandbox outliving its server for a moment), and exits. A server that
ended cleanly has removed them already: the reaper finds nothing.

What exists under those paths the moment the server is gone is the server's: the names
are its home's, and no other server of that home can start before it ended (the home's
lock). Each directory is removed only while it is still the one seen then (same inode),
so a server of the same home started meanwhile keeps the cgroups it makes.

Standard library only, and few modules: it is started with every server that uses
cgroups, and should cost that start little.
"""

from __future__ import annotations

import errno
import os
import sys
import time

REMOVE_WAIT = 3.0
"""How long the processes of a cgroup have to end once killed before giving up on it."""


def pids_in(directory: str | os.PathLike[str]) -> list[str]:
    """The processes in the cgroup (none when it is gone)."""
    try:
        with open(os.path.join(directory, "cgroup.procs")) as procs:
            return procs.read().split()
    except OSError:
        return []


def kill_members(directory: str | os.PathLike[str]) -> None:
    """SIGKILL every process in the cgroup, each checked to be in it still once its
    pidfd is open (so a pid reused meanwhile by a process elsewhere is never signalled)."""
    import signal  # here: it costs the reaper's start more than the rest together (enum)

    for pid in pids_in(directory):
        try:
            pidfd = os.pidfd_open(int(pid))
        except (OSError, ValueError):
            continue
        try:
            if pid in pids_in(directory):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(pidfd)


def tree(directory: str | os.PathLike[str]) -> list[tuple[str, tuple[int, int]]]:
    """The cgroup and its sub-cgroups, each with its identity (device, inode), children
    before their parent; empty when it does not exist."""
    path = os.fspath(directory)
    try:
        found = os.lstat(path)
        entries = list(os.scandir(path))
    except OSError:
        return []
    taken = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            taken.extend(tree(entry.path))
    taken.append((path, (found.st_dev, found.st_ino)))
    return taken


def remove_taken(taken: list[tuple[str, tuple[int, int]]], wait: float = REMOVE_WAIT
                 ) -> list[tuple[str, OSError]]:
    """rmdir each of ``taken`` (as :func:`tree` lists them) that is still the same
    directory, killing what runs in it when the kernel says it is busy; returns the
    ones that could not be removed, with why."""
    deadline = time.monotonic() + wait
    failed = []
    for path, identity in taken:
        try:
            _remove_one(path, identity, deadline)
        except OSError as exc:
            failed.append((path, exc))
    return failed


def _remove_one(path: str, identity: tuple[int, int], deadline: float) -> None:
    while True:
        try:
            now = os.lstat(path)
            if (now.st_dev, now.st_ino) != identity:
                return  # made again since: not ours to remove
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
        kill_members(path)
        time.sleep(0.02)


def remove_tree(directory: str | os.PathLike[str]) -> None:
    """Remove a cgroup this server made and its sub-cgroups, ending what runs in them
    (blocking, a few milliseconds; seconds at most). Missing is fine; raises the first
    refusal."""
    failed = remove_taken(tree(directory))
    if failed:
        raise failed[0][1]


def main(directories: list[str]) -> int:
    """Wait for the server to end (end of file on standard input), then remove
    ``directories``; say on standard error (the server's) what could not be."""
    try:
        while os.read(0, 512):
            pass
    except OSError:
        pass
    taken = [entry for directory in directories for entry in tree(directory)]
    failed = remove_taken(taken)
    for path, exc in failed:
        try:
            print(f"sprites-local: cannot remove the cgroup {path} a killed server left "
                  f"({exc.strerror}): remove it by hand (rmdir {path})", file=sys.stderr)
        except OSError:
            break
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
