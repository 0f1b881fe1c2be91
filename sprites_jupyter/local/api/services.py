"""Service endpoints (reference section 7): definitions, lifecycle streams, signals, logs.

Every check that can fail with a 4xx runs before the response starts; the
lifecycle work itself runs as a task of the supervisor (so a client that hangs up
does not abort a half-done stop) while the stream forwards its events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import LocalError
from ..runtime.services.definitions import check_name, parse_definition
from ..runtime.services.log_subscription import MAX_BATCH, Subscription
from ..runtime.services.process import Event, read_log, service_event
from ..runtime.services.supervisor import STOP_TIMEOUT, ServiceManager
from ..state import state_of
from ..wire import parse_duration, parse_signal, read_json_object
from .errors import ApiError
from .ndjson import ndjson_batches_response

_START_WINDOW = 5.0
_SERVICE_SIGNALS = ("TERM", "KILL", "INT", "HUP", "USR1", "USR2")
_MAX_LOG_LINES = 1_000_000
# A followed log also says when the service starts and stops (reference 7.2 types), so
# a log panel can tell a stop by request from a crash.
_LOG_EVENTS = {"stdout", "stderr", "exit", "error", "started", "stopping", "stopped"}
# After a send this large, a stream waits a moment so that the next one carries more: a
# flood is then a few large writes a second (each wakes the reader) rather than one per
# pipe read, and a trickle of output still goes out at once.
_LARGE_SEND = 64 * 1024
_GATHER_PAUSE = 0.01


def _manager(request: Request) -> ServiceManager:
    server = state_of(request)
    name = request.path_params["name"]
    server.require_sprite(name)
    return server.runtime(name).services


async def _settled_manager(request: Request) -> ServiceManager:
    """The manager, once any restore of the sprite has finished (it restarts services)."""
    manager = _manager(request)
    await state_of(request).runtime(request.path_params["name"]).settled()
    return manager


def _ended(state: dict[str, Any]) -> bool:
    """Stopped, or failed with no restart coming: nothing more will be logged."""
    return state["status"] in ("stopped", "failed") and "next_restart_at" not in state \
        and "pid" not in state


def _service(request: Request) -> str:
    return check_name(request.path_params["svc"])


def _complete(svc: str) -> Event:
    path = f"/.sprite/logs/services/{svc}.log"
    return service_event("complete", log_files={"combined": path, "stderr": path, "stdout": path})


async def _action_batches(subscription: Subscription, task: asyncio.Task[None]
                          ) -> AsyncIterator[list[Event]]:
    """The events queued while ``task`` runs, then those left when it has finished."""
    while not task.done():
        getter = asyncio.ensure_future(subscription.next_batch())
        try:
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            got = getter.done()
            if not got:
                getter.cancel()
        if got:
            yield getter.result()
    while not subscription.empty():
        yield subscription.take()


def _until_exit(batch: list[Event]) -> tuple[list[Event], bool]:
    """``batch`` up to and including its first ``exit`` event, and whether there was one."""
    for index, event in enumerate(batch):
        if event["type"] == "exit":
            return batch[:index + 1], True
    return batch, False


def _failure(task: asyncio.Task[None]) -> str | None:
    if task.cancelled():
        return "the operation was cancelled"
    exc = task.exception()
    if exc is None:
        return None
    return exc.message if isinstance(exc, LocalError) else f"internal error: {exc}"


async def _watch(manager: ServiceManager, svc: str, subscription: Subscription,
                 task: asyncio.Task[None] | None, window: float, *, quiet: bool = False,
                 until_exit: bool = True) -> AsyncIterator[list[Event]]:
    """Forward ``svc``'s events, in batches, while ``task`` runs, then for ``window`` seconds.

    The window ends early when the process exits (with ``until_exit``); ``complete``
    is always last. ``quiet`` drops the task's progress events (failures still show).
    """
    loop = asyncio.get_running_loop()
    try:
        if task is not None:
            async for batch in _action_batches(subscription, task):
                batch, exited = _until_exit(batch)
                if quiet:
                    batch = [event for event in batch if event["type"] in ("error", "exit")]
                if exited:
                    yield [*batch, _complete(svc)]
                    return
                yield batch
            failure = _failure(task)
            if failure is not None:
                yield [service_event("error", data=failure), _complete(svc)]
                return
        deadline = loop.time() + window
        while (remaining := deadline - loop.time()) > 0:
            try:
                batch = await asyncio.wait_for(subscription.next_batch(), remaining)
            except TimeoutError:
                break
            batch, exited = _until_exit(batch) if until_exit else (batch, False)
            yield batch
            if exited:
                break
            if sum(len(event.get("data") or "") for event in batch) >= _LARGE_SEND:
                await asyncio.sleep(_GATHER_PAUSE)
        yield [_complete(svc)]
    finally:
        manager.unsubscribe(svc, subscription)


def _stream(manager: ServiceManager, svc: str, action: Coroutine[Any, Any, None],
            window: float, *, quiet: bool = False) -> Response:
    """Subscribe, start ``action`` at once (it runs even if the client goes), stream."""
    subscription = manager.subscribe(svc)
    task = manager.spawn(action)
    return ndjson_batches_response(_watch(manager, svc, subscription, task, window, quiet=quiet))


async def list_services(request: Request) -> Response:
    return JSONResponse(_manager(request).list())


async def get_service(request: Request) -> Response:
    manager = _manager(request)
    return JSONResponse(manager.describe(manager.require(_service(request))))


async def put_service(request: Request) -> Response:
    manager = await _settled_manager(request)
    svc = _service(request)
    window = parse_duration(request.query_params.get("duration",
                                                     request.query_params.get("timeout")),
                            _START_WINDOW)
    definition = parse_definition(svc, await read_json_object(request))
    manager.save(definition)
    return _stream(manager, svc, manager.restart(svc), window, quiet=window == 0)


async def _start_like(request: Request,
                      action: Callable[[ServiceManager, str], Coroutine[Any, Any, None]]
                      ) -> Response:
    """start and restart: run ``action`` on an existing service, stream for ``duration``."""
    manager = await _settled_manager(request)
    svc = _service(request)
    window = parse_duration(request.query_params.get("duration"), _START_WINDOW)
    manager.require(svc)
    return _stream(manager, svc, action(manager, svc), window, quiet=window == 0)


async def start_service(request: Request) -> Response:
    return await _start_like(request, ServiceManager.start)


async def restart_service(request: Request) -> Response:
    return await _start_like(request, ServiceManager.restart)


async def stop_service(request: Request) -> Response:
    manager = _manager(request)
    svc = _service(request)
    timeout = parse_duration(request.query_params.get("timeout"), STOP_TIMEOUT, name="timeout")
    manager.check_stop(svc)
    return _stream(manager, svc, manager.stop(svc, timeout), 0)


async def delete_service(request: Request) -> Response:
    manager = _manager(request)
    svc = _service(request)
    await manager.delete(svc)
    return Response(status_code=204)


async def signal_service(request: Request) -> Response:
    manager = _manager(request)
    body = await read_json_object(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, 'missing name: send {"name": "<service>", "signal": "TERM"}')
    sig = parse_signal(body.get("signal"), allowed=_SERVICE_SIGNALS)
    await manager.signal(check_name(name), sig)
    return Response(status_code=204)


async def service_logs(request: Request) -> Response:
    manager = _manager(request)
    svc = _service(request)
    lines_text = request.query_params.get("lines")
    lines: int | None = None
    if lines_text:
        if not (lines_text.isascii() and lines_text.isdigit()) or len(lines_text) > 9 or int(
                lines_text) > _MAX_LOG_LINES:
            raise ApiError(400, f"invalid lines {lines_text[:40]!r}: give a whole number of "
                                f"lines, at most {_MAX_LOG_LINES}")
        lines = int(lines_text)
    window = parse_duration(request.query_params.get("duration"), 0.0)
    definition = manager.require(svc)
    backlog = await asyncio.to_thread(read_log, manager.log_path(svc), lines)
    subscription = manager.subscribe(svc)
    if _ended(manager.describe(definition)["state"]):
        window = 0.0  # following a stopped service: its log, and the end at once

    async def batches() -> AsyncIterator[list[Event]]:
        for start in range(0, len(backlog), MAX_BATCH):
            yield backlog[start:start + MAX_BATCH]
        async for batch in _watch(manager, svc, subscription, None, window, until_exit=False):
            yield [event for event in batch
                   if event["type"] in _LOG_EVENTS or event["type"] == "complete"]

    return ndjson_batches_response(batches())
