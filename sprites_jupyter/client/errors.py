"""The client's exception hierarchy, and how an HTTP error response becomes one of them.

Every error's ``str()`` is one readable line; none of them ever contains the token.
"""

from __future__ import annotations

import email.utils
import html
import json
import re
from datetime import UTC, datetime

import httpx

_MAX_MESSAGE = 300
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def one_line(text: str, limit: int = _MAX_MESSAGE) -> str:
    """Collapse whitespace and shorten, so a message always fits on one line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SpritesError(Exception):
    """Root of every error this client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))

    @property
    def message(self) -> str:
        return str(self)


class HTTPStatusError(SpritesError):
    """The server answered with an error status; ``status``, ``code`` and ``body`` say how."""

    def __init__(self, message: str, *, status: int, code: str | None = None,
                 body: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = body


class AuthError(HTTPStatusError):
    """401/403: the token is missing, wrong, or not allowed to do this."""


class NotFound(HTTPStatusError):
    """404 (or 410 for an exec session that already exited)."""


class Conflict(HTTPStatusError):
    """409: the name exists, a dependency is running, the resource is in use."""


class InvalidRequest(HTTPStatusError):
    """400 and other 4xx: the request was refused; the message is the server's."""


class RateLimited(HTTPStatusError):
    """429: too many requests; ``retry_after`` seconds, when the server said."""

    def __init__(self, message: str, *, status: int, code: str | None = None,
                 body: object = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status, code=code, body=body)
        self.retry_after = retry_after


class ServerError(HTTPStatusError):
    """5xx: the server (or a proxy in front of it) failed."""


class ConnectionFailed(SpritesError):
    """The server could not be reached, or the connection broke or timed out."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class ExecError(SpritesError):
    """A command exited non-zero (``run(check=True)``)."""

    def __init__(self, command: str, exit_code: int, stdout_tail: str, stderr_tail: str) -> None:
        last = (stderr_tail or stdout_tail).strip().splitlines()
        detail = f": {last[-1]}" if last else ""
        super().__init__(f"command {command!r} exited with code {exit_code}{detail}")
        self.exit_code = exit_code
        self.stdout_tail = stdout_tail
        self.stderr_tail = stderr_tail


class ExecTimeout(SpritesError, TimeoutError):
    """A command did not finish within its timeout (it was killed)."""


class ProtocolError(SpritesError):
    """The server spoke something other than the Sprites protocol (bad line, cut stream)."""


class StreamError(SpritesError):
    """A stream reported an ``error`` event; ``event`` is that event."""

    def __init__(self, message: str, event: object = None) -> None:
        super().__init__(message)
        self.event = event


_BY_STATUS: dict[int, type[HTTPStatusError]] = {
    400: InvalidRequest, 401: AuthError, 403: AuthError, 404: NotFound, 409: Conflict,
    410: NotFound, 429: RateLimited,
}


def _body_message(response: httpx.Response) -> tuple[str, str | None, object]:
    """The human message, the machine code and the parsed body of an error response."""
    text = response.text
    try:
        body = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("error")
        code = body.get("code") if "message" not in body else body.get("error")
        if isinstance(message, str) and message:
            return message, code if isinstance(code, str) else None, body
    if "<html" in text[:500].lower() or "<!doctype" in text[:200].lower():
        title = _TITLE.search(text)
        shown = html.unescape(title.group(1)) if title else response.reason_phrase
        return f"the server answered with an HTML page ({one_line(shown, 80)})", None, text
    if text.strip():
        return text.strip(), None, body if body is not None else text
    return f"API error (status {response.status_code})", None, body


def error_for_response(response: httpx.Response, *, what: str, secret: str = "",
                       conflict_words: tuple[str, ...] = ()) -> HTTPStatusError:
    """Map an error response to its exception class with a one-line message.

    ``conflict_words`` turns a 400 whose message contains one of them into
    :class:`Conflict` (older servers answered a duplicate sprite name with 400).
    ``secret`` (the token) is blanked out should the server ever echo it.
    """
    status = response.status_code
    message, code, body = _body_message(response)
    if secret:
        message = message.replace(secret, "***")
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else InvalidRequest
    if status == 400 and any(word in message.lower() for word in conflict_words):
        cls = Conflict
    text = f"{what}: {message} (HTTP {status})"
    if cls is RateLimited or code in RATE_LIMIT_CODES:
        seconds = _retry_after(response, body)
        when = f"retry in {seconds:g} s" if seconds is not None else "retry later"
        reason = "" if message.lower().startswith("rate limit") else f" ({message})"
        text = f"{what}: rate limited{reason}: {when} (HTTP {status})"
        return RateLimited(text, status=status, code=code, body=body, retry_after=seconds)
    return cls(text, status=status, code=code, body=body)


RATE_LIMIT_CODES = ("sprite_creation_rate_limited", "concurrent_sprite_limit_exceeded")
"""The codes sprites-go names (``ErrCodeCreationRateLimited``, ``…ConcurrentLimitExceeded``)."""


def _retry_after(response: httpx.Response, body: object) -> float | None:
    """``retry_after_seconds`` from the body, else the ``Retry-After`` header (seconds or
    an HTTP date), as sprites-go prefers them."""
    value = body.get("retry_after_seconds") if isinstance(body, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    header = response.headers.get("retry-after", "").strip()
    if not header:
        return None
    try:
        return max(float(header), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(round((moment - datetime.now(UTC)).total_seconds()), 0)
