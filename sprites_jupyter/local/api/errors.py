"""The one place that turns the server's errors into HTTP answers: each kind of
:class:`~..errors.LocalError` has its status here; handlers that must name a status
themselves (authentication, a route's own refusal) raise :class:`ApiError`."""

from __future__ import annotations

from starlette.responses import JSONResponse

from ..errors import (
    Conflict,
    DiskLimitReached,
    Forbidden,
    Invalid,
    LocalError,
    NotFound,
    OverLimit,
    Unavailable,
)

__all__ = ["ApiError", "error_response", "status_of"]

_STATUS: dict[type[LocalError], int] = {
    Invalid: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    OverLimit: 413,
    DiskLimitReached: 507,
    Unavailable: 503,
}

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


class ApiError(LocalError):
    """An error answered with ``status``, chosen by the handler that raises it."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 fs_code: str | None = None, path: str | None = None) -> None:
        super().__init__(message, code=code, fs_code=fs_code, path=path)
        self.status = status

    def response(self) -> JSONResponse:
        return error_response(self)


def status_of(error: LocalError) -> int:
    """The HTTP status that answers ``error``."""
    if isinstance(error, ApiError):
        return error.status
    return next((status for kind, status in _STATUS.items() if isinstance(error, kind)), 500)


def error_response(error: LocalError) -> JSONResponse:
    """``{"error": code, "message": text}`` with the error's status; filesystem errors in
    the reference's own shape (``error`` text, errno ``code``, ``path``)."""
    status = status_of(error)
    if error.fs_code is not None:
        body = {"error": error.message, "code": error.fs_code, "path": error.path}
    else:
        body = {"error": error.code or _DEFAULT_CODES.get(status, "error"),
                "message": error.message}
    return JSONResponse(body, status_code=status)
