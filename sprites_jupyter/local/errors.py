"""What can go wrong in the local server, in its own words: a small hierarchy the
domain (runtime, storage, the sprite operations) raises and ``api/`` turns into HTTP
answers in one place (``api/errors.py``)."""

from __future__ import annotations

import errno
import sqlite3

__all__ = ["DISK_FULL", "Conflict", "DiskLimitReached", "Forbidden", "Invalid", "LocalError",
           "NotFound", "OverLimit", "Unavailable", "is_disk_full"]

DISK_FULL = ("the disk holding the local server's data is full: free some space, then retry")


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) says the disk is full: ENOSPC, EDQUOT, or
    SQLite's "database or disk is full"."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
            return True
        exc = exc.__cause__
    return False


class LocalError(Exception):
    """A refusal with a one-line ``message`` that says what to do.

    ``code`` overrides the machine-readable error name; filesystem errors carry the
    reference's errno name (``fs_code``) and the sprite ``path``.
    """

    def __init__(self, message: str, *, code: str | None = None, fs_code: str | None = None,
                 path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fs_code = fs_code
        self.path = path


class Invalid(LocalError):
    """The request itself is wrong (a bad name, path, field or value)."""


class NotFound(LocalError):
    """The sprite, checkpoint, service or session does not exist."""


class Conflict(LocalError):
    """The request is fine but the sprite's state does not allow it now."""


class Forbidden(LocalError):
    """The request reaches outside what it may touch (a path escaping the sprite)."""


class OverLimit(LocalError):
    """The request is larger than a limit allows."""


class DiskLimitReached(LocalError):
    """The sprite's disk holds all its limit allows: the write would take it past it."""


class Unavailable(LocalError):
    """The sprite cannot serve it now (its sandbox is not running); retrying may work."""
