"""Which TCP ports a process group listens on, read from a ``/proc`` (Linux only).

Exec sessions use it for the optional ``port_opened`` / ``port_closed`` messages
(reference section 3.4): a process of the session started or stopped listening.
The ``/proc`` is the sprite's own (its PID namespace's, seen from the host), and the
socket tables are read through a member process, so they are its network namespace's.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

_LISTEN = "0A"


def _group_members(pgids: set[int], proc: Path) -> dict[int, list[int]]:
    """The processes of each of ``pgids``, found in one pass over ``proc``."""
    members: dict[int, list[int]] = {}
    try:
        entries = list(os.scandir(proc))
    except OSError:  # no /proc: not Linux
        return members
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = (proc / entry.name / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, pgrp, ...
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) in pgids:
            members.setdefault(int(fields[2]), []).append(int(entry.name))
    return members


def _socket_inodes(pid: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    try:
        fds = os.scandir(proc / str(pid) / "fd")
    except OSError:
        return inodes
    with fds:
        for fd in fds:
            try:
                target = os.readlink(fd.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _address(hex_ip: str) -> str:
    raw = bytes.fromhex(hex_ip)
    # /proc prints each 32-bit word in host (little-endian) order.
    ordered = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(ordered) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, ordered)


def _listening_sockets(net: Path) -> dict[str, tuple[int, str]]:
    """Every listening TCP socket of a network namespace: inode -> (port, bind address)."""
    found: dict[str, tuple[int, str]] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = (net / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN:
                hex_ip, hex_port = fields[1].split(":")
                found[fields[9]] = (int(hex_port, 16), _address(hex_ip))
    return found


def listening_ports(pgids: set[int], proc: Path = Path("/proc")
                    ) -> dict[int, set[tuple[int, str, int]]]:
    """For each process group, ``(port, address, pid)`` of every TCP socket it listens on."""
    owners = {inode: (pgid, pid) for pgid, pids in _group_members(pgids, proc).items()
              for pid in pids for inode in _socket_inodes(pid, proc)}
    found: dict[int, set[tuple[int, str, int]]] = {pgid: set() for pgid in pgids}
    if owners:
        member = next(iter(owners.values()))[1]
        for inode, (port, address) in _listening_sockets(proc / str(member) / "net").items():
            if inode in owners:
                pgid, pid = owners[inode]
                found[pgid].add((port, address, pid))
    return found
