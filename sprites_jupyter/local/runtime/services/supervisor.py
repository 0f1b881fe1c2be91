"""The supervisor of one sprite's services: start in dependency order, stop, restart on crash.

Definitions are read from the sprite's platform directory (:class:`~.service_defs.DefinitionStore`)
whenever they are needed, so after a restore the supervisor sees the restored ones.
Lifecycle changes are serialised by one lock; ServiceLogEvents are broadcast to
whoever subscribed to a service (the streaming endpoints).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ...errors import Conflict, LocalError, NotFound
from ...storage.paths import SPRITE_HOME
from ...wire import rfc3339
from ..sandbox.machine import InitGone, Sandbox
from .definitions import DefinitionStore, ServiceDef, check_graph, start_order
from .log_subscription import Subscription
from .process import Event, ProcessGroups, ServiceProcess, service_event

log = logging.getLogger("sprites_jupyter.local.services")

STOP_TIMEOUT = 10.0
SIGNAL_WAIT = 10.0
BACKOFF_START = 0.5
BACKOFF_LIMIT = 30.0  # also how long a service must stay up for its backoff to start over
_SHUTDOWN_TIMEOUT = 3.0


@dataclass
class _Service:
    """What the supervisor knows about one service while the server runs."""

    name: str
    status: str = "stopped"
    process: ServiceProcess | None = None
    started_at: str | None = None
    error: str | None = None
    restart_count: int = 0
    next_restart_at: str | None = None
    restart_task: asyncio.Task[None] | None = None
    backoff: float = BACKOFF_START
    launched_at: float = 0.0
    last_exit: int | None = None
    halting: bool = field(default=False)

    @property
    def active(self) -> bool:
        """Running, or crashed with an automatic restart pending."""
        return self.process is not None or self.restart_task is not None

    def state_json(self) -> dict[str, Any]:
        state: dict[str, Any] = {"name": self.name, "status": self.status}
        if self.process is not None:
            state["pid"] = self.process.pid
        if self.started_at is not None:
            state["started_at"] = self.started_at
        if self.error is not None:
            state["error"] = self.error
        state["restart_count"] = self.restart_count
        if self.next_restart_at is not None:
            state["next_restart_at"] = self.next_restart_at
        return state


def _launch_error(exc: Exception, definition: ServiceDef) -> str:
    if isinstance(exc, InitGone):
        return exc.message
    if isinstance(exc, LocalError):
        return f"invalid dir {definition.dir}: {exc.message}"
    if isinstance(exc, OSError) and exc.filename not in (None, definition.cmd):
        return f"cannot use working directory {definition.dir or SPRITE_HOME}: {exc.strerror}"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"cannot run {definition.cmd}: {reason}"


class ServiceManager:
    """Runs a sprite's services from their on-disk definitions."""

    def __init__(self, sprite: str, sandbox: Sandbox) -> None:
        self.sprite = sprite
        self.sandbox = sandbox
        self.definitions = DefinitionStore(sandbox.files.platform)
        self._groups = (None if sandbox.isolation.sandboxed
                        else ProcessGroups(sandbox.files.scratch / "service-groups.json"))
        self._services: dict[str, _Service] = {}
        self._queues: dict[str, set[Subscription]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()

    # -- queries --------------------------------------------------------------

    def running(self) -> list[str]:
        """Names of services whose process is running."""
        return sorted(name for name, svc in self._services.items() if svc.process is not None)

    def require(self, name: str) -> ServiceDef:
        """The service's definition, or NotFound."""
        definition = self.definitions.load().get(name)
        if definition is None:
            raise NotFound(f"service not found: {name}")
        return definition

    def describe(self, definition: ServiceDef) -> dict[str, Any]:
        """The ServiceWithState object: the definition plus ``state``."""
        svc = self._services.get(definition.name) or _Service(definition.name)
        return {**definition.to_json(), "state": svc.state_json()}

    def list(self) -> list[dict[str, Any]]:
        return [self.describe(definition) for definition in self.definitions.load().values()]

    def log_path(self, name: str) -> Path:
        return self.definitions.log_file(name)

    def _alive(self, name: str) -> bool:
        svc = self._services.get(name)
        return svc is not None and svc.process is not None

    # -- events ---------------------------------------------------------------

    def subscribe(self, name: str) -> Subscription:
        """A bounded queue that receives the events of ``name`` from now on."""
        subscription = Subscription(f"/.sprite/logs/services/{name}.log")
        self._queues.setdefault(name, set()).add(subscription)
        return subscription

    def unsubscribe(self, name: str, subscription: Subscription) -> None:
        subscriptions = self._queues.get(name, set())
        subscriptions.discard(subscription)
        if not subscriptions:
            self._queues.pop(name, None)

    def _broadcast(self, name: str, event: Event) -> None:
        for subscription in self._queues.get(name, ()):
            subscription.put(event)

    def _broadcast_output(self, name: str, kind: str, text: str, stamp: int) -> None:
        """One read's output as one event (its ``data`` a chunk of lines, as the protocol
        allows), shared by every subscriber: a flood costs objects per read, not per line."""
        subscriptions = self._queues.get(name)
        if not subscriptions:
            return
        event = {"type": kind, "data": text, "timestamp": stamp}
        for subscription in subscriptions:
            subscription.put_output(event)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` to its end even if the request that asked for it goes away."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, LocalError):
                log.error("service task failed", exc_info=exc)

    # -- validation -----------------------------------------------------------

    def save(self, definition: ServiceDef) -> None:
        """Check ``needs`` and the HTTP port against the others, then store the definition."""
        others = {name: d for name, d in self.definitions.load().items() if name != definition.name}
        check_graph(definition, others)
        self.definitions.save(definition)

    def check_stop(self, name: str) -> None:
        """NotFound unknown; Conflict not running or needed by a running service."""
        definitions = self.definitions.load()
        if name not in definitions:
            raise NotFound(f"service not found: {name}")
        svc = self._services.get(name)
        if svc is None or not svc.active:
            raise Conflict(f"service is not running: {name}")
        for other in definitions.values():
            if name in other.needs and self._alive(other.name):
                raise Conflict(f"cannot stop service {name}: service {other.name} depends "
                               "on it and is running")

    def check_delete(self, name: str) -> None:
        """NotFound unknown; Conflict when another service needs it."""
        definitions = self.definitions.load()
        if name not in definitions:
            raise NotFound(f"service not found: {name}")
        for other in definitions.values():
            if name in other.needs:
                raise Conflict(f"service {other.name} depends on {name}")

    # -- lifecycle (public, each under the lock) -------------------------------

    async def start(self, name: str) -> None:
        """Start ``name`` and, first, what it needs; a running service is left alone."""
        async with self._lock:
            definitions = self.definitions.load()
            if name not in definitions:
                raise NotFound(f"service not found: {name}")
            self.definitions.set_stopped(name, False)
            await self._start_with_needs(name, definitions, frozenset())

    async def restart(self, name: str, timeout: float = STOP_TIMEOUT) -> None:
        """Stop ``name`` if it runs (announcing it), then start it from its definition."""
        async with self._lock:
            definitions = self.definitions.load()
            if name not in definitions:
                raise NotFound(f"service not found: {name}")
            svc = self._services.get(name)
            if svc is not None and svc.active:
                await self._halt(svc, timeout, announce=True)
            self.definitions.set_stopped(name, False)
            await self._start_with_needs(name, definitions, frozenset())

    async def stop(self, name: str, timeout: float = STOP_TIMEOUT) -> None:
        """Stop ``name`` and keep it stopped until it is started again."""
        async with self._lock:
            self.check_stop(name)
            self.definitions.set_stopped(name, True)
            await self._halt(self._services[name], timeout, announce=True)

    async def delete(self, name: str) -> None:
        """Stop ``name`` if it runs and remove its definition (its log file stays)."""
        async with self._lock:
            self.check_delete(name)
            svc = self._services.pop(name, None)
            if svc is not None and svc.active:
                await self._halt(svc, STOP_TIMEOUT, announce=False)
            self.definitions.delete(name)

    async def signal(self, name: str, sig: signal.Signals) -> None:
        """Signal the service's process group; for TERM/KILL wait (a while) for it to end."""
        self.require(name)
        svc = self._services.get(name)
        if svc is None or svc.process is None:
            raise Conflict(f"service is not running: {name}")
        process = svc.process
        process.signal(sig)
        if sig in (signal.SIGTERM, signal.SIGKILL):
            await process.wait(SIGNAL_WAIT)

    async def start_all(self) -> None:
        """Start every defined, not explicitly stopped service in dependency order."""
        async with self._lock:
            if not self.running() and self._groups is not None:
                await asyncio.to_thread(self._groups.kill_orphans)
            for svc in self._services.values():
                self._cancel_restart(svc)
            self._services = {n: s for n, s in self._services.items() if s.process is not None}
            definitions = self.definitions.load()
            for name in start_order(definitions):
                if not self.definitions.is_stopped(name):
                    await self._start_with_needs(name, definitions, frozenset())

    async def stop_all(self) -> None:
        """Stop every running service (dependents first), as before a restore."""
        await self._halt_all(STOP_TIMEOUT)

    async def shutdown(self) -> None:
        """Stop all processes when the server exits or the sprite is deleted."""
        await self._halt_all(_SHUTDOWN_TIMEOUT)

    # -- internals (callers hold the lock) -------------------------------------

    async def _halt_all(self, timeout: float) -> None:
        async with self._lock:
            order = start_order(self.definitions.load())
            names = order + sorted(set(self._services) - set(order))
            for name in reversed(names):
                svc = self._services.get(name)
                if svc is not None and svc.active:
                    await self._halt(svc, timeout, announce=False)

    async def _start_with_needs(self, name: str, definitions: dict[str, ServiceDef],
                                path: frozenset[str]) -> None:
        definition = definitions[name]
        for need in definition.needs:
            if need in definitions and need not in path:
                await self._start_with_needs(need, definitions, path | {name})
        svc = self._services.setdefault(name, _Service(name))
        if svc.process is None:
            await self._launch(svc, definition)

    async def _launch(self, svc: _Service, definition: ServiceDef) -> None:
        self._cancel_restart(svc)
        self.definitions.set_stopped(svc.name, False)
        svc.status, svc.error = "starting", None
        try:
            process = await ServiceProcess.launch(
                definition, self.sandbox, self.log_path(svc.name),
                emit=partial(self._broadcast_output, svc.name), on_exit=partial(self._exited, svc))
        except (OSError, LocalError) as exc:
            svc.status, svc.error = "failed", _launch_error(exc, definition)
            self._broadcast(svc.name, service_event("error", data=svc.error))
            self._broadcast(svc.name, service_event("exit", exit_code=1))
            return
        svc.process, svc.status = process, "running"
        svc.started_at, svc.launched_at = rfc3339(), time.monotonic()
        if self._groups is not None:
            self._groups.add(svc.name, process.pid)
        self._broadcast(svc.name, service_event("started"))

    def _exited(self, svc: _Service, process: ServiceProcess) -> None:
        """Called when a process has ended: a crash unless the supervisor stopped it."""
        if self._groups is not None:
            self._groups.remove(svc.name, process.pid)
        if svc.process is not process:
            return
        svc.process, svc.last_exit = None, process.exit_code
        if svc.halting:
            return
        svc.status = "failed"
        svc.error = process.ended_by or f"exited with code {process.exit_code}"
        self._broadcast(svc.name, service_event("exit", exit_code=process.exit_code))
        if time.monotonic() - svc.launched_at >= BACKOFF_LIMIT:
            svc.backoff = BACKOFF_START
        delay, svc.backoff = svc.backoff, min(svc.backoff * 2, BACKOFF_LIMIT)
        svc.next_restart_at = rfc3339(time.time() + delay)
        svc.restart_task = self.spawn(self._restart_later(svc, delay))

    async def _restart_later(self, svc: _Service, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self._lock:
            if svc.restart_task is not asyncio.current_task():
                return
            svc.restart_task = svc.next_restart_at = None
            definitions = self.definitions.load()
            if svc.name not in definitions or self._services.get(svc.name) is not svc:
                return
            svc.restart_count += 1
            await self._start_with_needs(svc.name, definitions, frozenset())

    def _cancel_restart(self, svc: _Service) -> None:
        if svc.restart_task is not None:
            svc.restart_task.cancel()
        svc.restart_task = svc.next_restart_at = None

    async def _halt(self, svc: _Service, timeout: float, *, announce: bool) -> None:
        self._cancel_restart(svc)
        if announce:
            self._broadcast(svc.name, service_event("stopping"))
        process = svc.process
        if process is not None:
            svc.status, svc.halting = "stopping", True
            try:
                await process.terminate(timeout)
            finally:
                svc.halting = False
        svc.status, svc.error = "stopped", None
        if announce:
            self._broadcast(svc.name, service_event("stopped", exit_code=svc.last_exit))
