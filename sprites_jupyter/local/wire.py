"""Small wire-format helpers shared by the local server's handlers and its runtime.

Time stamps, Go-style durations, signal names, JSON bodies and NDJSON lines are spelled
the same way across every endpoint of the reference, so they live here once (free of
Starlette: the streaming responses are in ``api/ndjson.py``).
"""

from __future__ import annotations

import json
import math
import re
import signal as _signal
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .errors import Invalid, OverLimit

SERVER_VERSION = "v0.0.1-rc46"

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

# The longest duration Go can express (int64 nanoseconds), as the real service parses them.
MAX_DURATION = (2**63 - 1) / 1e9
MAX_JSON_BODY = 1024 * 1024
MAX_JSON_DEPTH = 32

_ALLOWED_SIGNALS = ("HUP", "INT", "QUIT", "KILL", "TERM", "USR1", "USR2", "STOP", "CONT", "WINCH")


def rfc3339(ts: float | None = None) -> str:
    """Format a Unix time (default: now) as RFC 3339 UTC with a ``Z`` suffix."""
    moment = datetime.now(UTC) if ts is None else datetime.fromtimestamp(ts, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def now_ms() -> int:
    """The current Unix time in milliseconds, as service log events carry it."""
    return int(datetime.now(UTC).timestamp() * 1000)


def parse_duration(text: str | None, default: float, *, name: str = "duration") -> float:
    """Parse a Go duration string (``5s``, ``1m30s``, ``1.5s``, ``0``) into seconds.

    A bare number is read as seconds, which is what hand-written URLs tend to send.
    """
    if text is None or text == "":
        return default
    text = text.strip()
    usage = f"use a Go duration such as 5s, 1.5s or 1m30s (at most {MAX_DURATION / 3600:.0f}h)"
    try:
        total = float(text)
        total = max(0.0, total) if math.isfinite(total) else total
    except ValueError:
        pos, total = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or pos == 0:
            raise Invalid(f"invalid {name} {text[:40]!r}: {usage}") from None
    if not math.isfinite(total) or total > MAX_DURATION:
        raise Invalid(f"invalid {name} {text[:40]!r}: {usage}")
    return total


def parse_signal(text: object, *, allowed: tuple[str, ...] = _ALLOWED_SIGNALS) -> _signal.Signals:
    """Parse a signal given as ``TERM``, ``SIGTERM``, ``sigterm`` or ``15``."""
    if isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit()):
        try:
            sig = _signal.Signals(int(text))
        except ValueError:
            raise Invalid(f"unknown signal {text!r}") from None
        if sig.name.removeprefix("SIG") in allowed:
            return sig
        raise Invalid(f"unknown signal {text!r}")
    if not isinstance(text, str) or not text.strip():
        raise Invalid("missing signal: give a name such as TERM or INT")
    name = text.strip().upper().removeprefix("SIG")
    if name not in allowed:
        raise Invalid(f"unknown signal {text!r}: use one of {', '.join(allowed)}")
    return _signal.Signals[f"SIG{name}"]


def query_bool(value: str | None, default: bool) -> bool:
    """Read ``true``/``false``/``1``/``0`` from a query parameter."""
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise Invalid(f"invalid boolean {value!r}: use true or false")


async def read_body(request: Any, limit: int, rule: str) -> bytes:
    """The whole request body, refused as OverLimit (``request body too large: RULE``) as soon
    as it is declared or found to be over ``limit`` bytes, before the rest is read."""
    too_large = OverLimit(f"request body too large: {rule}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: Any, *, allow_empty: bool = False) -> dict[str, Any]:
    """Read a request body that must be a JSON object; Invalid with a clear message otherwise.

    Bodies over :data:`MAX_JSON_BODY` bytes are refused (OverLimit) before they are all read,
    and values nested deeper than :data:`MAX_JSON_DEPTH` as Invalid.
    """
    body = await read_body(request, MAX_JSON_BODY,
                           f"JSON bodies are limited to {MAX_JSON_BODY // 1024} KiB")
    if not body.strip():
        if allow_empty:
            return {}
        raise Invalid("request body is empty: send a JSON object")
    too_deep = Invalid(f"invalid JSON body: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Invalid(f"invalid JSON body: {exc}") from None
    except RecursionError:
        raise too_deep from None
    if not isinstance(value, dict):
        raise Invalid("request body must be a JSON object")
    if _depth(value) > MAX_JSON_DEPTH:
        raise too_deep
    return value


def _depth(value: object) -> int:
    """How deeply ``value`` nests lists and objects (iteratively: no recursion limit)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(
            item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        pending.extend((child, level + 1) for child in children)
    return deepest


def reject_unknown_fields(body: Mapping[str, Any], known: set[str], *, what: str) -> None:
    """Strict endpoints refuse fields they do not know, naming them."""
    unknown = sorted(set(body) - known)
    if unknown:
        raise Invalid(f"unknown field(s) in {what}: {', '.join(unknown)}")


def ndjson_line(event: Mapping[str, Any]) -> bytes:
    """Encode one NDJSON line."""
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"
