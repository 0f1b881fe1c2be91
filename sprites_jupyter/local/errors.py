"""The one exception handlers raise to answer with an HTTP error."""

from __future__ import annotations

from starlette.responses import JSONResponse

_DEFAULT_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    410: "gone",
    500: "internal_error",
    503: "unavailable",
}


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
