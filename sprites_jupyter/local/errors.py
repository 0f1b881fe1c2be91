"""The one exception handlers raise to answer with an HTTP error."""

from __future__ import annotations

import errno
import sqlite3

from starlette.responses import JSONResponse

DISK_FULL = ("the disk holding the local server's data is full: free some space, then retry")

_DEFAULT_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    500: "internal_error",
    503: "unavailable",
    507: "insufficient_storage",
}


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


class ApiError(Exception):
    """An error answered as ``{"error": code, "message": text}`` with ``status``.

    Filesystem errors use the reference's own shape (``error`` text, errno ``code``,
    ``path``); pass ``fs_code`` and ``path`` for those.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        fs_code: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _DEFAULT_CODES.get(status, "error")
        self.fs_code = fs_code
        self.path = path

    def response(self) -> JSONResponse:
        if self.fs_code is not None:
            body = {"error": self.message, "code": self.fs_code, "path": self.path}
        else:
            body = {"error": self.code, "message": self.message}
        return JSONResponse(body, status_code=self.status)
