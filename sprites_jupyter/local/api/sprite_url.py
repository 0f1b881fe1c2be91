"""The sprite URL on the local server: ``http://NAME.localhost:PORT/`` reaches the sprite's app.

Browsers resolve ``*.localhost`` to loopback, so every sprite gets a URL on the
server's own port, told apart by the ``Host`` header. Requests are proxied (HTTP
streamed both ways, WebSocket upgrades relayed) to the sprite's HTTP service: the
service with ``http_port``, else port 8080. Nothing is started on demand; when
nothing listens the answer is a 502 page naming the port.

Auth follows ``url_settings.auth`` as on the real service: ``public`` serves
anyone who reaches the port; ``sprite`` needs the server token, as a Bearer header
or as a cookie set by a one-time sign-in link (minted by ``POST …/url/login``).
Neither the token nor that cookie is passed on to the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import re
import secrets
import time
from collections.abc import Coroutine, Iterable
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import h11
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from ..state import ServerState, SpriteRuntime, state_of
from .sprite_url_ws import relay_websocket

DEFAULT_PORT = 8080
COOKIE = "sprites_local_url_auth"
# The same credential for the app embedded in another site's page (an IFrame in a
# notebook): there browsers keep only partitioned (CHIPS) SameSite=None cookies, which must
# be Secure (allowed on http://*.localhost). The Lax one serves browsers that refuse it.
EMBED_COOKIE = "sprites_local_url_auth_embed"
LOGIN_PATH = "/.sprites/login"
TICKET_LIFETIME = 300
DIAL_TIMEOUT = 10.0
READ_SIZE = 256 * 1024

_HOST = re.compile(rb"^([a-z0-9][a-z0-9-]{0,62})\.localhost\.?(?::\d{1,5})?$")
# Hop-by-hop headers (RFC 9110 section 7.6.1): they describe one connection, not the message.
_HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization",
               b"proxy-authenticate", b"te", b"trailer", b"upgrade"}
# Set on every response by the server itself; the app's copies would repeat them.
_OWN_RESPONSE_HEADERS = {b"transfer-encoding", b"date", b"server"}

Headers = list[tuple[bytes, bytes]]


def sprite_url(base_url: str, name: str) -> str:
    """The sprite's URL on the server reached at ``base_url``."""
    return f"http://{name}.localhost:{urlsplit(base_url).port}/"


def _host_sprite(scope: Scope) -> str | None:
    host = dict(scope["headers"]).get(b"host", b"").lower()
    match = _HOST.match(host)
    return match.group(1).decode() if match else None


class SpriteUrlRouter:
    """Sends requests whose ``Host`` is ``NAME.localhost[:port]`` to the sprite, the rest on."""

    def __init__(self, api: ASGIApp, server: ServerState) -> None:
        self.api = api
        self.server = server
        self._redeemed: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = _host_sprite(scope) if scope["type"] in ("http", "websocket") else None
        if name is None:
            await self.api(scope, receive, send)
            return
        answer = await self._refusal(name, scope)
        if answer is not None:
            await _answer(answer, scope, receive, send)
            return
        runtime = self.server.runtime(name)
        port = await _http_port(runtime)
        headers = _forwarded_headers(scope, self.server.token)
        try:
            reader, writer = await asyncio.wait_for(runtime.open_connection(port), DIAL_TIMEOUT)
        except (OSError, TimeoutError) as error:
            await _answer(_nothing_listening(runtime, port, error), scope, receive, send)
            return
        try:
            if scope["type"] == "websocket":
                refused = _page(502, "No WebSocket", f"The app on port {port} in sprite {name} "
                                "did not accept the WebSocket upgrade.")
                await relay_websocket(WebSocket(scope, receive, send), reader, writer,
                                      headers, refused)
            else:
                not_http = _page(502, "Bad answer from the app", f"The app on port {port} in "
                                 f"sprite {name} did not answer with HTTP.")
                await _proxy_http(scope, receive, send, reader, writer, headers, not_http)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _refusal(self, name: str, scope: Scope) -> Response | None:
        """The answer when the request must not reach the app (unknown sprite, no auth,
        a sign-in link), else None."""
        row = self.server.store.get_sprite(name)
        if row is None:
            return _page(404, "No such sprite", f"There is no sprite named {name} on this "
                         "server: %sprite list shows the sprites.")
        if scope["path"] == LOGIN_PATH and scope["type"] == "http":
            return self._sign_in(row.id, scope)
        if row.url_settings.get("auth") == "public" or _authorised(scope, self.server.token,
                                                                   row.id):
            return None
        return _page(401, "Sign-in needed",
                     f"The URL of sprite {name} is private. Open the one-time link that "
                     "%sprite open prints, send Authorization: Bearer TOKEN, or make the URL "
                     "public with %sprite url --public.")

    def _sign_in(self, sprite_id: str, scope: Scope) -> Response:
        ticket = Request(scope).query_params.get("ticket", "")
        now = time.time()
        self._redeemed = {t: until for t, until in self._redeemed.items() if until > now}
        expires = _ticket_expiry(ticket, self.server.token, sprite_id)
        if expires is None or expires < now or ticket in self._redeemed:
            return _page(403, "Sign-in link used up",
                         "This sign-in link has expired or was already used: run %sprite "
                         "open again for a new one.")
        self._redeemed[ticket] = expires
        response = RedirectResponse("/", status_code=303)
        value = _cookie_value(self.server.token, sprite_id)
        response.set_cookie(COOKIE, value, httponly=True, samesite="lax")
        response.headers.append("set-cookie", f"{EMBED_COOKIE}={value}; HttpOnly; Path=/; "
                                              "SameSite=None; Secure; Partitioned")
        return response


async def mint_login_link(request: Request) -> Response:
    """``POST /v1/sprites/{name}/url/login`` (local server only): a one-time sign-in link
    that sets the sprite URL's cookie in the browser that opens it."""
    server = state_of(request)
    row = server.require_sprite(request.path_params["name"])
    expires = int(time.time()) + TICKET_LIFETIME
    nonce = secrets.token_hex(16)
    ticket = f"{expires}.{nonce}.{_sign(server.token, f'login:{row.id}:{expires}:{nonce}')}"
    url = f"{sprite_url(server.base_url, row.name)}{LOGIN_PATH[1:]}?ticket={ticket}"
    return JSONResponse({"url": url, "expires_in": TICKET_LIFETIME})


def _sign(token: str, text: str) -> str:
    return hmac.new(token.encode(), text.encode(), hashlib.sha256).hexdigest()


def _cookie_value(token: str, sprite_id: str) -> str:
    return _sign(token, f"cookie:{sprite_id}")


def _ticket_expiry(ticket: str, token: str, sprite_id: str) -> int | None:
    """When a well-signed ticket for this sprite expires; None for any other string."""
    expires, _, rest = ticket.partition(".")
    nonce, _, signature = rest.partition(".")
    if not expires.isdigit() or not nonce:
        return None
    expected = _sign(token, f"login:{sprite_id}:{expires}:{nonce}")
    return int(expires) if hmac.compare_digest(signature, expected) else None


def _cookies(headers: Iterable[tuple[bytes, bytes]]) -> SimpleCookie:
    jar = SimpleCookie()
    for key, value in headers:
        if key == b"cookie":
            with contextlib.suppress(CookieError):
                jar.load(value.decode("latin-1"))
    return jar


def _is_token(authorization: bytes, token: str) -> bool:
    """Whether an ``Authorization`` value is ``Bearer <token>`` (scheme in any case)."""
    scheme, _, value = authorization.strip().partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), token.encode())


def _authorised(scope: Scope, token: str, sprite_id: str) -> bool:
    headers = scope["headers"]
    if _is_token(dict(headers).get(b"authorization", b""), token):
        return True
    expected = _cookie_value(token, sprite_id)
    jar = _cookies(headers)
    return any(name in jar and hmac.compare_digest(jar[name].value, expected)
               for name in (COOKIE, EMBED_COOKIE))


def _forwarded_headers(scope: Scope, token: str) -> Headers:
    """The request's end-to-end headers for the app, without our token and cookie,
    plus ``X-Forwarded-*``."""
    headers: Headers = scope["headers"]
    named = {name.strip().lower() for key, value in headers if key == b"connection"
             for name in value.split(b",")}
    kept: Headers = []
    for key, value in headers:
        if key in _HOP_BY_HOP or key in named or (key == b"authorization"
                                                  and _is_token(value, token)):
            continue
        if key == b"cookie":
            others = [part for part in value.split(b";")
                      if part.strip().partition(b"=")[0].decode("latin-1")
                      not in (COOKIE, EMBED_COOKIE)]
            if not others:
                continue
            value = b";".join(others).strip()
        kept.append((key, value))
    client = scope.get("client")
    if client:
        kept.append((b"x-forwarded-for", client[0].encode()))
    kept.append((b"x-forwarded-proto", b"http"))
    kept.append((b"x-forwarded-host", dict(headers).get(b"host", b"")))
    return kept


async def _http_port(runtime: SpriteRuntime) -> int:
    definitions = await asyncio.to_thread(runtime.services.definitions.load)
    ports = [d.http_port for d in definitions.values() if d.http_port is not None]
    return ports[0] if ports else DEFAULT_PORT


def _page(status: int, title: str, message: str) -> HTMLResponse:
    """A small HTML page for a person in a browser; the first paragraph says what to do."""
    body = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title></head><body><h1>{status} {html.escape(title)}</h1>"
            f"<p>{html.escape(message)}</p><hr><p>Sprites local server</p></body></html>")
    return HTMLResponse(body, status_code=status)


def _nothing_listening(runtime: SpriteRuntime, port: int, error: Exception) -> HTMLResponse:
    """The 502 page: which port of which sprite has no app answering."""
    return _page(502, "Nothing is listening",
                 f"Nothing is listening on port {port} in sprite {runtime.name} ({error}). "
                 f"Start your app on port {port}, or create a service with --port PORT "
                 "(%sprite service create NAME --port PORT -- CMD).")


async def _answer(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await WebSocket(scope, receive, send).send_denial_response(response)
    else:
        await response(scope, receive, send)


async def _proxy_http(scope: Scope, receive: Receive, send: Send,
                      reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      headers: Headers, not_http: Response) -> None:
    conn = h11.Connection(h11.CLIENT)
    target = scope.get("raw_path") or scope["path"].encode()
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    try:
        request = h11.Request(method=scope["method"], target=target,
                              headers=[*headers, (b"connection", b"close")])
        writer.write(conn.send(request))
    except h11.LocalProtocolError as error:
        await _page(400, "Request not passed on", f"This request cannot be passed on to the "
                    f"app: {error}.")(scope, receive, send)
        return
    if await _send_body(conn, receive, writer):
        await _until_disconnect(receive, _relay_response(conn, reader, send, not_http))


async def _send_body(conn: h11.Connection, receive: Receive, writer: asyncio.StreamWriter
                     ) -> bool:
    """Stream the request body to the app; False if the client went away meanwhile.

    An app that stops reading (it answers early) ends the upload, not the request.
    """
    more = True
    try:
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return False
            more = message.get("more_body", False)
            if message.get("body"):
                writer.write(conn.send(h11.Data(data=message["body"])))
                await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
    except OSError:
        pass
    return True


async def _relay_response(conn: h11.Connection, reader: asyncio.StreamReader, send: Send,
                          not_http: Response) -> None:
    try:
        response = await _response_head(conn, reader)
    except (h11.RemoteProtocolError, OSError):
        await send({"type": "http.response.start", "status": not_http.status_code,
                    "headers": not_http.raw_headers})
        await send({"type": "http.response.body", "body": not_http.body})
        return
    await send({"type": "http.response.start", "status": response.status_code,
                "headers": [(k, v) for k, v in response.headers
                            if k not in _HOP_BY_HOP and k not in _OWN_RESPONSE_HEADERS]})
    await _send_response_body(conn, reader, send)


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(READ_SIZE))


async def _response_head(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Response:
    while True:
        event = await _next_event(conn, reader)
        if isinstance(event, h11.Response):
            return event
        if not isinstance(event, h11.InformationalResponse):
            raise h11.RemoteProtocolError("the connection closed before a response")


async def _send_response_body(conn: h11.Connection, reader: asyncio.StreamReader,
                              send: Send) -> None:
    """Stream the app's body to the client. If the app hangs up mid-body this returns
    without ending the response, so the server drops the connection (a short body)."""
    with contextlib.suppress(h11.RemoteProtocolError, OSError):
        while isinstance(event := await _next_event(conn, reader), h11.Data):
            await send({"type": "http.response.body", "body": bytes(event.data),
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Receive, relay: Coroutine[Any, Any, None]) -> None:
    """Run ``relay`` unless the client goes away first."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    relaying = asyncio.ensure_future(relay)
    watching = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({relaying, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (relaying, watching):
            task.cancel()
        outcome, _ = await asyncio.gather(relaying, watching, return_exceptions=True)
    if isinstance(outcome, Exception):
        raise outcome
