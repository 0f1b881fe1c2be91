"""The local Sprites server's ASGI app: the route table, auth and error handling.

Handlers live in ``api/`` by resource and call into plain objects
(:class:`~.store.Store`, :class:`~.snapshots.Snapshotter`, the session and
service managers) reached through :func:`~.state.state_of`.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from ..errors import DISK_FULL, LocalError, is_disk_full
from ..runtime.egress.addresses import PrivateAllowance
from ..runtime.sandbox.machine import Isolation
from ..state import ServerState
from ..wire import SERVER_VERSION
from . import checkpoints, control, exec, fs, policy, proxy, services, sprites
from .errors import ApiError, error_response
from .sprite_url import SpriteUrlRouter, mint_login_link

log = logging.getLogger("sprites_jupyter.local")

S = "/v1/sprites/{name}"

ROUTES = [
    Route("/v1/sprites", sprites.create_sprite, methods=["POST"]),
    Route("/v1/sprites", sprites.list_sprites, methods=["GET"]),
    Route(S, sprites.get_sprite, methods=["GET"]),
    Route(S, sprites.update_sprite, methods=["PUT"]),
    Route(S, sprites.delete_sprite, methods=["DELETE"]),
    Route(f"{S}/upgrade", sprites.upgrade_sprite, methods=["POST"]),
    # exec (section 3, 4): HTTP and WebSocket routes share paths by scope type
    WebSocketRoute(f"{S}/exec", exec.exec_socket),
    Route(f"{S}/exec", exec.list_sessions, methods=["GET", "HEAD"]),
    Route(f"{S}/exec", exec.http_exec, methods=["POST"]),
    WebSocketRoute(f"{S}/exec/{{sid}}", exec.attach_socket),
    Route(f"{S}/exec/{{sid}}", exec.get_session, methods=["GET"]),
    Route(f"{S}/exec/{{sid}}/kill", exec.kill_session, methods=["POST"]),
    WebSocketRoute(f"{S}/control", control.control_socket),
    # filesystem (section 6)
    Route(f"{S}/fs/read", fs.read_file, methods=["GET"]),
    Route(f"{S}/fs/write", fs.write_file, methods=["PUT"]),
    Route(f"{S}/fs/list", fs.list_files, methods=["GET"]),
    Route(f"{S}/fs/delete", fs.delete_files, methods=["DELETE"]),
    Route(f"{S}/fs/rename", fs.rename_file, methods=["POST"]),
    Route(f"{S}/fs/copy", fs.copy_files, methods=["POST"]),
    Route(f"{S}/fs/chmod", fs.chmod_files, methods=["POST"]),
    Route(f"{S}/fs/chown", fs.chown_files, methods=["POST"]),
    # services (section 7); /services/signal before /services/{svc}
    Route(f"{S}/services", services.list_services, methods=["GET"]),
    Route(f"{S}/services/signal", services.signal_service, methods=["POST"]),
    Route(f"{S}/services/{{svc}}", services.get_service, methods=["GET"]),
    Route(f"{S}/services/{{svc}}", services.put_service, methods=["PUT"]),
    Route(f"{S}/services/{{svc}}", services.delete_service, methods=["DELETE"]),
    Route(f"{S}/services/{{svc}}/start", services.start_service, methods=["POST"]),
    Route(f"{S}/services/{{svc}}/stop", services.stop_service, methods=["POST"]),
    Route(f"{S}/services/{{svc}}/restart", services.restart_service, methods=["POST"]),
    Route(f"{S}/services/{{svc}}/logs", services.service_logs, methods=["GET"]),
    # checkpoints (section 8); /checkpoint creates, /checkpoints lists
    Route(f"{S}/checkpoint", checkpoints.create_checkpoint, methods=["POST"]),
    Route(f"{S}/checkpoints", checkpoints.list_checkpoints, methods=["GET"]),
    Route(f"{S}/checkpoints/{{cp}}", checkpoints.get_checkpoint, methods=["GET"]),
    Route(f"{S}/checkpoints/{{cp}}", checkpoints.delete_checkpoint, methods=["DELETE"]),
    Route(f"{S}/checkpoints/{{cp}}/restore", checkpoints.restore_checkpoint, methods=["POST"]),
    # network policy (section 9) and the TCP proxy (section 10)
    Route(f"{S}/policy/network", policy.get_policy, methods=["GET"]),
    Route(f"{S}/policy/network", policy.set_policy, methods=["POST"]),
    WebSocketRoute(f"{S}/proxy", proxy.proxy_socket),
    # the sprite URL's one-time sign-in links (local server only)
    Route(f"{S}/url/login", mint_login_link, methods=["POST"]),
]


def _own_host(host: bytes, address: str | None) -> bool:
    """Whether a ``Host`` header names this machine: a loopback address, ``localhost``,
    ``*.localhost`` (any port), or the very address the request came in on (a server on
    ``--host 0.0.0.0`` reached by IP: an address literal cannot be rebound). Any other
    name may be a DNS-rebinding page in a browser."""
    name = host.decode("latin-1").strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    name = name.removesuffix(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        named = ipaddress.ip_address(name)
    except ValueError:
        return False
    if named.is_loopback:
        return True
    try:
        return address is not None and named == ipaddress.ip_address(address)
    except ValueError:
        return False


def _bearer(header: bytes) -> bytes:
    """The token of an ``Authorization: Bearer …`` header (scheme case-insensitive)."""
    scheme, _, credentials = header.strip().partition(b" ")
    return credentials.strip() if scheme.lower() == b"bearer" else b""


class BearerAuth:
    """Every HTTP request and WebSocket upgrade needs ``Authorization: Bearer <token>``
    and a ``Host`` that names this machine (see :func:`_own_host`).

    Also stamps ``Sprite-Version`` on every HTTP response, as the real server does, and
    ``Sprite-Local-Isolation`` (``sandbox`` or ``unsandboxed: REASON``) and, sandboxed,
    ``Sprite-Local-Limits`` (what each sprite may use), which ``%sprite`` shows.
    """

    def __init__(self, app: ASGIApp, token: str, isolation: str = "sandbox",
                 limits: str = "") -> None:
        self.app = app
        self.expected = token.encode()
        self.isolation = isolation.encode()
        self.limits = limits.encode("ascii", "replace")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host")
        denial = None
        if host is not None and not _own_host(host, (scope.get("server") or (None,))[0]):
            denial = ApiError(403, f"refused Host {host.decode('latin-1')[:100]!r}: the local "
                                   "server answers only localhost, *.localhost, loopback "
                                   "addresses and its own address (DNS rebinding protection)")
        elif not hmac.compare_digest(_bearer(headers.get(b"authorization", b"")),
                                     self.expected):
            denial = ApiError(401, "missing or invalid token: send Authorization: Bearer <token>")
        if denial is not None:
            if scope["type"] == "websocket":
                await WebSocket(scope, receive, send).send_denial_response(denial.response())
            else:
                await denial.response()(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"sprite-version", SERVER_VERSION.encode()))
                headers.append((b"sprite-local-isolation", self.isolation))
                if self.limits:
                    headers.append((b"sprite-local-limits", self.limits))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_version)


async def _refusal(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, LocalError)
    return error_response(exc)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return ApiError(404, "no such endpoint: see the Sprites API reference").response()
    return ApiError(exc.status_code, str(exc.detail)).response()


async def _unexpected(_: Request, exc: Exception) -> Response:
    """507 for a full disk; 500 otherwise. Both close the connection: Starlette re-raises
    the exception after this answer, and uvicorn then drops the connection, so say so."""
    if is_disk_full(exc):
        log.warning("disk full: %s", exc)
        response = ApiError(507, DISK_FULL).response()
    else:
        log.exception("internal error", exc_info=exc)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        response = JSONResponse({"error": "internal_error",
                                 "message": f"internal error: {reason}"}, status_code=500)
    response.headers["Connection"] = "close"
    return response


def create_app(home: Path, token: str, *, base_url: str = "http://127.0.0.1",
               isolation: Isolation | None = None,
               private_allowed: PrivateAllowance | None = None) -> ASGIApp:
    """The ASGI app serving the sprites under ``home``, guarded by ``token``; requests
    for ``NAME.localhost`` go to the sprite's URL instead. Sprites run in sandboxes when
    ``isolation`` has a bubblewrap, else on the host; their egress may reach the private
    hosts of ``private_allowed``."""
    server = ServerState(home, token, isolation, private_allowed)
    server.base_url = base_url

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.startup()
        try:
            yield
        finally:
            await server.shutdown()

    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        exception_handlers={
            LocalError: _refusal,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.server = server
    return SpriteUrlRouter(BearerAuth(app, token, server.isolation.describe(),
                                      server.isolation.limits_notice()), server)


def server_state(app: ASGIApp) -> ServerState:
    """The :class:`ServerState` behind an app made by :func:`create_app`."""
    assert isinstance(app, SpriteUrlRouter)
    return app.server
