"""Checkpoint endpoints (reference section 8).

Create and restore run as tasks of their own that feed a queue; the NDJSON
response reads from it. A client that disconnects therefore never leaves a
checkpoint or a restore half done.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..domain import checkpoints as checkpointing
from ..errors import DISK_FULL, is_disk_full
from ..state import ServerState, state_of
from ..storage.store import checkpoint_json
from ..wire import query_bool, read_json_object, rfc3339
from .errors import ApiError
from .ndjson import ndjson_response

log = logging.getLogger("sprites_jupyter.local")

MAX_COMMENT = 4096

Emit = Callable[[str], None]
Completion = str | tuple[str, dict[str, Any]]
"""What work ends with: the ``complete`` event's text, or its text and further fields."""


def _event(kind: str, text: str) -> dict[str, Any]:
    key = "error" if kind == "error" else "data"
    return {"type": kind, key: text, "time": rfc3339()}


def _complete(result: Completion) -> dict[str, Any]:
    text, fields = (result, {}) if isinstance(result, str) else result
    return {**_event("complete", text), **fields}


def _stream(work: Callable[[Emit], Awaitable[Completion]], failure: str) -> Response:
    """Run ``work`` as its own task; stream its ``info`` lines, then complete or error.

    An exception ends the stream with an ``error`` event: ``failure`` and its message.
    """
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def emit(text: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, _event("info", text))

    async def run() -> None:
        try:
            result = await work(emit)
            loop.call_soon_threadsafe(queue.put_nowait, _complete(result))
        except Exception as exc:  # reported to the client as the stream's error event
            log.warning("%s", failure, exc_info=exc)
            loop.call_soon_threadsafe(queue.put_nowait,
                                      _event("error", f"{failure}: {_reason(exc)}"))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    task = loop.create_task(run())

    async def events() -> AsyncIterator[dict[str, Any]]:
        while (event := await queue.get()) is not None:
            yield event
        await task

    return ndjson_response(events())


def _reason(exc: Exception) -> str:
    """What went wrong, without the host paths an ``OSError`` carries."""
    if is_disk_full(exc):
        return DISK_FULL
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__


def _sprite(request: Request) -> tuple[ServerState, str]:
    server = state_of(request)
    name = request.path_params["name"]
    server.require_sprite(name)
    return server, name


def _current(server: ServerState, name: str) -> dict[str, Any]:
    sprite = server.store.get_sprite(name)
    assert sprite is not None
    return {"id": "Current", "create_time": rfc3339(), "source_id": sprite.source_id,
            "comment": "", "is_auto": False}


async def create_checkpoint(request: Request) -> Response:
    server, name = _sprite(request)
    body = await read_json_object(request, allow_empty=True)
    unknown = set(body) - {"comment"}
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}; "
                            'send {"comment": "..."} or {}')
    comment = body.get("comment") or ""
    if not isinstance(comment, str):
        raise ApiError(400, "comment must be a string")
    if len(comment) > MAX_COMMENT:
        raise ApiError(400, f"comment too long ({len(comment)} characters): keep it to "
                            f"{MAX_COMMENT}")

    async def work(emit: Emit) -> Completion:
        row = await checkpointing.take_checkpoint(server, name, comment, emit)
        # The new Checkpoint object too (SDKs ignore the field), so a client has it
        # without a GET: with its history, that GET cost half the creation's time.
        return (f"Checkpoint {row.id} created",
                {"checkpoint": checkpoint_json(row, with_history=True)})

    return _stream(work, "Checkpoint failed")


async def list_checkpoints(request: Request) -> Response:
    server, name = _sprite(request)
    include_auto = query_bool(request.query_params.get("includeAuto"), False)
    history_of = request.query_params.get("history")
    if history_of:
        checkpointing.require_checkpoint(server, name, history_of)
        hits = await asyncio.to_thread(server.store.descendants, name, history_of,
                                       include_auto=include_auto)
        return PlainTextResponse("".join(f"{hit}\n" for hit in hits))
    current = json.dumps(_current(server, name), separators=(",", ":")).encode()
    # Thousands of rows take SQLite milliseconds: off the loop, on the store's reader.
    listed = await asyncio.to_thread(server.store.checkpoints_json, name,
                                     include_auto=include_auto)
    return Response(b"[" + current + (b"," + listed[1:] if len(listed) > 2 else b"]"),
                    media_type="application/json")


async def get_checkpoint(request: Request) -> Response:
    server, name = _sprite(request)
    checkpoint_id = request.path_params["cp"]
    if checkpoint_id in checkpointing.LIVE_IDS:
        current = _current(server, name)
        source = server.store.get_checkpoint(name, current["source_id"])
        current["history"] = [*source.history, source.id] if source else []
        return JSONResponse(current)
    row = checkpointing.require_checkpoint(server, name, checkpoint_id)
    return JSONResponse(checkpoint_json(row, with_history=True))


async def delete_checkpoint(request: Request) -> Response:
    server, name = _sprite(request)
    await checkpointing.delete_checkpoint(server, name, request.path_params["cp"])
    return Response(status_code=204)


async def restore_checkpoint(request: Request) -> Response:
    server, name = _sprite(request)
    row = checkpointing.require_checkpoint(server, name, request.path_params["cp"])

    async def work(emit: Emit) -> str:
        await checkpointing.restore_checkpoint(server, name, row, emit)
        return f"Restored to {row.id}"

    return _stream(work, "Restore failed")
